//! The config loader: any text as `keeper.toml`, with `${VAR}` lookups that
//! answer for a few names. Must return `Ok` or `Err`, never panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| match name {
        "TOKEN" => Some("s3cret".to_string()),
        "EMPTY" => Some(String::new()),
        "QUOTE" => Some("a\"b\n".to_string()),
        _ => None,
    };
    if let Ok(mut config) = keeper::config::Config::parse(Path::new("keeper.toml"), text, &env) {
        config.apply_env_overrides(&env);
    }
});
