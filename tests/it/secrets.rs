//! Secrets in check targets never leave keeper: URL userinfo and query values,
//! a command's arguments and a DSN's password are masked (or left out) in the
//! API, in `/metrics` and in `keeper check-config`, once the probes have run
//! and written their messages.

use std::time::Duration;

use crate::support::app::spawn_app;
use crate::support::config::{Check, TestConfig};
use crate::support::db::Backend;
use crate::support::target::Target;
use crate::support::wait_until;

/// The secret values the config carries; none may be shown.
const SECRETS: [&str; 6] = [
    "web-user-SECRET",
    "web-pass-SECRET",
    "web-query-SECRET",
    "prom-query-SECRET",
    "cmd-arg-SECRET",
    "pg-pass-SECRET",
];

fn config(target: &Target) -> TestConfig {
    let port = target.addr().port();
    let argv = vec!["true", "--password=cmd-arg-SECRET"];
    // keeper's own checks (`keeper:*`) are waited for too: the watchdog runs
    // them every 200 ms instead of spreading them over its default 30 s.
    TestConfig::new()
        .set("watchdog", "interval", "200ms")
        .check(
            Check::http(
                "web",
                format!(
                    "http://web-user-SECRET:web-pass-SECRET@127.0.0.1:{port}/health?token=web-query-SECRET&x=1"
                ),
            )
            .interval("200ms"),
        )
        .check(
            Check::new("prom", "prometheus")
                .set("url", "http://127.0.0.1:1/?token=prom-query-SECRET")
                .set("query", "up")
                .interval("200ms"),
        )
        .check(
            Check::new("script", "command")
                .set("command", argv.clone())
                .interval("200ms"),
        )
        .check(
            Check::new("shown", "command")
                .set("command", argv)
                .set("display", "true (with the password)")
                .interval("200ms"),
        )
        .check(
            Check::new("pg", "postgres")
                .set(
                    "url",
                    "postgres://keeper:pg-pass-SECRET@127.0.0.1:1/app?sslmode=disable",
                )
                .interval("200ms"),
        )
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
    }
}

#[tokio::test]
async fn secrets_in_targets_never_reach_the_api_metrics_or_check_config() {
    let target = Target::start().await;
    let config = config(&target);
    let app = spawn_app(Backend::Sqlite, config.clone()).await;
    wait_until("every check has run", Duration::from_secs(20), || async {
        let checks = app.get_json("/api/v1/checks").await;
        checks
            .as_array()
            .is_some_and(|all| all.iter().all(|c| !c["last_run_at"].is_null()))
    })
    .await;

    let checks = app.get_json("/api/v1/checks").await;
    assert_no_secret("GET /api/v1/checks", &checks.to_string());
    for name in ["web", "prom", "script", "shown", "pg"] {
        let check = app.check(name).await;
        assert_no_secret(&format!("GET /api/v1/checks/{name}"), &check.to_string());
        let samples = app
            .get_json(&format!("/api/v1/checks/{name}/samples"))
            .await;
        assert_no_secret(&format!("samples of {name}"), &samples.to_string());
    }
    let port = target.addr().port();
    assert_eq!(
        app.check("web").await["target"],
        format!("http://***@127.0.0.1:{port}/health?token=***&x=***")
    );
    assert_eq!(
        app.check("prom").await["target"],
        "http://127.0.0.1:1/?token=*** up"
    );
    assert_eq!(app.check("script").await["target"], "true");
    assert_eq!(
        app.check("shown").await["target"],
        "true (with the password)"
    );
    assert_eq!(
        app.check("pg").await["target"],
        "postgres://keeper:***@127.0.0.1:1/app?sslmode=***"
    );
    assert_no_secret("/metrics", &app.get_text("/metrics").await);
    wait_until(
        "prom and pg open incidents",
        Duration::from_secs(20),
        || async {
            !app.check("prom").await["incident"].is_null()
                && !app.check("pg").await["incident"].is_null()
        },
    )
    .await;
    let incidents = app.get_json("/api/v1/incidents?state=all").await;
    assert_no_secret("GET /api/v1/incidents", &incidents.to_string());
    let db = app.stop().await;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = config.storage(db.url()).write_in(dir.path());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(["check-config", "-c"])
        .arg(&path)
        .output()
        .expect("check-config runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("token=***"), "{stdout}");
    assert_no_secret("check-config", &stdout);
    assert_no_secret(
        "check-config's errors",
        &String::from_utf8_lossy(&out.stderr),
    );
}

#[test]
fn a_commands_display_key_is_read_strictly() {
    let check = |keys: &str| {
        format!(
            "[checks.backup]\nkind = \"command\"\ncommand = [\"backup-check\", \"--key=k\"]\n{keys}"
        )
    };
    let config = crate::support::parse_config(&check("display = \"backup-check (nightly)\"\n"))
        .expect("loads");
    assert_eq!(config.checks[0].probe.target(), "backup-check (nightly)");
    let config = crate::support::parse_config(&check("")).expect("loads");
    assert_eq!(config.checks[0].probe.target(), "backup-check");

    let err = crate::support::config_error(&check("display = \"  \"\n"));
    assert!(err.starts_with("keeper.toml:"), "{err}");
    assert!(err.contains("display: must not be empty"), "{err}");
    let err = crate::support::config_error(&check("display = [\"x\"]\n"));
    assert!(err.contains("keeper.toml:4:11"), "{err}");
}
