//! Reports people read and keep (DESIGN.md §8, `keeper report`): documents
//! built from keeper's config, its database and the services it watches,
//! written by pure functions; the CLI writes them to files or stdout and the
//! HTTP API serves them. One file (or folder) per report. A coordinator in
//! the engine's layer: it may use config, store, the probes' API clients and
//! core; the layers above (the CLI, the HTTP API) use it.

pub mod cost;
pub mod health;
pub mod incident;
