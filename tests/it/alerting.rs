//! Alerting people can trust: reminders per response window until someone
//! acknowledges (API or CLI), then none; incidents listed with their timelines,
//! MTTA and MTTR; write endpoints behind the API token.

use std::time::Duration;

use crate::support::app::{TestApp, spawn_app};
use crate::support::config::{Channel, Check, Route, TestConfig, table};
use crate::support::db::Backend;
use crate::support::db::both_backends;
use crate::support::receiver::Receiver;
use crate::support::target::Target;
use crate::support::{wait_for, wait_until};

const TOKEN: &str = "s3cret-api-token-0001";

fn config(target: &Target, hook: &Receiver) -> TestConfig {
    TestConfig::new()
        .api_token(TOKEN)
        .severity("critical", "repeat", "1s")
        .check(Check::http("web", target.url("/health")).interval("250ms"))
        .page(hook)
}

/// A keeper whose low incidents go out by `digest` (a crontab or "off"),
/// with one low-severity `http` check per `(name, url)`, probed every
/// `interval` and alerting after `failures` bad samples, all routed to `hook`.
fn low_config(
    digest: &str,
    checks: &[(&str, String)],
    interval: &str,
    failures: u32,
    hook: &Receiver,
) -> TestConfig {
    let mut config = TestConfig::new().severity("low", "digest", digest);
    for (name, url) in checks {
        config = config.check(
            Check::http(name, url.as_str())
                .interval(interval)
                .set("down_severity", "low")
                .set("failures_before_alert", failures)
                .set("successes_before_resolve", failures),
        );
    }
    config.page(hook)
}

fn with_state(hook: &Receiver, state: &str) -> Vec<serde_json::Value> {
    hook.json_bodies()
        .into_iter()
        .filter(|n| n["state"] == state)
        .collect()
}

async fn post_ack(
    app: &TestApp,
    id: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut req = app
        .http
        .post(format!("{}/api/v1/incidents/{id}/ack", app.base))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("POST ack");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON answer"))
}

both_backends!(
    async fn unacknowledged_incident_repeats_until_acknowledged_then_never(db) {
        let target = Target::start().await;
        target.set_status(503);
        let hook = Receiver::start().await;
        // A response window of half a second: reminders come, and stop, sooner.
        let config = config(&target, &hook).severity("critical", "repeat", "500ms");
        let app = TestApp::start_on(db, config).await;

        let opened = wait_for("an opened notification", Duration::from_secs(20), || async {
            with_state(&hook, "opened").pop()
        })
        .await;
        let id = opened["incident"].as_i64().expect("incident id");
        let reminders = wait_for("two reminders", Duration::from_secs(20), || async {
            let r = with_state(&hook, "reminder");
            (r.len() >= 2).then_some(r)
        })
        .await;
        assert!(reminders.iter().all(|r| r["incident"] == id && r["severity"] == "critical"));

        // Write endpoints want the token.
        let (status, body) = post_ack(&app, &id.to_string(), None, "").await;
        assert_eq!(status, 401, "{body}");
        assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
        let (status, _) = post_ack(&app, &id.to_string(), Some("wrong"), "").await;
        assert_eq!(status, 401);

        let (status, acked) = post_ack(&app, &id.to_string(), Some(TOKEN), r#"{"by": "alice"}"#).await;
        assert_eq!(status, 200, "{acked}");
        assert_eq!(acked["id"], id);
        assert_eq!(acked["state"], "open");
        assert!(acked["acknowledged_at"].is_string(), "{acked}");
        let seconds = |key: &str| {
            acked[key]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .unwrap_or_else(|| panic!("{key} is a timestamp: {acked}"))
        };
        let mtta = (seconds("acknowledged_at") - seconds("started_at")).num_seconds();
        assert_eq!(acked["mtta_s"].as_i64(), Some(mtta), "{acked}");
        let kinds: Vec<&str> = acked["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds.first(), Some(&"opened"));
        assert_eq!(kinds.last(), Some(&"acknowledged"));
        assert!(kinds.contains(&"reminder"), "{kinds:?}");
        assert_eq!(acked["events"].as_array().unwrap().last().unwrap()["detail"], "by alice");
        wait_until("the acknowledged notification", Duration::from_secs(10), || async {
            with_state(&hook, "acknowledged").len() == 1
        })
        .await;

        // Acknowledging again answers the incident and notifies no one.
        let (status, _) = post_ack(&app, &id.to_string(), Some(TOKEN), "").await;
        assert_eq!(status, 200);
        let reminders_at_ack = with_state(&hook, "reminder").len();
        // Three response windows pass (the target sees the probes go by) with no reminder.
        let seen = target.requests();
        wait_until("six more probes (1.5 s)", Duration::from_secs(30), || async {
            target.requests() >= seen + 6
        })
        .await;
        assert_eq!(with_state(&hook, "reminder").len(), reminders_at_ack, "no reminder after ack");
        assert_eq!(with_state(&hook, "acknowledged").len(), 1, "acknowledged once");

        target.set_status(200);
        wait_until("the resolved notification", Duration::from_secs(20), || async {
            with_state(&hook, "resolved").len() == 1
        })
        .await;
        let resolved = app.get_json("/api/v1/incidents?state=resolved").await;
        let resolved = resolved.as_array().unwrap();
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0]["id"], id);
        assert_eq!(resolved[0]["state"], "resolved");
        assert!(resolved[0]["mttr_s"].as_i64().is_some(), "{}", resolved[0]);
        assert_eq!(resolved[0]["events"].as_array().unwrap().last().unwrap()["kind"], "resolved");
        assert!(app.get_json("/api/v1/incidents").await.as_array().unwrap().is_empty(), "none open");
        assert_eq!(app.get_json("/api/v1/incidents?state=all").await.as_array().unwrap().len(), 1);

        // A resolved incident cannot be acknowledged any more.
        let (status, body) = post_ack(&app, &id.to_string(), Some(TOKEN), "").await;
        assert_eq!(status, 409, "{body}");
        app.stop().await;
    }
);

#[tokio::test]
async fn bad_incident_requests_get_a_4xx_with_a_json_reason() {
    let target = Target::start().await;
    let hook = Receiver::start().await;
    let app = spawn_app(Backend::Sqlite, config(&target, &hook)).await;
    let (status, body) = post_ack(&app, "9999", Some(TOKEN), "").await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (404, "no incident 9999")
    );
    let (status, body) = post_ack(&app, "abc", Some(TOKEN), "").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post_ack(&app, "1", Some(TOKEN), "{not json").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("invalid JSON"),
        "{body}"
    );
    let (status, body) = post_ack(&app, "1", Some(TOKEN), r#"{"who": "bob"}"#).await;
    assert_eq!(status, 400, "unknown fields are refused: {body}");
    let resp = app
        .http
        .get(format!("{}/api/v1/incidents?state=bogus", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("open, resolved or all"),
        "{body}"
    );
    let resp = app
        .http
        .get(format!("{}/api/v1/incidents/1/ack", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let body: serde_json::Value = resp.json().await.expect("a JSON reason");
    assert!(body["error"].is_string(), "{body}");
    let resp = app
        .http
        .post(format!("{}/api/v1/incidents/1/ack", app.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(vec![b'x'; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413, "bodies are size-limited");
    let body: serde_json::Value = resp.json().await.expect("a JSON reason");
    assert!(body["error"].is_string(), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn keeper_ack_on_the_command_line_acknowledges() {
    let target = Target::start().await;
    target.set_status(500);
    let hook = Receiver::start().await;
    let app = spawn_app(Backend::Sqlite, config(&target, &hook)).await;
    let id = wait_for(
        "an opened notification",
        Duration::from_secs(20),
        || async { with_state(&hook, "opened").pop() },
    )
    .await["incident"]
        .as_i64()
        .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(["ack", &id.to_string(), "--by", "bob", "--url", &app.base])
        .env("KEEPER_API_TOKEN", TOKEN)
        .output()
        .await
        .expect("keeper ack runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("incident {id} (web) acknowledged")),
        "{stdout}"
    );
    let incident = app.get_json(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(
        incident["events"].as_array().unwrap().last().unwrap()["detail"],
        "by bob"
    );

    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(["ack", &id.to_string(), "--url", &app.base])
        .env("KEEPER_API_TOKEN", "wrong")
        .output()
        .await
        .expect("keeper ack runs");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{refused:?}"
    );
    app.stop().await;
}

/// Counts the notifications of `state` per incident id.
fn per_incident(hook: &Receiver, state: &str) -> std::collections::BTreeMap<i64, usize> {
    let mut out = std::collections::BTreeMap::new();
    for n in with_state(hook, state) {
        *out.entry(n["incident"].as_i64().unwrap()).or_insert(0) += 1;
    }
    out
}

both_backends!(
    async fn a_failing_dependency_pages_once_and_dependents_page_if_they_still_fail_after_it(db) {
        let database = Target::start().await;
        let app_server = Target::start().await;
        let hook = Receiver::start().await;
        // keeper's own checks (`keeper:*`) are waited for too: the watchdog runs
        // them every 200 ms instead of spreading them over its default 30 s.
        let mut config = TestConfig::new()
            .set("watchdog", "interval", "200ms")
            .check(Check::http("db", database.url("/db")).interval("200ms"));
        for i in 0..10 {
            config = config.check(
                Check::http(&format!("web{i}"), app_server.url(&format!("/web{i}")))
                    .interval("200ms")
                    .set("depends_on", vec!["db"]),
            );
        }
        let app = TestApp::start_on(db, config.page(&hook)).await;
        wait_until("every check probed green", Duration::from_secs(20), || async {
            let checks = app.get_json("/api/v1/checks").await;
            checks.as_array().unwrap().iter().all(|c| c["color"] == "green" && !c["last_run_at"].is_null())
        })
        .await;

        // The database goes down and takes the app with it.
        database.set_status(503);
        app_server.set_status(503);
        let opened = wait_for("the database's page", Duration::from_secs(20), || async {
            with_state(&hook, "opened").pop()
        })
        .await;
        assert_eq!(opened["check"], "db");
        let seen = app_server.requests();
        wait_until("every dependent failed four more times", Duration::from_secs(20), || async {
            app_server.requests() >= seen + 40
        })
        .await;
        assert_eq!(with_state(&hook, "opened").len(), 1, "one page for one root cause");
        let web0 = app.check("web0").await;
        assert!(web0["incident"].is_i64(), "the dependent's incident is recorded: {web0}");

        // The database recovers; the app does not: now the app pages.
        database.set_status(200);
        wait_until("db resolved and the ten dependents paged", Duration::from_secs(20), || async {
            with_state(&hook, "resolved").len() == 1 && with_state(&hook, "opened").len() == 11
        })
        .await;
        let pages = per_incident(&hook, "opened");
        assert!(pages.values().all(|n| *n == 1), "each incident paged once: {pages:?}");
        app_server.set_status(200);
        wait_until("the dependents resolved", Duration::from_secs(20), || async {
            with_state(&hook, "resolved").len() == 11
        })
        .await;
        app.stop().await;
    }
);

both_backends!(
    async fn a_silence_holds_the_page_until_it_ends_then_pages_once(db) {
        let target = Target::start().await;
        let hook = Receiver::start().await;
        let app = TestApp::start_on(db, config(&target, &hook)).await;
        let resp = app
            .http
            .post(format!("{}/api/v1/silences", app.base))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"check": "web", "for": "1h", "comment": "deploying", "by": "carol"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let silence: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(silence["check"], "web");
        assert_eq!(silence["comment"], "deploying");
        let listed = app.get_json("/api/v1/silences").await;
        assert_eq!(listed.as_array().unwrap().len(), 1);

        target.set_status(503);
        let incident = wait_for("the incident, recorded", Duration::from_secs(20), || async {
            app.check("web").await["incident"].as_i64()
        })
        .await;
        let seen = target.requests();
        wait_until("four more failing probes", Duration::from_secs(20), || async {
            target.requests() >= seen + 4
        })
        .await;
        assert!(hook.json_bodies().is_empty(), "silenced: {:?}", hook.json_bodies());

        let resp = app
            .http
            .delete(format!("{}/api/v1/silences/{}", app.base, silence["id"]))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let opened = wait_for("the page once the silence ended", Duration::from_secs(10), || async {
            with_state(&hook, "opened").pop()
        })
        .await;
        assert_eq!(opened["incident"], incident);
        let timeline = app.get_json(&format!("/api/v1/incidents/{incident}")).await;
        let notified = timeline["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "notified")
            .expect("a notified event")
            .clone();
        assert!(notified["detail"].as_str().unwrap().contains("silence"), "{notified}");

        target.set_status(200);
        wait_until("the resolve", Duration::from_secs(20), || async {
            with_state(&hook, "resolved").len() == 1
        })
        .await;
        assert_eq!(with_state(&hook, "opened").len(), 1);
        app.stop().await;
    }
);

#[tokio::test]
async fn silence_requests_are_checked_and_keeper_silence_creates_one() {
    let target = Target::start().await;
    let hook = Receiver::start().await;
    let app = spawn_app(Backend::Sqlite, config(&target, &hook)).await;
    let post = |body: serde_json::Value, token: Option<&'static str>| {
        let mut req = app
            .http
            .post(format!("{}/api/v1/silences", app.base))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    let cases = [
        (
            serde_json::json!({"check": "web", "for": "1h"}),
            None,
            401,
            "Bearer",
        ),
        (
            serde_json::json!({"for": "1h"}),
            Some(TOKEN),
            400,
            "a check or labels",
        ),
        (
            serde_json::json!({"check": "nope", "for": "1h"}),
            Some(TOKEN),
            400,
            "no check named",
        ),
        (
            serde_json::json!({"check": "web"}),
            Some(TOKEN),
            400,
            "needs for",
        ),
        (
            serde_json::json!({"check": "web", "for": "1h", "ends_at": "2099-01-01T00:00:00Z"}),
            Some(TOKEN),
            400,
            "not both",
        ),
        (
            serde_json::json!({"check": "web", "ends_at": "2000-01-01T00:00:00Z"}),
            Some(TOKEN),
            400,
            "not in the future",
        ),
        (
            serde_json::json!({"check": "web", "for": "soon"}),
            Some(TOKEN),
            400,
            "invalid duration",
        ),
        (
            serde_json::json!({"check": "web", "for": "1h", "why": "x"}),
            Some(TOKEN),
            400,
            "unknown field",
        ),
    ];
    for (body, token, status, reason) in cases {
        let (got, answer) = post(body.clone(), token).await;
        assert_eq!(got, status, "{body} → {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(reason),
            "{body} → {answer}"
        );
    }
    let resp = app
        .http
        .delete(format!("{}/api/v1/silences/999", app.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args([
            "silence",
            "web",
            "--for",
            "2h",
            "--comment",
            "maintenance",
            "--url",
            &app.base,
        ])
        .env("KEEPER_API_TOKEN", TOKEN)
        .output()
        .await
        .expect("keeper silence runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("on web until"), "{stdout}");
    let listed = app.get_json("/api/v1/silences").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["comment"], "maintenance");
    app.stop().await;
}

#[tokio::test]
async fn a_check_in_an_open_maintenance_window_is_recorded_but_not_paged() {
    let target = Target::start().await;
    target.set_status(503);
    let other = Target::start().await;
    other.set_status(503);
    let hook = Receiver::start().await;
    // A window starting every minute and lasting an hour is always open.
    let config = TestConfig::new()
        .check(
            Check::http("web", target.url("/"))
                .interval("200ms")
                .set("labels", table(&[("app", "web")])),
        )
        .check(
            Check::http("api", other.url("/"))
                .interval("200ms")
                .set("labels", table(&[("app", "api")])),
        )
        .page(&hook)
        .array(
            "maintenance",
            &[
                ("schedule", "* * * * *".into()),
                ("duration", "1h".into()),
                ("match", table(&[("app", "web")])),
                ("comment", "weekly upgrade".into()),
            ],
        );
    let app = spawn_app(Backend::Sqlite, config).await;
    let paged = wait_for(
        "the uncovered check's page",
        Duration::from_secs(20),
        || async { with_state(&hook, "opened").pop() },
    )
    .await;
    assert_eq!(paged["check"], "api");
    let web = wait_for(
        "web's incident, recorded",
        Duration::from_secs(20),
        || async {
            let c = app.check("web").await;
            c["incident"].is_i64().then_some(c)
        },
    )
    .await;
    assert_eq!(web["color"], "red");
    let seen = target.requests();
    wait_until(
        "four more failing probes of web",
        Duration::from_secs(20),
        || async { target.requests() >= seen + 4 },
    )
    .await;
    let pages: Vec<_> = with_state(&hook, "opened")
        .into_iter()
        .map(|n| n["check"].clone())
        .collect();
    assert_eq!(pages, ["api"], "web is in maintenance");
    app.stop().await;
}

#[tokio::test]
async fn a_target_failing_one_probe_in_three_never_pages_with_two_failures_before_alert() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Every third request fails: never two failures in a row.
    let served = Arc::new(AtomicUsize::new(0));
    let app_router = axum::Router::new().route(
        "/",
        axum::routing::get({
            let served = served.clone();
            move || {
                let n = served.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n % 3 == 2 {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "blip")
                    } else {
                        (axum::http::StatusCode::OK, "ok")
                    }
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app_router).await });
    let hook = Receiver::start().await;
    let config = TestConfig::new()
        .defaults("failures_before_alert", 2)
        .check(Check::http("flaky", format!("http://{addr}/")).interval("100ms"))
        .page(&hook);
    let app = spawn_app(Backend::Sqlite, config).await;
    wait_until(
        "thirty probes, ten of them failing",
        Duration::from_secs(30),
        || async { served.load(Ordering::SeqCst) >= 30 },
    )
    .await;
    wait_until(
        "the failures are stored",
        Duration::from_secs(10),
        || async {
            app.check("flaky").await["uptime_pct"]["24h"]
                .as_f64()
                .is_some_and(|pct| pct < 100.0)
        },
    )
    .await;
    let flaky = app.check("flaky").await;
    assert!(flaky["incident"].is_null(), "{flaky}");
    assert!(
        hook.requests().is_empty(),
        "a blip never pages: {:?}",
        hook.json_bodies()
    );
    app.stop().await;
    server.abort();
}

#[tokio::test]
async fn ten_checks_failing_within_group_wait_make_one_message_per_channel() {
    let target = Target::start().await;
    let hook = Receiver::start().await;
    let smtp = crate::support::smtp::SmtpServer::start().await;
    // keeper's own checks (`keeper:*`) are waited for too: the watchdog runs
    // them every 200 ms instead of spreading them over its default 30 s.
    let mut config = TestConfig::new().set("watchdog", "interval", "200ms");
    for i in 0..10 {
        config = config
            .check(Check::http(&format!("c{i}"), target.url(&format!("/c{i}"))).interval("200ms"));
    }
    let config = config
        .channel(Channel::webhook("hook", &hook))
        .channel(Channel::email("mail", &smtp, &["oncall@example.test"]))
        .route(Route::to(&["hook", "mail"]).set("group_wait", "3s"));
    let app = spawn_app(Backend::Sqlite, config).await;
    wait_until("every check probed", Duration::from_secs(20), || async {
        app.get_json("/api/v1/checks")
            .await
            .as_array()
            .unwrap()
            .iter()
            .all(|c| !c["last_run_at"].is_null())
    })
    .await;

    target.set_status(503);
    let batch = wait_for("one grouped webhook", Duration::from_secs(20), || async {
        hook.json_bodies().pop()
    })
    .await;
    let batch = batch.as_array().expect("a grouped webhook is a JSON array");
    assert_eq!(batch.len(), 10, "{batch:?}");
    assert!(batch.iter().all(|n| n["state"] == "opened"));
    let mails = smtp.wait_for_messages(1, Duration::from_secs(20)).await;
    assert!(
        mails[0]
            .subject
            .starts_with("[CRITICAL] 10 notifications: "),
        "{}",
        mails[0].subject
    );
    for i in 0..10 {
        let line = format!("Check:    c{i}");
        assert!(
            mails[0].body.lines().any(|l| l.trim_end() == line),
            "c{i} listed in {:?}",
            mails[0].body
        );
    }
    let seen = target.requests();
    wait_until("twenty more probes", Duration::from_secs(20), || async {
        target.requests() >= seen + 20
    })
    .await;
    assert_eq!(hook.requests().len(), 1, "one message for the storm");
    assert_eq!(smtp.messages().len(), 1, "one email for the storm");
    app.stop().await;
}

#[tokio::test]
async fn low_incidents_go_out_together_in_the_digest() {
    let target = Target::start().await;
    target.set_status(503);
    let hook = Receiver::start().await;
    // A digest every two seconds stands in for the daily one.
    let checks = [("docs", target.url("/docs")), ("blog", target.url("/blog"))];
    let app = spawn_app(
        Backend::Sqlite,
        low_config("*/2 * * * * *", &checks, "200ms", 2, &hook),
    )
    .await;
    wait_until(
        "both low incidents recorded",
        Duration::from_secs(20),
        || async {
            app.get_json("/api/v1/incidents")
                .await
                .as_array()
                .unwrap()
                .len()
                == 2
        },
    )
    .await;
    // A digest may fire between the two openings and list one; from the first
    // one listing both on, every message lists both.
    let (k, first) = wait_for(
        "the first digest with both",
        Duration::from_secs(20),
        || async {
            hook.json_bodies()
                .into_iter()
                .enumerate()
                .find(|(_, b)| b.as_array().is_some_and(|a| a.len() == 2))
        },
    )
    .await;
    let mut checks: Vec<&str> = first
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["check"].as_str().unwrap())
        .collect();
    checks.sort();
    assert_eq!(checks, ["blog", "docs"]);
    assert!(
        first
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["severity"] == "low")
    );
    wait_until("the next digest", Duration::from_secs(20), || async {
        hook.json_bodies().len() > k + 1
    })
    .await;
    for later in &hook.json_bodies()[k + 1..] {
        let later = later.as_array().expect("one message listing them all");
        assert_eq!(later.len(), 2, "{later:?}");
        assert!(later.iter().all(|n| n["state"] == "reminder"), "{later:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_low_incident_that_came_and_went_is_in_the_next_digest_once() {
    let target = Target::start().await;
    let hook = Receiver::start().await;
    // A digest every five seconds stands in for the daily one.
    let checks = [("flaky", target.url("/"))];
    let app = spawn_app(
        Backend::Sqlite,
        low_config("*/5 * * * * *", &checks, "100ms", 1, &hook),
    )
    .await;
    // Start the blip a second after a digest (one running late under load is
    // gone by then), so it comes and goes before the next.
    wait_until("just past a digest", Duration::from_secs(20), || async {
        let now = chrono::Utc::now();
        now.timestamp() % 5 == 1 && now.timestamp_subsec_millis() < 300
    })
    .await;
    target.set_status(503);
    let incidents = || async { app.get_json("/api/v1/incidents?state=all").await };
    wait_until("the low incident opens", Duration::from_secs(8), || async {
        incidents().await.as_array().unwrap().len() == 1
    })
    .await;
    target.set_status(200);
    wait_until("it resolves", Duration::from_secs(8), || async {
        incidents().await[0]["state"] == "resolved"
    })
    .await;
    assert!(hook.requests().is_empty(), "nothing before the digest");

    let told = hook.wait_for_json(1, Duration::from_secs(30)).await;
    assert_eq!(told[0]["check"], "flaky", "{told:?}");
    assert_eq!(told[0]["state"], "resolved", "{told:?}");
    assert_eq!(told[0]["severity"], "low", "{told:?}");
    assert!(told[0]["duration_s"].is_number(), "{told:?}");
    // Later digests do not list it again.
    let seen = target.requests();
    wait_until("six seconds of probes", Duration::from_secs(60), || async {
        target.requests() >= seen + 60
    })
    .await;
    assert_eq!(hook.requests().len(), 1, "{:?}", hook.json_bodies());
    app.stop().await;
}

#[tokio::test]
async fn whoever_heard_an_incident_open_hears_it_resolve_after_an_escalation() {
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::write(&code, "0").unwrap();
    let chat = Receiver::start().await;
    let pager = Receiver::start().await;
    // A plugin whose exit code the test sets: 1 yellow (medium), 2 red (critical), 0 green.
    let config = TestConfig::new()
        .check(
            Check::new("job", "command")
                .set(
                    "command",
                    vec![
                        "sh".to_string(),
                        "-c".to_string(),
                        format!("exit $(cat {})", code.display()),
                    ],
                )
                .interval("100ms")
                .set("failures_before_alert", 1)
                .set("successes_before_resolve", 1),
        )
        .channel(Channel::webhook("chat", &chat))
        .channel(Channel::webhook("pager", &pager))
        .route(Route::to(&["chat"]).set("severities", vec!["medium"]))
        .route(Route::to(&["pager"]).set("severities", vec!["critical"]));
    let app = spawn_app(Backend::Sqlite, config).await;
    // Replaced whole (write, then rename): the plugin never reads a half-written
    // file, which it would take for exit 0.
    let set_code = |value: &str| {
        let next = dir.path().join("code.next");
        std::fs::write(&next, value).unwrap();
        std::fs::rename(&next, &code).unwrap();
    };
    let states = |rx: &Receiver| -> Vec<String> {
        rx.json_bodies()
            .iter()
            .filter(|b| b["check"] == "job")
            .map(|b| b["state"].as_str().unwrap().to_string())
            .collect()
    };
    set_code("1");
    wait_until("chat hears it open", Duration::from_secs(20), || async {
        states(&chat) == ["opened"]
    })
    .await;
    set_code("2");
    wait_until(
        "pager hears it escalate",
        Duration::from_secs(20),
        || async { states(&pager) == ["escalated"] },
    )
    .await;
    set_code("0");
    wait_until("both hear it resolve", Duration::from_secs(20), || async {
        states(&chat) == ["opened", "resolved"] && states(&pager) == ["escalated", "resolved"]
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn with_the_digest_off_a_low_incident_pages_at_once() {
    let target = Target::start().await;
    target.set_status(503);
    let hook = Receiver::start().await;
    let checks = [("docs", target.url("/"))];
    let app = spawn_app(
        Backend::Sqlite,
        low_config("off", &checks, "100ms", 2, &hook),
    )
    .await;
    let opened = hook.wait_for_json(1, Duration::from_secs(20)).await;
    assert_eq!(opened[0]["check"], "docs", "{opened:?}");
    assert_eq!(opened[0]["state"], "opened", "{opened:?}");
    assert_eq!(opened[0]["severity"], "low", "{opened:?}");
    app.stop().await;
}
