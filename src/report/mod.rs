//! Reports people read and keep: Markdown documents gathered from the store
//! and written by pure functions, served over the API and written to files
//! by `keeper report …`. One file per report.

pub mod incident;
