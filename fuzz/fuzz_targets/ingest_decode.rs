//! The ingest decoder: any body under any `Content-Encoding`, and the same
//! bytes gzipped (so the framing behind the gzip path is reached too).
#![no_main]

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use keeper::probe::log::ingest::decode;
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let encoding = match mode % 5 {
        0 => None,
        1 => Some("gzip"),
        2 => Some("identity"),
        3 => Some(" X-GZIP "),
        _ => Some("br"),
    };
    let _ = decode(body, encoding, LIMIT);
    if mode & 0x80 != 0 {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        if gz.write_all(body).is_ok()
            && let Ok(zipped) = gz.finish()
        {
            let _ = decode(&zipped, Some("gzip"), LIMIT);
            let _ = decode(&zipped, None, body.len() / 2);
        }
    }
});
