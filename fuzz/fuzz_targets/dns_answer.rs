//! DNS answers: any bytes as a server's reply to the probe's question (its
//! id taken from the reply, so replies are matched), for each record type,
//! read and judged against an expectation.
#![no_main]

use std::sync::LazyLock;

use keeper::probe::dns::{Probe, Spec};
use keeper::probe::{Context, Kind};
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
    .map(|(record, expect)| {
        let spec = serde_json::json!({
            "name": "example.com", "record": record, "expect": [expect],
        });
        // Fixed, valid specs: a failure here is a broken target, not a finding.
        serde_json::from_value::<Spec>(spec)
            .expect("a valid dns spec")
            .build("fuzz", &Context::system())
            .expect("the dns probe builds")
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
