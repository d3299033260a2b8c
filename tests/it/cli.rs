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

/// Runs `keeper ARGS…` with `NO_COLOR` unset plus `env`; returns (exit code,
/// stdout, stderr). Its stdout is a pipe, not a terminal.
async fn keeper_run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    keeper_in(None, args, env).await
}

/// [`keeper_run`] in directory `dir` (default: the tests').
pub async fn keeper_in(
    dir: Option<&std::path::Path>,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_keeper"));
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let out = command
        .args(args)
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `keeper ARGS…` on a pseudo-terminal (util-linux `script`), so its
/// stdout is a TTY; returns (exit code, what the terminal showed).
async fn keeper_on_a_tty(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let command = std::iter::once(env!("CARGO_BIN_EXE_keeper"))
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let out = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("script runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The line of `out` that starts with `name` and a space.
fn line_of<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no line for {name} in\n{out}"))
}

#[tokio::test]
async fn status_shows_pending_checks_colors_only_on_a_terminal_and_exits_with_the_worst() {
    use crate::support::app::spawn_app;
    use crate::support::db::Backend;
    use crate::support::target::Target;
    let web = Target::start().await;
    // `nightly` runs on the first of January only: it stays pending.
    let config = TestConfig::new()
        .set("watchdog", "interval", "200ms")
        .check(Check::http("web", web.url("/health")).interval("200ms"))
        .check(
            Check::tcp("nightly", format!("127.0.0.1:{}", free_port()))
                .set("schedule", "0 3 1 1 *"),
        );
    let app = spawn_app(Backend::Sqlite, config).await;
    support::wait_until("every other check ran", Duration::from_secs(20), || async {
        let checks = app.get_json("/api/v1/checks").await;
        checks.as_array().unwrap().iter().all(|c| {
            c["name"] == "nightly" || (!c["last_run_at"].is_null() && c["color"] == "green")
        })
    })
    .await;
    let url = app.base.as_str();

    let (code, out, err) = keeper_run(&["status", "--url", url], &[]).await;
    assert_eq!(code, 3, "pending is not green: unknown\n{out}{err}");
    assert_eq!(
        line_of(&out, "nightly").split_whitespace().nth(1),
        Some("pending"),
        "{out}"
    );
    assert!(line_of(&out, "nightly").contains("not run yet"), "{out}");
    assert_eq!(
        line_of(&out, "web").split_whitespace().nth(1),
        Some("green"),
        "{out}"
    );
    assert!(
        out.lines().last().unwrap().ends_with(", 1 pending"),
        "{out}"
    );
    assert!(!out.contains('\x1b'), "no colors into a pipe:\n{out:?}");
    assert!(out.lines().all(|l| l.chars().count() <= 80), "{out}");

    let (code, tty) = keeper_on_a_tty(&["status", "--url", url], &[]).await;
    assert_eq!(code, 3, "{tty}");
    assert!(
        tty.contains("\x1b[32mgreen"),
        "colors on a terminal:\n{tty:?}"
    );
    let (code, tty) = keeper_on_a_tty(&["status", "--url", url], &[("NO_COLOR", "1")]).await;
    assert_eq!(code, 3, "{tty}");
    assert!(tty.contains("green"), "{tty:?}");
    assert!(!tty.contains('\x1b'), "NO_COLOR on a terminal:\n{tty:?}");

    let (code, json, _) = keeper_run(&["status", "--json", "--url", url], &[]).await;
    assert_eq!(code, 3);
    let checks: Vec<serde_json::Value> = serde_json::from_str(&json).expect("--json is JSON");
    let nightly = checks.iter().find(|c| c["name"] == "nightly").unwrap();
    assert!(nightly["last_run_at"].is_null(), "{nightly}");
    assert!(checks.iter().any(|c| c["name"] == "web"), "{json}");

    // web fails: red wins over pending.
    web.set_status(503);
    let incident = support::wait_for("web's incident", Duration::from_secs(20), || async {
        app.check("web").await["incident"].as_i64()
    })
    .await;
    let (code, out, _) = keeper_run(&["status", "--url", url], &[]).await;
    assert_eq!(code, 2, "{out}");
    assert_eq!(line_of(&out, "web").split_whitespace().nth(1), Some("red"));

    let (code, out, err) = keeper_run(&["incidents", "--url", url], &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("#{incident} web critical open  started ")),
        "{out}"
    );
    assert!(out.contains("  opened  "), "the timeline: {out}");
    assert!(!out.contains('\x1b'), "{out:?}");

    web.set_status(200);
    support::wait_until("web resolved", Duration::from_secs(20), || async {
        app.check("web").await["incident"].is_null()
    })
    .await;
    let (_, out, _) = keeper_run(&["incidents", "--url", url], &[]).await;
    assert_eq!(out, "no open incidents\n");
    let (code, out, _) = keeper_run(&["incidents", "--state", "resolved", "--url", url], &[]).await;
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!("#{incident} web critical resolved")),
        "{out}"
    );
    assert!(out.contains("resolved after "), "{out}");
    assert!(out.contains("  resolved  "), "{out}");
    let (_, json, _) = keeper_run(
        &["incidents", "--state", "all", "--json", "--url", url],
        &[],
    )
    .await;
    let listed: Vec<serde_json::Value> = serde_json::from_str(&json).expect("--json is JSON");
    assert_eq!(listed.len(), 1, "{json}");
    assert_eq!(listed[0]["events"][0]["kind"], "opened");
    app.stop().await;
}

#[tokio::test]
async fn status_of_an_all_green_keeper_exits_0() {
    use crate::support::app::spawn_app;
    use crate::support::db::Backend;
    use crate::support::target::Target;
    let web = Target::start().await;
    let config = TestConfig::new()
        .set("watchdog", "interval", "200ms")
        .check(Check::http("web", web.url("/health")).interval("200ms"));
    let app = spawn_app(Backend::Sqlite, config).await;
    support::wait_until("every check ran", Duration::from_secs(20), || async {
        let checks = app.get_json("/api/v1/checks").await;
        checks
            .as_array()
            .unwrap()
            .iter()
            .all(|c| !c["last_run_at"].is_null() && c["color"] == "green")
    })
    .await;
    let (code, out, err) = keeper_run(&["status", "--url", &app.base], &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    let checks = app.get_json("/api/v1/checks").await;
    let n = checks.as_array().unwrap().len();
    assert_eq!(
        out.lines().last().unwrap(),
        format!("{n} checks: {n} green"),
        "{out}"
    );
    app.stop().await;
}

#[tokio::test]
async fn status_is_unknown_when_keeper_is_away_or_answers_an_error() {
    use crate::support::target::Target;
    let closed = format!("http://127.0.0.1:{}", free_port());
    let (code, out, err) = keeper_run(&["status", "--url", &closed], &[]).await;
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains(&format!("asking keeper at {closed}")), "{err}");
    assert!(out.is_empty(), "{out}");

    let broken = Target::start().await;
    broken.set_status(500);
    let url = broken.url("");
    let (code, _, err) = keeper_run(&["status", "--url", &url], &[]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("answered 500"), "{err}");
    let (code, _, err) = keeper_run(&["status", "--json", "--url", &url], &[]).await;
    assert_eq!(code, 3, "{err}");

    // Something answers 200 but is not keeper.
    broken.set_status(200);
    broken.set_body("<html>hello</html>");
    let (code, _, err) = keeper_run(&["status", "--url", &url], &[]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("reading keeper's answer"), "{err}");
}

#[test]
fn completions_are_printed_for_each_shell_and_name_every_verb() {
    for (shell, marker) in [
        ("bash", "_keeper()"),
        ("zsh", "#compdef keeper"),
        ("fish", "complete -c keeper"),
    ] {
        let out = keeper()
            .args(["completions", shell])
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        for verb in [
            "check-config",
            "status",
            "incidents",
            "report",
            "deploy",
            "completions",
        ] {
            assert!(script.contains(verb), "{shell} completes {verb}");
        }
    }
    let out = keeper()
        .args(["completions", "tcsh"])
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(3),
        "an unknown shell is a usage error"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcsh"));
}

/// Runs `keeper ARGS…` and parses its stdout as one JSON document.
async fn keeper_json(args: &[&str]) -> serde_json::Value {
    let (code, out, err) = keeper_run(args, &[]).await;
    assert_eq!(code, 0, "{args:?}: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} --json: {e}: {out:?}"))
}

#[tokio::test]
async fn write_verbs_print_keepers_answer_with_json_and_a_sentence_without() {
    use crate::support::app::spawn_app;
    use crate::support::config::table;
    use crate::support::db::Backend;
    use crate::support::target::Target;
    let web = Target::start().await;
    web.set_status(503);
    let config = TestConfig::new().check(
        Check::http("web", web.url("/health"))
            .interval("200ms")
            .set("labels", table(&[("app", "web")])),
    );
    let app = spawn_app(Backend::Sqlite, config).await;
    let url = app.base.as_str();
    let incident = support::wait_for("web's incident", Duration::from_secs(20), || async {
        app.check("web").await["incident"].as_i64()
    })
    .await;
    let id = incident.to_string();

    let (code, out, err) = keeper_run(&["ack", &id, "--by", "alice", "--url", url], &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("incident {id} (web) acknowledged at ")),
        "{out}"
    );
    let acked = keeper_json(&["ack", &id, "--json", "--url", url]).await;
    assert_eq!(acked["id"], incident, "{acked}");
    assert_eq!(acked["check"], "web", "{acked}");
    assert!(acked["acknowledged_at"].is_string(), "{acked}");

    let (code, out, _) = keeper_run(&["silence", "web", "--for", "1h", "--url", url], &[]).await;
    assert_eq!(code, 0);
    assert!(
        out.starts_with("silence ") && out.contains(" on web until "),
        "{out}"
    );
    let silence = keeper_json(&["silence", "web", "--for", "1h", "--json", "--url", url]).await;
    assert_eq!(silence["check"], "web", "{silence}");
    assert!(silence["ends_at"].is_string(), "{silence}");

    let deployed =
        keeper_json(&["deploy", "web", "v42", "--by", "ci", "--json", "--url", url]).await;
    assert_eq!(
        (&deployed["app"], &deployed["version"], &deployed["by"]),
        (&"web".into(), &"v42".into(), &"ci".into()),
        "{deployed}"
    );

    let dir = tempfile::tempdir().expect("a temporary directory");
    let out_dir = dir.path().to_str().expect("UTF-8");
    let written = keeper_json(&[
        "report", "incident", &id, "--out", out_dir, "--json", "--url", url,
    ])
    .await;
    assert_eq!(written["incident"], incident, "{written}");
    let path = written["path"].as_str().expect("a path");
    let report = std::fs::read_to_string(path).expect("the report was written where it says");
    assert!(report.contains("web"), "{report}");

    // A refusal: nothing on stdout, keeper's reason on stderr, exit 1.
    let (code, out, err) = keeper_run(&["ack", "999999", "--json", "--url", url], &[]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("answered 404"), "{err}");
    app.stop().await;
}

#[tokio::test]
async fn a_command_line_not_understood_exits_3_never_2() {
    for args in [
        &["status", "--bogus"][..],
        &["ack", "not-a-number"],
        &["no-such-verb"],
    ] {
        let (code, out, err) = keeper_run(args, &[]).await;
        assert_eq!(code, 3, "{args:?}: {out}{err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
    let (code, out, _) = keeper_run(&["--version"], &[]).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("keeper "), "{out}");
    let (code, out, _) = keeper_run(&["--help"], &[]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("Exit status: 0"),
        "--help documents the exit codes: {out}"
    );
}

#[tokio::test]
async fn keeper_config_names_the_config_when_c_is_not_given() {
    let (code, out, err) = keeper_run(
        &["check-config"],
        &[("KEEPER_CONFIG", "examples/keeper.toml")],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("examples/keeper.toml: OK"), "{out}");
    let (code, _, err) = keeper_run(&["check-config"], &[("KEEPER_CONFIG", "no/such.toml")]).await;
    assert_eq!(code, 1);
    assert!(err.contains("no/such.toml"), "{err}");
}

/// A storage failure at start says its cause once (each error's words
/// already end with its cause's).
#[test]
fn a_start_failure_says_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("missing").join("keeper.db");
    let text = format!(
        "[storage]\nurl = \"sqlite://{}\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n",
        file.display()
    );
    let out = crate::support::keeper_on_config(dir.path(), &["run"], &text);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("keeper: storage"))
        .unwrap_or_else(|| panic!("no storage error in {stderr}"));
    assert!(line.contains("locking the SQLite database"), "{line}");
    assert_eq!(
        line.matches("No such file or directory").count(),
        1,
        "{line}"
    );
}
