//! Faults that must stay where they happen: a probe message keeper cannot
//! store as it is, an incident changed behind the engine's back, storage going
//! away while checks fail, a task of keeper's dying. Each of these once made
//! keeper stop paging without a word.

use std::time::Duration;

use crate::support::app::{TestApp, spawn_app_with};
use crate::support::config::{Check, TestConfig};
use crate::support::db::{Backend, TestDb, both_backends};
use crate::support::proxy::Proxy;
use crate::support::receiver::Receiver;
use crate::support::target::Target;
use crate::support::wait_until;

const WAIT: Duration = Duration::from_secs(30);

/// The webhook bodies `rx` received about check `check` in state `state`.
fn about(rx: &Receiver, check: &str, state: &str) -> Vec<serde_json::Value> {
    rx.json_bodies()
        .into_iter()
        .filter(|b| b["check"] == check && b["state"] == state)
        .collect()
}

both_backends!(
    async fn a_nul_byte_in_one_message_stops_no_sample_and_is_paged(db) {
        let target = Target::start().await;
        let rx = Receiver::start().await;
        let config = TestConfig::new()
            .check(
                Check::new("nul", "command")
                    .set("command", vec!["printf 'CRIT \\0 bad\\n'; exit 2"])
                    .set("shell", true)
                    .interval("200ms")
                    .set("failures_before_alert", 1),
            )
            .check(Check::http("web", target.url("/")).interval("200ms"))
            .page(&rx);
        let app = TestApp::start_on(db, config).await;

        wait_until("nul's incident is paged", WAIT, || async {
            !about(&rx, "nul", "opened").is_empty()
        })
        .await;
        let opened = &about(&rx, "nul", "opened")[0];
        let message = opened["message"].as_str().unwrap();
        assert!(!message.contains('\0'), "{message:?}");
        assert!(message.contains("CRIT") && message.contains("bad"), "{message:?}");

        // Both checks' samples reach the database, the one with the NUL too.
        wait_until("web's samples are written", WAIT, || async {
            app.db.samples_of("web").await > 0
        })
        .await;
        wait_until("nul's samples are written", WAIT, || async {
            app.db.samples_of("nul").await > 0
        })
        .await;
        let incidents = app.get_json("/api/v1/incidents?state=open").await;
        assert!(
            incidents.as_array().unwrap().iter().any(|i| i["check"] == "nul"),
            "{incidents}"
        );
        app.stop().await;
    }
);

both_backends!(
    async fn an_incident_resolved_behind_the_engines_back_stops_no_other_page(db) {
        let flaky = Target::start().await;
        flaky.set_status(503);
        let later = Target::start().await;
        let rx = Receiver::start().await;
        let config = TestConfig::new()
            .defaults("interval", "100ms")
            .defaults("failures_before_alert", 1)
            .defaults("successes_before_resolve", 1)
            .check(Check::http("flaky", flaky.url("/")))
            .check(Check::http("later", later.url("/")))
            .page(&rx);
        let app = TestApp::start_on(db, config).await;
        wait_until("flaky's incident is paged", WAIT, || async {
            !about(&rx, "flaky", "opened").is_empty()
        })
        .await;

        // Another writer resolves it; keeper still thinks it open.
        let resolved_at = match app.db.backend() {
            Backend::Sqlite => "1",
            Backend::Postgres => "now()",
        };
        let changed = app.db
            .execute(&format!(
                "UPDATE incidents SET resolved_at = {resolved_at} \
                 WHERE check_name = 'flaky' AND resolved_at IS NULL"
            ))
            .await;
        assert_eq!(changed, 1);
        // flaky recovers (its resolve finds nothing to resolve), then later fails.
        flaky.set_status(200);
        wait_until("flaky is green", WAIT, || async {
            app.check("flaky").await["color"] == "green"
        })
        .await;
        later.set_status(503);
        wait_until("later's incident is paged", WAIT, || async {
            !about(&rx, "later", "opened").is_empty()
        })
        .await;
        // flaky fails again: a new incident, paged.
        flaky.set_status(503);
        wait_until("flaky's second incident is paged", WAIT, || async {
            about(&rx, "flaky", "opened").len() == 2
        })
        .await;
        app.stop().await;
    }
);

#[tokio::test]
async fn a_failing_check_is_paged_and_resolved_while_storage_is_away() {
    let db = TestDb::postgres().await;
    let (proxy, url) = Proxy::in_front_of(db.url()).await;
    let web = Target::start().await;
    let rx = Receiver::start().await;
    // keeper reaches its database through the proxy.
    let config = TestConfig::new()
        .storage(url.as_str())
        .set("watchdog", "interval", "100ms")
        .set("watchdog", "timeout", "500ms")
        .check(
            Check::http("web", web.url("/"))
                .interval("100ms")
                .set("failures_before_alert", 1)
                .set("successes_before_resolve", 1),
        )
        .page(&rx);
    let app = TestApp::start_on(db, config).await;
    wait_until("web is green", WAIT, || async {
        app.check("web").await["color"] == "green"
    })
    .await;

    proxy.cut();
    wait_until("storage is seen away", WAIT, || async {
        !about(&rx, "keeper:storage", "opened").is_empty()
    })
    .await;
    web.set_status(503);
    wait_until(
        "web's incident is paged while storage is away",
        WAIT,
        || async { !about(&rx, "web", "opened").is_empty() },
    )
    .await;
    web.set_status(200);
    wait_until(
        "web's resolve is sent while storage is away",
        WAIT,
        || async { !about(&rx, "web", "resolved").is_empty() },
    )
    .await;

    let unwritten = |metrics: String| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("keeper_incident_changes_unwritten "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let waiting = unwritten(app.get_text("/metrics").await);
    assert!(waiting.is_some_and(|n| n >= 3.0), "{waiting:?}");

    proxy.restore();
    // Written down as it happened once the database is back, and not sent again.
    wait_until("web's incident is recorded, resolved", WAIT, || async {
        let all = app.get_json("/api/v1/incidents?state=all").await;
        all.as_array()
            .unwrap()
            .iter()
            .any(|i| i["check"] == "web" && i["state"] == "resolved")
    })
    .await;
    wait_until("storage's incident resolves", WAIT, || async {
        !about(&rx, "keeper:storage", "resolved").is_empty()
    })
    .await;
    assert_eq!(about(&rx, "web", "opened").len(), 1);
    assert_eq!(about(&rx, "web", "resolved").len(), 1);
    wait_until("nothing waits to be written down", WAIT, || async {
        unwritten(app.get_text("/metrics").await) == Some(0.0)
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_dying_task_fails_readiness_and_stops_keeper_with_an_error() {
    for task in ["engine", "outbox", "writer", "scheduler"] {
        let app = spawn_app_with(
            Backend::Sqlite,
            TestConfig::new(),
            keeper::app::Options {
                panic_task: Some(task.into()),
            },
        )
        .await;
        assert_eq!(app.get_status("/readyz").await.0, 200, "{task}");
        wait_until(
            &format!("/readyz fails after the {task} task died"),
            WAIT,
            || async {
                let (status, body) = app.get_status("/readyz").await;
                status == 503 && body.contains(&format!("the {task} task panicked"))
            },
        )
        .await;
        let ended = tokio::time::timeout(WAIT, app.wait())
            .await
            .expect("keeper stops by itself");
        match ended {
            Err(keeper::app::AppError::TaskDied(why)) => assert!(why.contains(task), "{why}"),
            other => panic!("{task}: expected TaskDied, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_process_exits_non_zero_when_a_task_dies() {
    let dir = tempfile::tempdir().unwrap();
    let config = TestConfig::new()
        .listen("127.0.0.1:0")
        .storage(format!(
            "sqlite://{}",
            dir.path().join("keeper.db").display()
        ))
        .write_in(dir.path());
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_keeper"))
            .args(["run", "-c"])
            .arg(&config)
            .env("KEEPER_DEBUG_PANIC", "engine")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("keeper exits by itself")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "exit status {:?}\n{stderr}",
        out.status
    );
    assert!(stderr.contains("the engine task panicked"), "{stderr}");
}

both_backends!(
    async fn free_text_from_the_api_with_a_nul_is_taken_cleaned(db) {
        let target = Target::start().await;
        target.set_status(503);
        let rx = Receiver::start().await;
        let config = TestConfig::new()
            .check(
                Check::http("web", target.url("/"))
                    .interval("100ms")
                    .set("failures_before_alert", 1),
            )
            .page(&rx);
        let app = TestApp::start_on(db, config).await;
        wait_until("web's incident is paged", WAIT, || async {
            !about(&rx, "web", "opened").is_empty()
        })
        .await;
        let id = about(&rx, "web", "opened")[0]["incident"].as_i64().unwrap();
        let acked = app
            .http
            .post(format!("{}/api/v1/incidents/{id}/ack", app.base))
            .json(&serde_json::json!({"by": "ops\u{0}team"}))
            .send()
            .await
            .unwrap();
        assert_eq!(acked.status(), 200, "{}", acked.text().await.unwrap());
        let silenced = app
            .http
            .post(format!("{}/api/v1/silences", app.base))
            .json(&serde_json::json!({
                "labels": {"app\u{0}": "x\u{0}"}, "for": "1h", "comment": "deploy \u{0} window"
            }))
            .send()
            .await
            .unwrap();
        let status = silenced.status();
        let silence: serde_json::Value = silenced.json().await.unwrap();
        assert_eq!(status, 201, "{silence}");
        assert_eq!(silence["comment"], "deploy \u{FFFD} window", "{silence}");
        wait_until("the acknowledgement reaches the channel", WAIT, || async {
            !about(&rx, "web", "acknowledged").is_empty()
        })
        .await;
        app.stop().await;
    }
);
