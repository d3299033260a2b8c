//! The `keeper` binary as a process: `check-config` output and exit codes,
//! and `run` stopping cleanly on SIGTERM with its samples flushed.

use std::process::Command;
use std::time::Duration;

use crate::support::config::{Check, TestConfig};
use crate::support::process::Process;
use crate::support::{self, free_port};

fn keeper() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keeper"))
}

#[test]
fn check_config_prints_what_will_run() {
    let out = keeper()
        .args(["check-config", "-c", "examples/keeper.toml"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("keeper-self"), "{stdout}");
    assert!(stdout.contains("http://127.0.0.1:9400/healthz"), "{stdout}");
    assert!(stdout.contains("every 10s"), "{stdout}");
}

#[test]
fn check_config_refuses_a_bad_file_naming_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[checks.web]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nintervall = \"30s\"\n",
    )
    .unwrap();
    let out = keeper()
        .args(["check-config", "-c"])
        .arg(&path)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("bad.toml:4:1: checks.web.intervall"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_flushes_samples() {
    support::init();
    let dir = tempfile::tempdir().unwrap();
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_addr = target.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = target.accept().await {
            drop(socket);
        }
    });
    let db = dir.path().join("keeper.db");
    let config = TestConfig::new()
        .listen("127.0.0.1:0")
        .storage(format!("sqlite://{}", db.display()))
        .check(Check::tcp("port", target_addr.to_string()).interval("200ms"))
        .write_in(dir.path());
    let mut child = Process::start(&config).await;
    let http = reqwest::Client::new();
    let base = child.base().await;
    support::wait_until(
        "keeper has run the check",
        Duration::from_secs(20),
        || async {
            let Ok(resp) = http.get(format!("{base}/api/v1/checks/port")).send().await else {
                return false;
            };
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            !body["last_run_at"].is_null()
        },
    )
    .await;
    assert!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );

    let (exit, stderr) = child.terminate(Duration::from_secs(10)).await;
    assert!(exit.success(), "exit {exit:?}\n{stderr}");
    assert!(stderr.contains("keeper stopped"), "{stderr}");

    let store = keeper::store::Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let latest = store.latest_samples().await.unwrap();
    let port: Vec<_> = latest.iter().filter(|s| &*s.check == "port").collect();
    assert_eq!(
        port.len(),
        1,
        "the check's samples were flushed before exit"
    );
    assert!(port[0].up);
}

#[test]
fn migrate_creates_the_sqlite_database_and_applies_the_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fresh.db");
    let config = TestConfig::new()
        .storage(format!("sqlite://{}", db.display()))
        .write_in(dir.path());
    let out = keeper()
        .args(["migrate", "-c"])
        .arg(&config)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists(), "the database file is created");
    let again = keeper()
        .args(["migrate", "-c"])
        .arg(&config)
        .output()
        .expect("runs");
    assert!(again.status.success(), "migrating twice is fine");
}

/// Runs `keeper probe ARGS…`; returns (exit code, stdout).
async fn probe(args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keeper"))
        .arg("probe")
        .args(args)
        .output()
        .await
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

#[tokio::test]
async fn probe_shows_phases_status_certificate_and_verdict() {
    use crate::support::target::{Target, TestCa};
    let web = Target::start().await;
    let (code, out) = probe(&[&web.url("/health")]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with(&format!("http {}", web.url("/health"))),
        "{out}"
    );
    assert!(out.contains("  status   200\n"), "{out}");
    assert!(out.contains("  phases   connect "), "{out}");
    assert!(out.contains("first byte "), "{out}");
    assert!(out.contains("  verdict  green\n"), "{out}");

    web.set_status(503);
    let (code, out) = probe(&[&web.url("/health")]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("  status   503\n"), "{out}");
    assert!(out.contains("  verdict  red (critical): "), "{out}");

    // A certificate expiring in five days: its dates, and the default thresholds' high.
    let ca = TestCa::new();
    let leaf = ca.leaf_expiring_in(chrono::Duration::days(5));
    let tls = Target::start_tls(&leaf).await;
    let ca_file = ca.ca_file().display().to_string();
    let target = format!("tls://{}", tls.host_port());
    let (code, out) = probe(&[&target, "--server-name", "localhost", "--ca-file", &ca_file]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("  subject  "), "{out}");
    assert!(out.contains("  issuer   "), "{out}");
    assert!(out.contains("days left)"), "{out}");
    assert!(out.contains("  verdict  red (high): "), "{out}");
    assert!(out.contains("cert_days_left"), "{out}");
    // Untrusted: red, and the dates are shown all the same.
    let (code, out) = probe(&[&target, "--server-name", "localhost"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("days left)"), "{out}");

    // Nothing listening: red with the reason.
    let closed = format!("127.0.0.1:{}", free_port());
    let (code, out) = probe(&[&closed]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("connection refused"), "{out}");

    let (code, out) = probe(&["gopher://x"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("expected http://"), "{out}");
}
