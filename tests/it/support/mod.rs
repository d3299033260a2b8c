//! The test harness: a database per test, loopback targets, receivers, the
//! SMTP server, and `wait_until` (tests poll for a condition, never sleep and hope).
#![allow(dead_code)]

pub mod alertmanager;
pub mod app;
pub mod child;
pub mod config;
pub mod db;
pub mod dns;
pub mod pgcluster;
pub mod process;
pub mod prometheus;
pub mod proxy;
pub mod receiver;
pub mod recorded;
pub mod smtp;
pub mod target;

use std::future::Future;
use std::sync::Once;
use std::time::{Duration, Instant};

/// Installs the process-wide rustls crypto provider (ring), as `main` does.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Polls `check` every 20 ms until it returns true; panics naming `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `get` until it yields `Some`, returning the value; panics naming `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut get: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = get().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP port on 127.0.0.1 free at the moment (not held: anyone may take it
/// next), for servers that take a port number rather than a listener and
/// cannot report one they chose (Prometheus, Alertmanager, aiosmtpd, a
/// throwaway cluster: their starters retry on another port), or for a port
/// nothing listens on. keeper itself binds port 0 and says which it got.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("finding a free port on 127.0.0.1")
}

/// Parses config text as if read from `keeper.toml`, with no environment.
pub fn parse_config(text: &str) -> Result<keeper::config::Config, keeper::config::ConfigErrors> {
    keeper::config::Config::parse(std::path::Path::new("keeper.toml"), text, &|_| None)
}

/// `keeper ARGS -c DIR/keeper.toml` with `text` written there, to its end:
/// what it printed and how it exited.
pub fn keeper_on_config(dir: &std::path::Path, args: &[&str], text: &str) -> std::process::Output {
    let path = dir.join("keeper.toml");
    std::fs::write(&path, text).expect("writing the config");
    std::process::Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(args)
        .arg("-c")
        .arg(&path)
        .output()
        .expect("keeper runs")
}

/// The one error config text is refused with, as shown to people
/// (`keeper.toml:LINE:COLUMN: key: reason`); panics unless refused with exactly one.
pub fn config_error(text: &str) -> String {
    let errors = parse_config(text).expect_err("config should be refused");
    assert_eq!(errors.0.len(), 1, "expected one error, got: {errors}");
    errors.0[0].to_string()
}

/// The text of section `heading` of a Markdown report (up to the next `## `).
pub fn section<'a>(report: &'a str, heading: &str) -> &'a str {
    let start = report
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("no section {heading} in\n{report}"));
    let rest = &report[start + heading.len() + 5..];
    &rest[..rest.find("\n## ").map_or(rest.len(), |e| e + 1)]
}
