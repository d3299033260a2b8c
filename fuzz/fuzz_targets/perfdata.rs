//! Nagios plugin output: the perfdata after `|` and the whole output
//! (first line, long text, more perfdata on later lines).
#![no_main]

use keeper::probe::command::perfdata::{Output, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse(&text);
    let _ = Output::parse(&text);
});
