//! Log streams (DESIGN.md §2, kind `log`): the sources that deliver raw lines.

pub mod flylogs;
pub mod ingest;
