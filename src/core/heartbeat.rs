//! What a heartbeat check keeps across restarts ([`HeartbeatRow`]): the
//! heartbeat probe makes and restores it, the store writes and reads it.

use chrono::{DateTime, Utc};

/// A heartbeat check's state as stored: the latest of each signal, so a
/// restart does not forget yesterday's ping.
#[derive(Clone, Debug, PartialEq)]
pub struct HeartbeatRow {
    pub check: String,
    /// The token keeper generated for the check; `None` when the config sets it.
    pub token: Option<String>,
    /// When keeper first saw the check (lateness before any ping counts from it).
    pub first_seen: DateTime<Utc>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_start: Option<DateTime<Utc>>,
    pub last_fail: Option<DateTime<Utc>>,
    /// Duration of the run that ended with `last_success` (its `/start` to it).
    pub last_run_s: Option<f64>,
}
