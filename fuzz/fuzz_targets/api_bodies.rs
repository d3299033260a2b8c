//! API request bodies: a silence (`POST /api/v1/silences`) read and checked
//! against a fixed clock, and an ack body (`POST /api/v1/incidents/{id}/ack`).
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(now) = Utc.timestamp_opt(1_764_460_800, 0).single() else {
        return;
    };
    let known = |check: &str| check == "web" || check == "db";
    let _ = keeper::http::read_silence(data, &known, now);
    let _ = keeper::http::read_ack(data);
});
