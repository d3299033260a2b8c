//! Logging: `tracing` to stderr, level from `RUST_LOG` (default `info`),
//! JSON lines when `KEEPER_LOG_FORMAT=json`. Installed once, by `main`.
//! And the name this process goes by unless told ([`host_name`]).

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sqlx::postgres::notice=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = std::env::var("KEEPER_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = result {
        eprintln!("keeper: logging already set up: {e}");
    }
}

/// The host's name, else `keeper`: this instance's name among several
/// (`[cluster] name`'s default) and who claims outbox rows unless told.
pub fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| "keeper".into())
}
