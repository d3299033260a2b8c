//! keeper end to end, in-process against real servers on loopback: a target
//! that fails and recovers, a webhook receiver, a real SMTP server (aiosmtpd),
//! a TLS server with a short-lived certificate; on SQLite and on PostgreSQL.

use std::time::Duration;

use crate::support::app::{TestApp, spawn_app};
use crate::support::config::{Channel, Check, Route, TestConfig, table};
use crate::support::db::Backend;
use crate::support::db::both_backends;
use crate::support::receiver::Receiver;
use crate::support::smtp::SmtpServer;
use crate::support::target::{Target, TestCa};
use crate::support::{wait_for, wait_until};

const FAILURES_BEFORE_ALERT: u32 = 2;

/// A config paging `hook` (webhook) and `mail` (email) for every severity.
fn config(hook: &Receiver, smtp: &SmtpServer) -> TestConfig {
    TestConfig::new()
        .defaults("failures_before_alert", FAILURES_BEFORE_ALERT)
        .defaults("successes_before_resolve", 2)
        .channel(Channel::webhook("hook", hook))
        .channel(Channel::email("mail", smtp, &["oncall@example.test"]))
        .route(Route::to(&["hook", "mail"]))
}

fn web_check(target: &Target) -> Check {
    Check::http("web", target.url("/health"))
        .interval("250ms")
        .timeout("2s")
        .set("labels", table(&[("app", "web")]))
}

/// Notifications the receiver got, with `state`.
fn with_state(hook: &Receiver, state: &str) -> Vec<serde_json::Value> {
    hook.json_bodies()
        .into_iter()
        .filter(|n| n["state"] == state)
        .collect()
}

async fn wait_for_state(hook: &Receiver, state: &str, n: usize) -> Vec<serde_json::Value> {
    wait_for(
        &format!("{n} {state:?} webhook(s)"),
        Duration::from_secs(20),
        || async {
            let got = with_state(hook, state);
            (got.len() >= n).then_some(got)
        },
    )
    .await
}

both_backends!(
    async fn failing_target_pages_by_webhook_and_email_then_resolves(db) {
        let target = Target::start().await;
        let hook = Receiver::start().await;
        let smtp = SmtpServer::start().await;
        let app = TestApp::start_on(db, config(&hook, &smtp).check(web_check(&target))).await;
        wait_until("web is probed green", Duration::from_secs(10), || async {
            let c = app.check("web").await;
            c["color"] == "green" && !c["last_run_at"].is_null()
        })
        .await;

        // How soon the page follows the failure is the benchmark's to measure, not a test's.
        target.set_status(503);
        let opened = wait_for_state(&hook, "opened", 1).await.remove(0);
        let mail = smtp.wait_for_messages(1, Duration::from_secs(20)).await.remove(0);

        assert_eq!(opened["check"], "web");
        assert_eq!(opened["severity"], "critical");
        assert_eq!(opened["color"], "red");
        assert_eq!(opened["labels"]["app"], "web");
        assert!(opened["message"].as_str().unwrap().contains("503"), "{opened}");
        let id = opened["incident"].as_i64().expect("incident id");
        assert!(id > 0);
        assert!(mail.subject.starts_with("[CRITICAL] web opened: "), "{}", mail.subject);
        assert!(mail.subject.contains("503"), "{}", mail.subject);
        assert_eq!(mail.rcpt_tos, ["oncall@example.test"]);

        let web = app.check("web").await;
        assert_eq!(web["color"], "red");
        assert_eq!(web["severity"], "critical");
        assert_eq!(web["incident"], id);

        target.set_status(200);
        let resolved = wait_for_state(&hook, "resolved", 1).await.remove(0);
        assert_eq!(resolved["incident"], id);
        assert_eq!(resolved["color"], "green");
        let mails = smtp.wait_for_messages(2, Duration::from_secs(20)).await;
        assert!(mails[1].subject.starts_with("[CRITICAL] web resolved"), "{}", mails[1].subject);
        assert_eq!(with_state(&hook, "opened").len(), 1, "one page for one outage");
        wait_until("the API shows web green without an incident", Duration::from_secs(5), || async {
            let c = app.check("web").await;
            c["color"] == "green" && c["incident"].is_null()
        })
        .await;
        app.stop().await;
    }
);

both_backends!(
    async fn restart_while_failing_sends_no_second_open_and_resolves_the_same_incident(db) {
        let target = Target::start().await;
        target.set_status(500);
        let hook = Receiver::start().await;
        let smtp = SmtpServer::start().await;
        let config = config(&hook, &smtp).check(web_check(&target));

        let first = TestApp::start_on(db, config.clone()).await;
        let id = wait_for_state(&hook, "opened", 1).await[0]["incident"].clone();
        let db = first.stop().await;

        let second = TestApp::start_on(db, config).await;
        let web = second.check("web").await;
        assert_eq!(web["incident"], id, "the open incident is restored at start");
        assert_eq!(web["color"], "red");
        // Enough failing runs after the restart that a forgotten incident would have reopened.
        let seen = target.requests();
        wait_until("three more failing probes", Duration::from_secs(20), || async {
            target.requests() > seen + FAILURES_BEFORE_ALERT as usize
        })
        .await;
        let sent_to_api = second.check("web").await;
        assert_eq!(sent_to_api["incident"], id);
        assert_eq!(with_state(&hook, "opened").len(), 1, "no second \"opened\" after a restart");

        target.set_status(200);
        let resolved = wait_for_state(&hook, "resolved", 1).await;
        assert_eq!(resolved[0]["incident"], id, "the recovery resolves the same incident");
        assert_eq!(with_state(&hook, "opened").len(), 1);
        second.stop().await;
    }
);

#[tokio::test]
async fn an_incident_of_a_check_removed_from_the_config_resolves_at_start() {
    crate::support::init();
    let target = Target::start().await;
    target.set_status(500);
    let hook = Receiver::start().await;
    let smtp = SmtpServer::start().await;
    let config = config(&hook, &smtp);
    let first = spawn_app(Backend::Sqlite, config.clone().check(web_check(&target))).await;
    let id = wait_for_state(&hook, "opened", 1).await[0]["incident"].clone();
    let db = first.stop().await;

    // The same keeper, the check gone from its config.
    let second = TestApp::start_on(db, config).await;
    let resolved = wait_for_state(&hook, "resolved", 1).await;
    assert_eq!(resolved[0]["incident"], id);
    assert_eq!(resolved[0]["check"], "web");
    assert!(
        resolved[0]["message"]
            .as_str()
            .unwrap()
            .contains("no longer in the config"),
        "{resolved:?}"
    );
    let incidents = second.get_json("/api/v1/incidents?state=open").await;
    assert_eq!(incidents, serde_json::json!([]));
    second.stop().await;
}

#[tokio::test]
async fn certificate_expiring_in_five_days_opens_a_high_incident() {
    crate::support::init();
    let ca = TestCa::new();
    let leaf = ca.leaf_expiring_in(chrono::Duration::days(5));
    let server = Target::start_tls(&leaf).await;
    let hook = Receiver::start().await;
    let smtp = SmtpServer::start().await;
    let check = Check::new("cert", "tls")
        .set("host", server.host_port())
        .set("server_name", "localhost")
        .set("ca_file", ca.ca_file().display().to_string())
        .interval("1s");
    let app = spawn_app(Backend::Sqlite, config(&hook, &smtp).check(check)).await;
    let opened = wait_for_state(&hook, "opened", 1).await.remove(0);
    assert_eq!(opened["check"], "cert");
    assert_eq!(opened["severity"], "high");
    assert_eq!(opened["color"], "red");
    assert!(
        opened["message"]
            .as_str()
            .unwrap()
            .contains("cert_days_left"),
        "{opened}"
    );

    let metrics = app.get_text("/metrics").await;
    let expiry = metric_value(&metrics, "probe_ssl_earliest_cert_expiry{check=\"cert\"}")
        .expect("probe_ssl_earliest_cert_expiry for the check");
    assert_eq!(
        expiry,
        leaf.not_after.timestamp() as f64,
        "the certificate's notAfter"
    );

    // The stored samples carry the days left; bad queries are refused with a reason.
    let samples = crate::support::wait_for("stored samples", Duration::from_secs(20), || async {
        let s = app.get_json("/api/v1/checks/cert/samples").await;
        (!s.as_array().unwrap().is_empty()).then_some(s)
    })
    .await;
    let days = samples[0]["metrics"]["cert_days_left"]
        .as_f64()
        .expect("cert_days_left");
    assert!((4.9..=5.0).contains(&days), "{samples}");
    assert_eq!(samples[0]["color"], "red");
    let get = |path: &'static str| {
        let app = &app;
        async move {
            app.http
                .get(format!("{}{path}", app.base))
                .send()
                .await
                .unwrap()
        }
    };
    let bad = get("/api/v1/checks/cert/samples?since=yesterday").await;
    assert_eq!(bad.status(), 400);
    let reason: serde_json::Value = bad.json().await.unwrap();
    assert!(
        reason["error"].as_str().unwrap().contains("since"),
        "{reason}"
    );
    assert_eq!(get("/api/v1/checks/nope/samples").await.status(), 404);
    let future = get("/api/v1/checks/cert/samples?since=2999-01-01T00:00:00Z").await;
    assert_eq!(
        future.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!([])
    );
    app.stop().await;
}

/// The value of one exposition line starting with `series`.
pub fn metric_value(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn probing_and_the_api_go_on_while_the_database_is_gone() {
    crate::support::init();
    let target = Target::start().await;
    let hook = Receiver::start().await;
    let smtp = SmtpServer::start().await;
    // The watchdog (whose storage check /readyz reports) looks every 200 ms
    // instead of every 30 s.
    let config = config(&hook, &smtp)
        .set("watchdog", "interval", "200ms")
        .check(web_check(&target));
    let app = spawn_app(Backend::Postgres, config).await;
    let metric = |name: &'static str| {
        let app = &app;
        async move { metric_value(&app.get_text("/metrics").await, name).unwrap_or(0.0) }
    };
    wait_until("a sample is written", Duration::from_secs(20), || async {
        metric("keeper_samples_written_total").await > 0.0
    })
    .await;

    app.db.drop_now().await;
    let seen = target.requests();
    wait_until(
        "/readyz reports storage unreachable",
        Duration::from_secs(20),
        || async {
            let resp = app
                .http
                .get(format!("{}/readyz", app.base))
                .send()
                .await
                .unwrap();
            resp.status() == 503 && resp.text().await.unwrap().contains("storage")
        },
    )
    .await;
    wait_until(
        "probes go on without the database",
        Duration::from_secs(20),
        || async { target.requests() >= seen + 3 },
    )
    .await;
    wait_until(
        "unwritten samples wait in the buffer",
        Duration::from_secs(20),
        || async { metric("keeper_samples_pending").await > 0.0 },
    )
    .await;
    let web = app.check("web").await;
    assert_eq!(web["color"], "green", "{web}");
    // Uptime is kept in memory from the stored samples: it still answers.
    assert_eq!(
        web["uptime_pct"]["24h"], 100.0,
        "the stored samples' uptime without the database: {web}"
    );
    app.stop().await;
}
