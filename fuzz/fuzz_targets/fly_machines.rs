//! Fly Machines API answers: any body as the machine list, judged at a fixed
//! time (event timestamps in the body may be anything).
#![no_main]

use keeper::probe::fly::read_machines;
use libfuzzer_sys::fuzz_target;

const NOW_MS: i64 = 1_764_460_800_000;

fuzz_target!(|data: &[u8]| {
    let _ = read_machines(data, NOW_MS);
});
