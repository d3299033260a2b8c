//! DNS answers: any bytes as a server's reply to the probe's question (its
//! id taken from the reply, so replies are matched), for each record type,
//! read and judged against an expectation.
#![no_main]

use std::sync::LazyLock;

use keeper::probe::dns::{Probe, Spec};
use libfuzzer_sys::fuzz_target;

static PROBES: LazyLock<Vec<Probe>> = LazyLock::new(|| {
    [
        ("A", "192.0.2.1"),
        ("AAAA", "2001:db8::1"),
        ("CNAME", "alias.example.com"),
        ("MX", "10 mail.example.com"),
        ("TXT", "v=spf1"),
    ]
    .iter()
    .filter_map(|(record, expect)| {
        let spec = serde_json::json!({
            "name": "example.com", "record": record, "expect": [expect],
        });
        serde_json::from_value::<Spec>(spec).ok()?.build().ok()
    })
    .collect()
});

fuzz_target!(|data: &[u8]| {
    let id = match data {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    };
    for probe in PROBES.iter() {
        let _ = probe.read_reply(id, data);
    }
});
