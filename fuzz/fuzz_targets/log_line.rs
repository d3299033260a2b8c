//! Log lines: the reader (JSON or plain, level, status), the access-log
//! status, and the rules (default ones, and own patterns) counting a line.
#![no_main]

use std::sync::LazyLock;

use keeper::probe::log::line::{access_log_status, read, truncate};
use keeper::probe::log::rules::{Rules, Tally};
use libfuzzer_sys::fuzz_target;
use regex::Regex;

/// Built once: a fresh `Regex` starts with empty caches, which would make
/// every run pay for building them.
static DEFAULTS: LazyLock<Rules> = LazyLock::new(Rules::default);

static OWN: LazyLock<Option<Rules>> = LazyLock::new(|| {
    let re = |s: &str| Regex::new(s).ok();
    Rules::new(
        re(r"(?i)fail"),
        re(r"\p{L}{3}"),
        vec![
            ("oom".to_string(), re(r"(?i)out of memory")?),
            ("any".to_string(), re(r".")?),
        ],
    )
    .ok()
});

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let _ = read(truncate(&raw));
    let _ = access_log_status(&raw);
    let mut tally = Tally::new(0);
    DEFAULTS.scan(&raw, &mut tally);
    if let Some(own) = OWN.as_ref() {
        let mut tally = Tally::new(own.names().len());
        own.scan(&raw, &mut tally);
    }
});
