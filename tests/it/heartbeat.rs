//! Heartbeat checks against the real app: jobs call `/ping/<token>` (and
//! `/start`, `/fail`, Healthchecks.io's `/<exit status>` and `/log`); the
//! check is green on time and red when late, failed or overrunning
//! `max_runtime`, with incidents, the job's output ending the red message; unknown tokens and oversized
//! bodies are refused; tokens come from the config or are generated and shown
//! by `check-config`; the signals survive a restart.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use keeper::config::Schedule;
use keeper::core::heartbeat::HeartbeatRow;
use serde_json::Value;

use crate::support::app::{TestApp, spawn_app};
use crate::support::config::{Check, TestConfig};
use crate::support::db::{Backend, TestDb, both_backends};
use crate::support::{config_error, parse_config, wait_for, wait_until};

const TOKEN: &str = "backup-token-0123456789";
const WAIT: Duration = Duration::from_secs(15);

/// A keeper with one heartbeat check `backup` using [`TOKEN`], plus `keys`.
/// (A ping on a green check wakes nothing: "last ping" shows at the next
/// run. At the default interval, shared with `keeper:*` and so spread over
/// it, that was 10 s away; tests not about that evaluate every 100 ms.)
fn config(keys: &[(&str, &str)]) -> TestConfig {
    let mut backup = Check::heartbeat("backup").set("token", TOKEN);
    for (key, value) in keys {
        backup = backup.set(key, *value);
    }
    TestConfig::new().check(backup)
}

/// `POST path` with `body`: status and body text.
async fn post(app: &TestApp, path: &str, body: Vec<u8>) -> (u16, String) {
    let resp = app
        .http
        .post(format!("{}{path}", app.base))
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

async fn ping(app: &TestApp, path: &str) {
    let (status, body) = post(app, path, Vec::new()).await;
    assert_eq!((status, body.as_str()), (200, "OK\n"), "POST {path}");
}

/// Waits until check `backup` is `color` with a message starting with `prefix`.
async fn wait_for_state(app: &TestApp, color: &str, prefix: &str) -> Value {
    let what = format!("backup is {color} with a message starting {prefix:?}");
    wait_for(&what, WAIT, || async {
        let check = app.check("backup").await;
        let message = check["message"].as_str().unwrap_or_default();
        (check["color"] == color && message.starts_with(prefix)).then_some(check)
    })
    .await
}

async fn open_incidents(app: &TestApp) -> Vec<Value> {
    let open = app.get_json("/api/v1/incidents?state=open").await;
    open.as_array().cloned().unwrap_or_default()
}

async fn stored(db: &TestDb) -> HeartbeatRow {
    let rows = db
        .store()
        .await
        .heartbeats()
        .await
        .expect("reading heartbeats");
    rows.into_iter()
        .find(|r| r.check == "backup")
        .expect("a stored state for backup")
}

#[tokio::test]
async fn on_time_is_green_late_is_red_with_an_incident_and_a_ping_resolves_it() {
    let app = spawn_app(
        Backend::Sqlite,
        config(&[("period", "3s"), ("grace", "1s"), ("interval", "100ms")]),
    )
    .await;
    ping(&app, &format!("/ping/{TOKEN}")).await;
    let on_time = wait_for_state(&app, "green", "last ping").await;
    assert!(
        on_time["message"]
            .as_str()
            .unwrap()
            .contains("; next due in"),
        "{on_time}"
    );
    assert_eq!(on_time["kind"], "heartbeat");
    assert!(
        !on_time.to_string().contains(TOKEN),
        "the token is never shown"
    );

    let late = wait_for_state(&app, "red", "late: last ping").await;
    assert_eq!(late["severity"], "high", "heartbeats default to high");
    let incident = wait_for("an open incident", WAIT, || async {
        open_incidents(&app).await.into_iter().next()
    })
    .await;
    assert_eq!(incident["check"], "backup");
    assert_eq!(incident["severity"], "high");

    ping(&app, &format!("/ping/{TOKEN}")).await;
    wait_for_state(&app, "green", "last ping").await;
    wait_until("the incident resolves", WAIT, || async {
        open_incidents(&app).await.is_empty()
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn fail_is_red_at_once_and_a_success_clears_it() {
    // Evaluated hourly: only the wake from the ping can show the change now.
    let app = spawn_app(
        Backend::Sqlite,
        config(&[("period", "1h"), ("interval", "1h")]),
    )
    .await;
    wait_for_state(&app, "green", "no ping yet; next due in").await;

    ping(&app, &format!("/ping/{TOKEN}/fail")).await;
    let failed = wait_for_state(&app, "red", "failed").await;
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .ends_with("no success yet"),
        "{failed}"
    );
    wait_until("an incident opens", WAIT, || async {
        open_incidents(&app).await.len() == 1
    })
    .await;

    // GET counts as well as POST.
    let resp = app
        .http
        .get(format!("{}/ping/{TOKEN}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    wait_for_state(&app, "green", "last ping").await;
    wait_until("the incident resolves", WAIT, || async {
        open_incidents(&app).await.is_empty()
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn an_exit_status_ping_fails_with_the_job_s_last_output_in_the_incident() {
    let app = spawn_app(
        Backend::Sqlite,
        config(&[("period", "1h"), ("interval", "1h")]),
    )
    .await;
    wait_for_state(&app, "green", "no ping yet").await;
    ping(&app, &format!("/ping/{TOKEN}/start")).await;
    // /log records output and changes nothing.
    let (status, _) = post(
        &app,
        &format!("/ping/{TOKEN}/log"),
        b"copying /srv\n".to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let log: String = (1..=30).map(|i| format!("file {i}\n")).collect();
    let output = format!("{log}\x1b[31mrsync: write failed: No space left on device (28)\x1b[0m\n");
    let (status, body) = post(&app, &format!("/ping/{TOKEN}/23"), output.into_bytes()).await;
    assert_eq!((status, body.as_str()), (200, "OK\n"));

    let failed = wait_for_state(&app, "red", "failed").await;
    let message = failed["message"].as_str().unwrap();
    let (first, output) = message.split_once("\nlast output:\n").expect(message);
    assert!(
        first.starts_with("failed") && first.contains("(exit status 23)"),
        "{first}"
    );
    assert_eq!(output.lines().count(), 10, "the last 10 lines: {output}");
    assert!(output.starts_with("file 22\n"), "{output}");
    assert!(
        output.ends_with("file 30\nrsync: write failed: No space left on device (28)"),
        "cleaned of its colors: {output:?}"
    );
    let incident = wait_for("an open incident", WAIT, || async {
        open_incidents(&app).await.into_iter().next()
    })
    .await;
    assert!(
        incident.to_string().contains("No space left on device"),
        "the output reaches the incident: {incident}"
    );

    // /0 is a success; numbers past 255 and words are not ping URLs.
    for bad in ["256", "ok", "-1"] {
        let (status, _) = post(&app, &format!("/ping/{TOKEN}/{bad}"), Vec::new()).await;
        assert_eq!(status, 404, "/ping/…/{bad}");
    }
    ping(&app, &format!("/ping/{TOKEN}/0")).await;
    let ok = wait_for_state(&app, "green", "last ping").await;
    assert!(!ok["message"].as_str().unwrap().contains("rsync"), "{ok}");
    assert!(stored(&app.db).await.last_success > stored(&app.db).await.last_fail);
    app.stop().await;
}

both_backends!(
    async fn a_start_past_max_runtime_is_red_and_the_success_records_the_run(db) {
        let app = TestApp::start_on(
            db,
            config(&[("period", "1h"), ("max_runtime", "1s"), ("interval", "100ms")]),
        )
        .await;
        ping(&app, &format!("/ping/{TOKEN}/start")).await;
        let over = wait_for_state(&app, "red", "started").await;
        assert!(
            over["message"]
                .as_str()
                .unwrap()
                .ends_with("not finished within max_runtime 1s"),
            "{over}"
        );

        ping(&app, &format!("/ping/{TOKEN}")).await;
        let done = wait_for_state(&app, "green", "last ping").await;
        assert!(
            done["message"].as_str().unwrap().contains("(run "),
            "{done}"
        );
        let row = stored(&app.db).await;
        let run = row.last_run_s.expect("the run's duration is stored");
        assert!(run >= 1.0, "the run outlasted max_runtime 1s: {run}");
        assert!(row.last_start < row.last_success, "{row:?}");
        assert_eq!(row.token, None, "a configured token is not stored");
        app.stop().await;
    }
);

both_backends!(
    async fn signals_survive_a_restart(db) {
        let config = config(&[("period", "1h"), ("interval", "100ms")]);
        let app = TestApp::start_on(db, config.clone()).await;
        ping(&app, &format!("/ping/{TOKEN}/start")).await;
        ping(&app, &format!("/ping/{TOKEN}")).await;
        wait_for_state(&app, "green", "last ping").await;
        let db = app.stop().await;

        let app = TestApp::start_on(db, config.clone()).await;
        let after = wait_for_state(&app, "green", "last ping").await;
        assert!(
            after["message"].as_str().unwrap().contains("(run "),
            "{after}"
        );
        ping(&app, &format!("/ping/{TOKEN}/fail")).await;
        wait_for_state(&app, "red", "failed").await;
        let db = app.stop().await;

        let app = TestApp::start_on(db, config.clone()).await;
        let still = wait_for_state(&app, "red", "failed").await;
        assert!(
            still["message"]
                .as_str()
                .unwrap()
                .contains("; last success"),
            "{still}"
        );
        app.stop().await;
    }
);

#[tokio::test]
async fn an_unknown_token_gets_a_bare_404() {
    let app = spawn_app(
        Backend::Sqlite,
        config(&[("period", "1h"), ("interval", "100ms")]),
    )
    .await;
    let near_misses = [
        "nope-nope-nope-nope".to_string(),
        format!("{TOKEN}x"),
        TOKEN[..TOKEN.len() - 1].to_string(),
        TOKEN.to_uppercase(),
    ];
    for token in &near_misses {
        for suffix in ["", "/start", "/fail", "/log", "/0", "/3"] {
            let path = format!("/ping/{token}{suffix}");
            let (status, body) = post(&app, &path, b"hello".to_vec()).await;
            assert_eq!(status, 404, "POST {path}");
            assert_eq!(body, r#"{"error":"not found"}"#, "POST {path}");
            let resp = app
                .http
                .get(format!("{}{path}", app.base))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 404, "GET {path}");
            assert_eq!(resp.text().await.unwrap(), r#"{"error":"not found"}"#);
        }
    }
    let row = stored(&app.db).await;
    assert_eq!(
        (row.last_success, row.last_start, row.last_fail),
        (None, None, None),
        "no near miss counted"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_ping_body_is_refused_with_413() {
    let app = spawn_app(
        Backend::Sqlite,
        config(&[("period", "1h"), ("interval", "100ms")]),
    )
    .await;
    for size in [10 * 1024 + 1, 100 * 1024] {
        let (status, body) = post(&app, &format!("/ping/{TOKEN}/fail"), vec![b'x'; size]).await;
        assert_eq!(status, 413, "{size} bytes");
        let body: Value = serde_json::from_str(&body).expect("a JSON error");
        assert!(body["error"].as_str().unwrap().contains("10 KiB"), "{body}");
    }
    assert_eq!(
        stored(&app.db).await.last_fail,
        None,
        "a refused ping does not count"
    );

    // A log tail up to the limit is accepted (and ignored).
    let (status, _) = post(&app, &format!("/ping/{TOKEN}"), vec![b'x'; 10 * 1024]).await;
    assert_eq!(status, 200);
    assert!(stored(&app.db).await.last_success.is_some());
    wait_for_state(&app, "green", "last ping").await;
    app.stop().await;
}

fn check_config(path: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(["check-config", "-c"])
        .arg(path)
        .output()
        .expect("running keeper check-config");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn a_generated_token_is_shown_by_check_config_and_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("keeper.db");
    // The ping URLs' base from `public_url`, the same for check-config and
    // every run, whatever port the run listens on.
    let config = TestConfig::new()
        .set("server", "public_url", "http://keeper.test")
        .storage(format!("sqlite://{}", db_file.display()))
        .check(
            Check::heartbeat("backup")
                .set("schedule", "0 3 * * *")
                .set("grace", "1h")
                .interval("100ms"),
        )
        .check(
            Check::heartbeat("configured")
                .set("token", TOKEN)
                .set("period", "1d"),
        );
    let path = config.write_in(dir.path());

    let before = check_config(&path);
    assert!(
        before.contains("backup  token will be generated at first run"),
        "{before}"
    );
    assert!(
        !db_file.exists(),
        "check-config does not create the database"
    );

    // keeper runs on the database file the config names (check-config reads it too).
    let app = spawn_app(Backend::Sqlite, config.clone()).await;
    let view = app.check("backup").await;
    let url = view["ping_url"]
        .as_str()
        .expect("ping_url without api_token")
        .to_string();
    let prefix = "http://keeper.test/ping/";
    let token = url.strip_prefix(prefix).unwrap_or_else(|| panic!("{url}"));
    assert_eq!(token.len(), 32, "{token}");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
    assert_eq!(view["target"], "cron \"0 3 * * *\" (UTC), grace 1h");
    assert!(
        app.check("configured").await.get("ping_url").is_none(),
        "a token from the config is a secret"
    );

    let after = check_config(&path);
    assert!(after.contains(&format!("backup  {url}\n")), "{after}");
    assert!(
        after.contains(&format!("configured  {prefix}<token from the config>")),
        "{after}"
    );
    assert!(!after.contains(TOKEN), "{after}");

    let resp = app
        .http
        .post(format!("{}/ping/{token}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    wait_for_state(&app, "green", "last ping").await;
    app.stop().await;

    // The same token after a restart.
    let app = spawn_app(Backend::Sqlite, config).await;
    assert_eq!(app.check("backup").await["ping_url"], url.as_str());
    app.stop().await;
}

#[tokio::test]
async fn the_ping_url_needs_the_api_token_when_one_is_set() {
    let config = TestConfig::new().api_token("api-secret-0123456789").check(
        Check::heartbeat("backup")
            .set("period", "1h")
            .interval("100ms"),
    );
    let app = spawn_app(Backend::Sqlite, config).await;
    let get = |auth: Option<&'static str>| {
        let mut req = app.http.get(format!("{}/api/v1/checks/backup", app.base));
        if let Some(token) = auth {
            req = req.bearer_auth(token);
        }
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert!(get(None).await.get("ping_url").is_none());
    assert!(get(Some("wrong")).await.get("ping_url").is_none());
    let url = get(Some("api-secret-0123456789")).await["ping_url"]
        .as_str()
        .expect("ping_url with the API token")
        .to_string();
    // The ping itself needs no API token.
    let resp = app.http.post(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    wait_for_state(&app, "green", "last ping").await;
    app.stop().await;
}

#[test]
fn heartbeat_config_mistakes_are_refused_with_line_and_column() {
    let head = "\n[checks.backup]\nkind = \"heartbeat\"\n";
    let both = config_error(&format!(
        "{head}period = \"1d\"\nschedule = \"0 3 * * *\"\n"
    ));
    assert!(
        both.starts_with("keeper.toml:5:12: checks.backup.schedule: set either period or schedule"),
        "{both}"
    );
    let neither = config_error(&format!("{head}grace = \"1h\"\n"));
    assert!(
        neither.starts_with("keeper.toml:2:9: checks.backup: a heartbeat needs period"),
        "{neither}"
    );
    let grace = config_error(&format!("{head}period = \"1d\"\ngrace = \"1 parsec\"\n"));
    assert!(
        grace.starts_with("keeper.toml:5:9: checks.backup"),
        "{grace}"
    );
    assert!(grace.contains("invalid duration"), "{grace}");
    let cron = config_error(&format!("{head}schedule = \"0 3 * *\"\n"));
    assert!(
        cron.starts_with("keeper.toml:4:12: checks.backup"),
        "{cron}"
    );
    assert!(cron.contains("invalid crontab schedule"), "{cron}");
    let short = config_error(&format!("{head}period = \"1d\"\ntoken = \"abc\"\n"));
    assert!(
        short.starts_with("keeper.toml:5:9: checks.backup.token: token must be at least 16"),
        "{short}"
    );
    let typo = config_error(&format!("{head}periode = \"1d\"\n"));
    assert!(
        typo.starts_with("keeper.toml:4:1: checks.backup.periode:"),
        "{typo}"
    );
    let zero = config_error(&format!("{head}period = \"1d\"\nmax_runtime = \"0s\"\n"));
    assert!(
        zero.starts_with("keeper.toml:5:15: checks.backup.max_runtime:"),
        "{zero}"
    );
}

#[test]
fn a_heartbeat_schedule_is_when_pings_are_expected_not_when_to_evaluate() {
    let config = parse_config(
        "[checks.backup]\nkind = \"heartbeat\"\nschedule = \"0 3 * * *\"\n\n\
         [checks.hourly]\nkind = \"heartbeat\"\nperiod = \"1h\"\ninterval = \"1m\"\n\
         down_severity = \"critical\"\nfailures_before_alert = 3\n",
    )
    .expect("valid");
    let backup = config.check("backup").unwrap();
    assert_eq!(backup.schedule, Schedule::Every(Duration::from_secs(10)));
    assert_eq!(backup.probe.target(), "cron \"0 3 * * *\" (UTC), grace 1m");
    assert_eq!(backup.down_severity.as_str(), "high");
    assert_eq!(
        (
            backup.failures_before_alert,
            backup.successes_before_resolve
        ),
        (1, 1)
    );
    let hourly = config.check("hourly").unwrap();
    assert_eq!(hourly.schedule, Schedule::Every(Duration::from_secs(60)));
    assert_eq!(hourly.down_severity.as_str(), "critical");
    assert_eq!(hourly.failures_before_alert, 3);
}

both_backends!(
    async fn saving_never_moves_a_heartbeat_backwards(db) {
        use chrono::{TimeZone, Utc};
        let store = db.store().await;
        let t = |s: i64| Utc.timestamp_opt(1_790_000_000 + s, 0).unwrap();
        let newer = HeartbeatRow {
            check: "backup".into(),
            token: Some("first-token".into()),
            first_seen: t(0),
            last_success: Some(t(10)),
            last_start: Some(t(5)),
            last_fail: None,
            last_run_s: Some(5.0),
        };
        assert_eq!(
            store.save_heartbeat(&newer).await.unwrap().as_deref(),
            Some("first-token")
        );
        // An older write landing late (or another instance's view).
        let older = HeartbeatRow {
            token: Some("second-token".into()),
            first_seen: t(-100),
            last_success: Some(t(8)),
            last_start: Some(t(2)),
            last_fail: Some(t(9)),
            last_run_s: Some(1.0),
            ..newer.clone()
        };
        assert_eq!(
            store.save_heartbeat(&older).await.unwrap().as_deref(),
            Some("first-token"),
            "a stored token is never replaced"
        );
        let row = stored(&db).await;
        assert_eq!(row.token.as_deref(), Some("first-token"));
        assert_eq!(row.first_seen, t(-100));
        assert_eq!(row.last_success, Some(t(10)));
        assert_eq!(row.last_run_s, Some(5.0), "the run goes with its success");
        assert_eq!(row.last_start, Some(t(5)));
        assert_eq!(row.last_fail, Some(t(9)));

        // A later success without a /start: no run duration.
        let later = HeartbeatRow {
            token: None,
            last_success: Some(t(30)),
            last_run_s: None,
            ..row.clone()
        };
        store.save_heartbeat(&later).await.unwrap();
        let row = stored(&db).await;
        assert_eq!((row.last_success, row.last_run_s), (Some(t(30)), None));
        assert_eq!(row.token.as_deref(), Some("first-token"));
    }
);
