//! Reports: documents built from keeper's config, its database and the
//! services it watches, for people to read (DESIGN.md §8, `keeper report`).
//! A coordinator in the engine's layer: it may use config, store, the probes'
//! API clients and core; the layers above (the CLI, the HTTP API) use it.

pub mod cost;
