//! Prometheus answers: a status (first two bytes) and a JSON body, judged as
//! one metric chosen by the third byte.
#![no_main]

use http::StatusCode;
use keeper::core::Metric;
use keeper::probe::prometheus::read_answer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [a, b, m, body @ ..] = data else {
        return;
    };
    let status =
        StatusCode::from_u16(100 + u16::from_be_bytes([*a, *b]) % 500).unwrap_or(StatusCode::OK);
    let metric = match m % 4 {
        0 => Metric::Value,
        1 => Metric::MemoryPct,
        2 => Metric::CertDaysLeft,
        _ => Metric::LatencyMs,
    };
    let _ = read_answer(status, body, metric, None);
});
