//! keeper: the keeper of production. One binary that probes HTTP endpoints,
//! TLS certificates, ports and more on a schedule, stores every sample,
//! classifies samples green / yellow / red, turns them into incidents and
//! notifies people until the incident resolves.
//!
//! The data flow (DESIGN.md §1), one module per stage:
//! `config` → `scheduler` → `probe` → `Sample` → `store::writer` (batched),
//! `metrics` (gauges) and `engine` (`classify` → `state` → `incident`) →
//! `notify::policy` → outbox → `notify` channels.
//!
//! Error rule: a probe failure is data (a red `Sample` with a reason), never an
//! `Err`. `Err` is for keeper's own faults; module borders use `thiserror`
//! enums, and `anyhow` appears only in `main` and the CLI.

pub mod app;
pub mod classify;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod core;
pub mod engine;
pub mod http;
pub mod incident;
pub mod metrics;
pub mod notify;
pub mod probe;
pub mod report;
pub mod scheduler;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod watchdog;
