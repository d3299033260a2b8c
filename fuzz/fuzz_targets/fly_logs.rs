//! Fly logs API pages: any body as a page, and each entry's timestamp.
#![no_main]

use keeper::probe::log::flylogs::page::{parse_page, timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(page) = parse_page(data) {
        for entry in &page.entries {
            let _ = timestamp(entry);
        }
    }
});
