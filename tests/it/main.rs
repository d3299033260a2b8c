//! keeper's one integration-test binary: a module per capability, each
//! talking to real servers on loopback (PostgreSQL, aiosmtpd, HTTP and TLS
//! servers of the tests' own). Shared harness in `support/`.

mod support;

mod alerting;
mod api_hardening;
mod channels;
mod cli;
mod cluster;
mod cluster_store;
mod command;
mod config;
mod cost;
mod crash;
mod delivery;
mod deployments;
mod dns;
mod docs;
mod durability;
mod e2e;
mod faults;
mod fly;
mod flylogs;
mod habits;
mod health_report;
mod heartbeat;
mod ingest;
mod keepalive;
mod layers;
mod logs;
mod metrics;
mod notify;
mod openapi;
mod probe_host;
mod probe_postgres;
mod probe_safety;
mod probes;
mod prometheus;
mod reads;
mod recent_samples;
mod regions;
mod reload;
mod reports;
mod rollups;
mod scheduler;
mod secrets;
mod server;
mod shared_state;
mod shipping;
mod status_page;
mod store;
mod transport;
mod watchdog;
