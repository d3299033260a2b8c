//! Operators' config habits (issue 13 point 5): secrets from files
//! (`${file:…}`, never shown), a `timezone` for every crontab, per-check
//! `enabled = false`, and Alertmanager's matchers in `match`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use keeper::config::{Config, Schedule};
use keeper::core::Severity;
use keeper::probe;

use crate::support::app::TestApp;
use crate::support::config::{Check, TestConfig};
use crate::support::db::{Backend, TestDb};
use crate::support::{config_error, free_port, parse_config, wait_for, wait_until};

const WAIT: Duration = Duration::from_secs(15);
const SECRET: &str = "hunter2-0123456789-secret";

/// `keeper check-config -c path`: its exit success, stdout and stderr.
fn check_config(path: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(["check-config", "-c"])
        .arg(path)
        .output()
        .expect("running keeper check-config");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn a_secret_file_fills_any_string_without_its_newline_and_check_config_never_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api_token"), format!("{SECRET}\n")).unwrap();
    let secrets = dir.path().join("run-secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("hook"), format!("{SECRET}-hook\r\n")).unwrap();
    let text = format!(
        r#"
[server]
api_token = "${{file:api_token}}"

[checks.web]
kind = "http"
url = "http://127.0.0.1:1/${{file:{hook}}}/health"
"#,
        hook = secrets.join("hook").display()
    );
    let path = dir.path().join("keeper.toml");
    std::fs::write(&path, &text).unwrap();

    let config = Config::load(&path).expect("loads");
    assert_eq!(
        config.server.api_token.as_deref(),
        Some(SECRET),
        "relative to the config, newline trimmed"
    );
    let (ok, out, err) = check_config(&path);
    assert!(ok, "{out}{err}");
    assert!(out.contains("web"), "{out}");
    assert!(
        !out.contains("hunter2"),
        "a secret in check-config's output:\n{out}"
    );
    assert!(out.contains("http://127.0.0.1:1/***/health"), "{out}");
}

#[test]
fn a_missing_secret_file_is_an_error_at_its_value_naming_the_key() {
    let err = config_error("\n[server]\napi_token = \"${file:/nonexistent/keeper-secret}\"\n");
    assert!(
        err.starts_with(
            "keeper.toml:3:13: server.api_token: reading secret file /nonexistent/keeper-secret:"
        ),
        "{err}"
    );
    let err = config_error("\n[server]\npublic_url = \"${file:}\"\n");
    assert!(err.contains("needs a path"), "{err}");
}

#[test]
fn a_secret_in_a_refused_value_is_masked_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("listen");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let path = dir.path().join("keeper.toml");
    std::fs::write(
        &path,
        format!("[server]\nlisten = \"${{file:{}}}\"\n", file.display()),
    )
    .unwrap();
    let errors = Config::load(&path).expect_err("not an address");
    let shown = errors.to_string();
    assert!(
        shown.contains("server.listen: invalid address \"***\""),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    let (ok, out, err) = check_config(&path);
    assert!(!ok);
    assert!(!format!("{out}{err}").contains("hunter2"), "{out}{err}");
}

const ZONED: &str = r#"
timezone = "Europe/Paris"

[severities.low]
digest = "0 9 * * *"

[reports]
health = "0 8 * * 1"

[checks.nightly]
kind = "tcp"
host = "127.0.0.1:1"
schedule = "0 9 * * 1"

[checks.backup]
kind = "heartbeat"
token = "backup-token-0123456789"
schedule = "CRON_TZ=America/New_York 30 2 * * *"

[[maintenance]]
schedule = "0 3 * * SUN"
duration = "1h"
"#;

#[test]
fn timezone_applies_to_every_crontab_unless_a_schedule_names_its_own() {
    let config = parse_config(ZONED).expect("parses");
    let paris = chrono_tz::Europe::Paris;
    assert_eq!(config.timezone, paris);
    let Schedule::Cron(nightly) = &config.check("nightly").unwrap().schedule else {
        panic!("a crontab schedule");
    };
    // Friday 2026-11-27 noon UTC: Monday 09:00 in Paris is 08:00 UTC.
    let friday = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
    assert_eq!(
        nightly.next_after(friday),
        Some(Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap())
    );
    assert_eq!(config.severities.low_digest.as_ref().unwrap().zone, paris);
    assert_eq!(config.reports.health.as_ref().unwrap().zone, paris);
    assert_eq!(config.maintenance[0].schedule.zone, paris);
    let probe::Spec::Heartbeat(backup) = &config.check("backup").unwrap().probe else {
        panic!("a heartbeat");
    };
    let expected = backup.schedule.as_ref().unwrap().get_ref();
    assert_eq!(expected.zone, chrono_tz::America::New_York);
    assert!(
        backup.target().contains("America/New_York"),
        "{}",
        backup.target()
    );

    let utc = parse_config(
        "[checks.n]\nkind = \"tcp\"\nhost = \"127.0.0.1:1\"\nschedule = \"0 9 * * 1\"\n",
    )
    .expect("parses");
    assert_eq!(utc.timezone, chrono_tz::UTC, "UTC by default");
}

#[test]
fn a_bad_time_zone_is_an_error_at_its_line_and_column() {
    let err = config_error("\ntimezone = \"Europe/Pariss\"\n");
    assert!(
        err.starts_with("keeper.toml:2:12: timezone: unknown time zone \"Europe/Pariss\""),
        "{err}"
    );
    let err = config_error(
        "\n[checks.n]\nkind = \"tcp\"\nhost = \"127.0.0.1:1\"\nschedule = \"CRON_TZ=Nowhere/Land 0 9 * * 1\"\n",
    );
    assert!(
        err.starts_with("keeper.toml:5:12: checks.n.schedule:"),
        "{err}"
    );
    assert!(err.contains("unknown time zone \"Nowhere/Land\""), "{err}");
}

#[test]
fn a_disabled_check_is_validated_kept_aside_and_listed_as_disabled() {
    let text = "[checks.web]\nkind = \"tcp\"\nhost = \"127.0.0.1:1\"\n\n[checks.old]\nkind = \"tcp\"\nhost = \"127.0.0.1:2\"\nenabled = false\n";
    let config = parse_config(text).expect("parses");
    assert!(
        config.check("old").is_none(),
        "not among the checks that run"
    );
    assert_eq!(config.disabled.len(), 1);
    assert_eq!(&*config.disabled[0].name, "old");
    assert!(!config.disabled[0].enabled);

    // Still read strictly.
    let err = config_error(&format!("{text}bogus = 1\n"));
    assert!(
        err.starts_with("keeper.toml:9:1: checks.old.bogus:"),
        "{err}"
    );
    let err = config_error("[checks.old]\nkind = \"tcp\"\nhost = \"nope\"\nenabled = false\n");
    assert!(err.contains("checks.old.host"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keeper.toml");
    std::fs::write(&path, text).unwrap();
    let (ok, out, err) = check_config(&path);
    assert!(ok, "{out}{err}");
    assert!(out.contains("1 disabled"), "{out}");
    let disabled = out
        .split("disabled (enabled = false: not run):\n")
        .nth(1)
        .expect(&out);
    assert!(disabled.starts_with("  old  tcp 127.0.0.1:2\n"), "{out}");
}

/// A failing check with an open incident, then the same check disabled:
/// the incident is resolved at start as for a removed check, and the check
/// is neither in the API nor in the metrics.
#[tokio::test]
async fn disabling_a_check_resolves_its_incident_and_stops_it() {
    let down = Check::tcp("down", format!("127.0.0.1:{}", free_port()))
        .interval("100ms")
        .timeout("1s");
    let app = TestApp::start_on(
        TestDb::new(Backend::Sqlite).await,
        TestConfig::new().check(down.clone()),
    )
    .await;
    wait_for("an open incident", WAIT, || async {
        let open = app.get_json("/api/v1/incidents?state=open").await;
        open.as_array().and_then(|a| a.first().cloned())
    })
    .await;
    let db = app.stop().await;

    let app = TestApp::start_on(db, TestConfig::new().check(down.set("enabled", false))).await;
    wait_until("the incident is resolved", WAIT, || async {
        let open = app.get_json("/api/v1/incidents?state=open").await;
        open.as_array().is_some_and(|a| a.is_empty())
    })
    .await;
    let resolved = app.get_json("/api/v1/incidents?state=resolved").await;
    assert_eq!(resolved[0]["check"], "down", "{resolved}");
    let checks = app.get_json("/api/v1/checks").await;
    assert!(
        checks
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != "down"),
        "{checks}"
    );
    let metrics = app.get_text("/metrics").await;
    assert!(!metrics.contains("check=\"down\""), "{metrics}");
    app.stop().await;
}

#[test]
fn route_and_maintenance_match_take_alertmanager_matchers() {
    let text = r#"
[channels.ops]
kind = "webhook"
url = "http://127.0.0.1:1/hook"

[[routes]]
channels = ["ops"]
match = ['env =~ "prod|staging"', 'team != "db"', "app !~ test-.*"]

[[routes]]
channels = ["ops"]
match = { team = "db" }

[[maintenance]]
schedule = "0 3 * * SUN"
duration = "1h"
match = ['env=~"stag.*"']
"#;
    let config = parse_config(text).expect("parses");
    let labels = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let matchers = &config.routes[0];
    let cases = [
        (labels(&[("env", "prod"), ("app", "web")]), true),
        (labels(&[("env", "staging")]), true),
        (labels(&[("env", "preprod")]), false),
        (labels(&[("env", "prod"), ("team", "db")]), false),
        (labels(&[("env", "prod"), ("app", "test-web")]), false),
        (labels(&[]), false),
    ];
    for (labels, routed) in cases {
        assert_eq!(
            matchers.matches(Severity::High, &labels),
            routed,
            "{labels:?}"
        );
    }
    assert!(config.routes[1].matches(Severity::High, &labels(&[("team", "db")])));
    assert!(!config.routes[1].matches(Severity::High, &labels(&[])));
    let window = &config.maintenance[0];
    assert!(window.covers("web", &labels(&[("env", "staging")])));
    assert!(!window.covers("web", &labels(&[("env", "prod")])));
}

#[test]
fn a_bad_matcher_or_regex_is_an_error_at_its_own_string() {
    let base = "[channels.ops]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:1/hook\"\n\n[[routes]]\nchannels = [\"ops\"]\n";
    let err = config_error(&format!(
        "{base}match = ['team = \"ops\"', 'env =~ \"(prod\"']\n"
    ));
    assert!(err.starts_with("keeper.toml:7:26: routes"), "{err}");
    assert!(err.contains("invalid regex \"(prod\""), "{err}");
    let err = config_error(&format!("{base}match = ['team']\n"));
    assert!(err.starts_with("keeper.toml:7:10: routes"), "{err}");
    assert!(err.contains("is not a matcher"), "{err}");
}
