//! Reports: documents built from keeper's config, its database and the
//! services it watches, for people to read (DESIGN.md §8, `keeper report`).
//! A coordinator like the engine: may read config, store, probe clients and
//! core, and is used only by the CLI (and the HTTP API).

pub mod cost;
