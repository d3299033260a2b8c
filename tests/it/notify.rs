//! Channels against real receivers on loopback (an HTTP receiver, aiosmtpd),
//! and the outbox worker driven step by step over a real SQLite store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use keeper::core::Outgoing;
use keeper::core::{Color, Severity};
use keeper::core::{EventKind, Notification};
use keeper::incident::IncidentChange;
use keeper::notify::outbox::Outbox;
use keeper::notify::{Channel, ChannelSpec, Deliver, email, slack, webhook};
use keeper::store::Store;
use serde_json::json;

use crate::support::receiver::{Receiver, Reply};
use crate::support::smtp::SmtpServer;
use crate::support::{init, wait_until};

const WAIT: Duration = Duration::from_secs(10);

/// The notification channel tests send (also used by `channels`).
pub(crate) fn notification(state: EventKind, severity: Severity) -> Notification {
    Notification {
        incident: 42,
        check: "web".into(),
        state,
        severity,
        color: Color::Red,
        message: "GET https://example.com/health: 503 Service Unavailable".into(),
        labels: BTreeMap::from([("app".into(), "web".into())]),
        started_at: Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap(),
        at: Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 30).unwrap(),
        url: Some("http://keeper.example/incidents/42".into()),
        duration_s: None,
    }
}

/// A client with the crypto provider installed.
pub(crate) fn http() -> reqwest::Client {
    init();
    reqwest::Client::new()
}

fn webhook_to(rx: &Receiver, headers: &[(&str, &str)]) -> webhook::Webhook {
    let spec = webhook::Spec {
        url: rx.url(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        secret: None,
    };
    webhook::Webhook::new(&spec, http()).expect("webhook spec")
}

fn slack_to(rx: &Receiver) -> slack::Slack {
    slack::Slack::new(&slack::Spec { url: rx.url() }, http()).expect("slack spec")
}

#[tokio::test]
async fn webhook_posts_the_design_json_with_configured_headers() {
    init();
    let rx = Receiver::start().await;
    let hook = webhook_to(
        &rx,
        &[("Authorization", "Bearer s3cret"), ("X-Team", "ops")],
    );

    hook.send(
        &notification(EventKind::Opened, Severity::Critical),
        "key-1",
    )
    .await
    .expect("delivered");

    let requests = rx.wait_for_requests(1, WAIT).await;
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hook");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("authorization"), Some("Bearer s3cret"));
    assert_eq!(r.header("x-team"), Some("ops"));
    assert_eq!(
        r.json(),
        json!({"incident": 42, "check": "web", "state": "opened", "severity": "critical",
               "color": "red", "message": "GET https://example.com/health: 503 Service Unavailable",
               "labels": {"app": "web"}, "started_at": "2026-11-27T08:00:00Z",
               "at": "2026-11-27T08:00:30Z", "url": "http://keeper.example/incidents/42"})
    );
}

#[tokio::test]
async fn webhook_classifies_failures() {
    init();
    let rx = Receiver::start().await;
    let hook = webhook_to(&rx, &[]);
    let n = notification(EventKind::Opened, Severity::Critical);

    rx.set_response(500, "boom");
    let e = hook.send(&n, "key-1").await.expect_err("500 fails");
    assert!(!e.permanent, "500 is transient: {e}");
    assert!(
        e.message.contains("500") && e.message.contains("boom"),
        "{e}"
    );

    rx.set_response(404, "");
    let e = hook.send(&n, "key-1").await.expect_err("404 fails");
    assert!(e.permanent, "404 is permanent: {e}");

    rx.set_reply(Reply::status(429).header("Retry-After", "7"));
    let e = hook.send(&n, "key-1").await.expect_err("429 fails");
    assert!(!e.permanent, "429 is transient: {e}");
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));

    rx.set_response(204, "");
    hook.send(&n, "key-1").await.expect("204 is success");
    assert_eq!(rx.requests().len(), 4);
}

#[tokio::test]
async fn webhook_network_error_is_transient_and_hides_the_url() {
    init();
    let rx = Receiver::start().await;
    let spec = webhook::Spec {
        url: format!("http://{}/token-s3cret", rx.addr()),
        headers: BTreeMap::new(),
        secret: None,
    };
    drop(rx); // nothing listens there any more
    let hook = webhook::Webhook::new(&spec, http()).expect("webhook spec");
    let e = hook
        .send(
            &notification(EventKind::Opened, Severity::Critical),
            "key-1",
        )
        .await
        .expect_err("refused");
    assert!(!e.permanent, "{e}");
    assert!(!e.message.contains("s3cret"), "{e}");
}

#[tokio::test]
async fn slack_payload_is_colored_by_severity_and_green_when_resolved() {
    init();
    let rx = Receiver::start().await;
    let slack = slack_to(&rx);
    let cases = [
        (EventKind::Opened, Severity::Critical, "danger"),
        (EventKind::Escalated, Severity::High, "danger"),
        (EventKind::Reminder, Severity::Medium, "warning"),
        (EventKind::Opened, Severity::Low, "#439fe0"),
        (EventKind::Resolved, Severity::Critical, "good"),
    ];
    for (state, severity, _) in cases {
        slack
            .send(&notification(state, severity), "key-1")
            .await
            .expect("delivered");
    }
    let bodies = rx.wait_for_json(cases.len(), WAIT).await;
    for ((state, severity, color), body) in cases.iter().zip(&bodies) {
        assert_eq!(
            body["attachments"][0]["color"], *color,
            "{state} {severity}"
        );
        let title = format!("web {state}");
        assert_eq!(body["attachments"][0]["title"], title.as_str());
    }
    assert_eq!(
        bodies[0]["text"],
        "🔴 [CRITICAL] web opened: GET https://example.com/health: 503 Service Unavailable"
    );
    assert!(
        bodies[4]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("✅ [CRITICAL] web resolved")),
        "{}",
        bodies[4]["text"]
    );
    let r = &rx.requests()[0];
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn slack_error_body_is_in_the_error() {
    init();
    let rx = Receiver::start().await;
    rx.set_response(400, "invalid_payload");
    let e = slack_to(&rx)
        .send(&notification(EventKind::Opened, Severity::High), "key-1")
        .await
        .expect_err("400 fails");
    assert!(e.permanent, "{e}");
    assert!(e.message.contains("invalid_payload"), "{e}");
}

fn email_spec(smtp: &SmtpServer, to: &[&str]) -> email::Spec {
    email::Spec {
        smtp: smtp.url(),
        from: "Keeper <keeper@example.com>".into(),
        to: to.iter().map(|s| s.to_string()).collect(),
        ca_file: None,
        insecure_plaintext: false,
    }
}

#[tokio::test]
async fn email_goes_through_smtp_with_the_severity_subject() {
    init();
    let smtp = SmtpServer::start().await;
    let mail = email::Email::new(&email_spec(
        &smtp,
        &["oncall@example.com", "ops@example.com"],
    ))
    .expect("email spec");
    let mut n = notification(EventKind::Opened, Severity::Critical);
    n.message = "GET https://example.com/health: 503 — ünïcode".into();

    mail.send(&n, "key-1").await.expect("delivered");

    let messages = smtp.wait_for_messages(1, WAIT).await;
    let m = &messages[0];
    assert_eq!(
        m.subject,
        "[CRITICAL] web opened: GET https://example.com/health: 503 — ünïcode"
    );
    assert_eq!(m.mail_from, "keeper@example.com");
    assert_eq!(m.rcpt_tos, ["oncall@example.com", "ops@example.com"]);
    assert!(m.from.contains("keeper@example.com"), "{}", m.from);
    assert!(
        m.to.contains("oncall@example.com") && m.to.contains("ops@example.com"),
        "{}",
        m.to
    );
    assert_eq!(m.content_type, "text/plain");
    assert!(m.body.contains("503 — ünïcode"), "{}", m.body);
    assert!(m.body.contains("Severity: critical"), "{}", m.body);
    assert!(
        m.body.contains("http://keeper.example/incidents/42"),
        "{}",
        m.body
    );
}

#[tokio::test]
async fn email_rejected_recipient_is_permanent_and_4xx_transient() {
    init();
    let smtp = SmtpServer::start().await;
    let n = notification(EventKind::Opened, Severity::Critical);

    let rejected = email::Email::new(&email_spec(&smtp, &["reject@example.com"])).expect("spec");
    let e = rejected.send(&n, "key-1").await.expect_err("550");
    assert!(e.permanent, "{e}");

    let later = email::Email::new(&email_spec(&smtp, &["later@example.com"])).expect("spec");
    let e = later.send(&n, "key-1").await.expect_err("451");
    assert!(!e.permanent, "{e}");
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn email_unreachable_server_is_transient() {
    init();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let spec = email::Spec {
        smtp: format!("smtp://user:pa%40ss@127.0.0.1:{port}"),
        from: "keeper@example.com".into(),
        to: vec!["ops@example.com".into()],
        ca_file: None,
        insecure_plaintext: false,
    };
    let e = email::Email::new(&spec)
        .expect("spec")
        .send(
            &notification(EventKind::Opened, Severity::Critical),
            "key-1",
        )
        .await
        .expect_err("refused");
    assert!(!e.permanent, "{e}");
    assert!(
        !e.message.contains("pa@ss") && !e.message.contains("pa%40ss"),
        "{e}"
    );
}

#[tokio::test]
async fn email_invalid_address_is_refused_at_build() {
    init();
    let spec = email::Spec {
        smtp: "smtp://127.0.0.1:25".into(),
        from: "keeper@example.com".into(),
        to: vec!["oncall@example.com".into(), "not-an-address".into()],
        ca_file: None,
        insecure_plaintext: false,
    };
    let e = email::Email::new(&spec).expect_err("bad to");
    assert!(e.contains("not-an-address"), "{e}");
}

// ---- the outbox worker over a real store -------------------------------------

/// A fresh SQLite store with one open incident, its notification queued for each of
/// `channels`; returns the store and the incident id.
async fn store_with_queued(dir: &tempfile::TempDir, channels: &[&str]) -> (Store, i64) {
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    // Rows are due from the change's time on: now.
    let mut n = notification(EventKind::Opened, Severity::Critical);
    n.started_at = Utc::now();
    n.at = n.started_at;
    let outgoing = channels
        .iter()
        .map(|c| Outgoing {
            channel: c.to_string(),
            notification: n.clone(),
            batch_at: None,
        })
        .collect();
    let incident = store
        .record(
            IncidentChange::Open {
                check: "web".into(),
                severity: Severity::Critical,
                color: Color::Red,
                message: n.message.clone(),
                at: n.at,
                notify: true,
            },
            outgoing,
        )
        .await
        .expect("record");
    (store, incident.id)
}

fn outbox(store: Store, channels: &[(&str, &Receiver)]) -> (Outbox, prometheus::IntCounterVec) {
    let http = http();
    let channels: BTreeMap<String, Channel> = channels
        .iter()
        .map(|(name, rx)| {
            let spec = ChannelSpec::Webhook(webhook::Spec {
                url: rx.url(),
                headers: BTreeMap::new(),
                secret: None,
            });
            (name.to_string(), spec.build(&http).expect("channel"))
        })
        .collect();
    let counter = keeper::metrics::Metrics::new(&[]).notifications;
    let outbox = Outbox::new(store, Arc::new(channels), counter.clone())
        .with_backoff(Duration::from_millis(20), Duration::from_millis(100));
    (outbox, counter)
}

fn count(counter: &prometheus::IntCounterVec, channel: &str, outcome: &str) -> u64 {
    counter.with_label_values(&[channel, outcome]).get()
}

#[tokio::test]
async fn outbox_retries_500_until_delivered_once() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let rx = Receiver::start().await;
    rx.push_response(Reply::status(500));
    rx.push_response(Reply::status(500));
    let (store, incident) = store_with_queued(&dir, &["hook"]).await;
    let (outbox, counter) = outbox(store.clone(), &[("hook", &rx)]);

    wait_until("the notification is delivered", WAIT, || async {
        outbox.step().await.expect("step");
        count(&counter, "hook", "sent") == 1
    })
    .await;

    let bodies = rx.json_bodies();
    assert_eq!(bodies.len(), 3, "two 500s, then the 200");
    assert_eq!(bodies[2]["incident"], incident);
    assert_eq!(count(&counter, "hook", "retry"), 2);
    // Delivered means done: later steps send nothing.
    assert_eq!(outbox.step().await.expect("step").sent, 0);
    let later = Utc::now() + chrono::Duration::hours(1);
    assert!(
        store
            .due_notifications(later, 10)
            .await
            .expect("due")
            .entries
            .is_empty()
    );
    assert_eq!(rx.requests().len(), 3);
}

#[tokio::test]
async fn outbox_gives_up_on_404_at_once() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let rx = Receiver::start().await;
    rx.set_response(404, "no such hook");
    let (store, _) = store_with_queued(&dir, &["hook"]).await;
    let (outbox, counter) = outbox(store.clone(), &[("hook", &rx)]);

    let report = outbox.step().await.expect("step");
    assert_eq!(report.failed, 1, "{report:?}");
    assert_eq!(count(&counter, "hook", "failed"), 1);
    assert_eq!(count(&counter, "hook", "retry"), 0);
    let later = Utc::now() + chrono::Duration::hours(1);
    assert!(
        store
            .due_notifications(later, 10)
            .await
            .expect("due")
            .entries
            .is_empty()
    );
    assert_eq!(rx.requests().len(), 1);
}

#[tokio::test]
async fn outbox_fails_rows_of_an_unknown_channel_and_still_sends_the_others() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let rx = Receiver::start().await;
    let (store, _) = store_with_queued(&dir, &["gone", "hook"]).await;
    let (outbox, counter) = outbox(store.clone(), &[("hook", &rx)]);

    let report = outbox.step().await.expect("step");
    assert_eq!((report.sent, report.failed), (1, 1), "{report:?}");
    assert_eq!(count(&counter, "gone", "failed"), 1);
    assert_eq!(count(&counter, "hook", "sent"), 1);
    assert_eq!(rx.requests().len(), 1);
}

#[tokio::test]
async fn outbox_gives_up_past_max_age() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let rx = Receiver::start().await;
    rx.set_response(503, "");
    let (store, _) = store_with_queued(&dir, &["hook"]).await;
    let (outbox, counter) = outbox(store.clone(), &[("hook", &rx)]);
    let outbox = outbox.with_max_age(Duration::from_millis(400));

    wait_until("the notification is given up", WAIT, || async {
        outbox.step().await.expect("step");
        count(&counter, "hook", "failed") == 1
    })
    .await;
    let retries = count(&counter, "hook", "retry");
    assert!(retries >= 2, "retried until max_age: {retries}");
    assert_eq!(rx.requests().len() as u64, retries + 1);
    assert_eq!(outbox.step().await.expect("step").sent, 0);
    assert_eq!(rx.requests().len() as u64, retries + 1);
}

#[tokio::test]
async fn outbox_run_delivers_soon_after_a_wake_up_and_stops_on_shutdown() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let rx = Receiver::start().await;
    let (store, id) = store_with_queued(&dir, &[]).await;
    let (outbox, counter) = outbox(store.clone(), &[("hook", &rx)]);
    // Only a wake-up can make it look again within the test's time.
    let outbox = outbox.with_poll_interval(Duration::from_secs(600));
    let wake = outbox.waker();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(outbox.run(shutdown.clone()));

    let mut resolved = notification(EventKind::Resolved, Severity::Critical);
    resolved.incident = id;
    store
        .record(
            IncidentChange::Resolve {
                id,
                message: "ok again".into(),
                at: Utc::now(),
            },
            vec![Outgoing {
                channel: "hook".into(),
                notification: resolved,
                batch_at: None,
            }],
        )
        .await
        .expect("record resolve");
    wake.notify_one();
    let bodies = rx.wait_for_json(1, Duration::from_secs(2)).await;
    assert_eq!(bodies[0]["state"], "resolved");
    wait_until("the delivery is counted", WAIT, || async {
        count(&counter, "hook", "sent") == 1
    })
    .await;

    shutdown.cancel();
    tokio::time::timeout(WAIT, task)
        .await
        .expect("run stops on shutdown")
        .expect("run does not panic");
}

#[tokio::test]
async fn email_upgrades_with_starttls_when_the_server_offers_it() {
    crate::support::init();
    let ca = crate::support::target::TestCa::new();
    let leaf = ca.leaf_expiring_in(chrono::Duration::days(30));
    let smtp = SmtpServer::start_tls(&leaf).await;
    // aiosmtpd here requires STARTTLS: the message only arrives if the channel upgraded.
    let trusting = email::Email::new(&email::Spec {
        ca_file: Some(ca.ca_file().to_path_buf()),
        ..email_spec(&smtp, &["oncall@example.com"])
    })
    .expect("email channel");
    trusting
        .send(
            &notification(EventKind::Opened, Severity::Critical),
            "key-1",
        )
        .await
        .expect("sent over STARTTLS");
    let got = smtp.wait_for_messages(1, Duration::from_secs(10)).await;
    assert!(
        got[0].subject.starts_with("[CRITICAL] web opened"),
        "{}",
        got[0].subject
    );

    // Without the CA the upgrade fails: a transient error naming the certificate.
    let untrusting =
        email::Email::new(&email_spec(&smtp, &["oncall@example.com"])).expect("email channel");
    let e = untrusting
        .send(
            &notification(EventKind::Opened, Severity::Critical),
            "key-1",
        )
        .await
        .expect_err("untrusted certificate");
    assert!(!e.permanent, "{e}");
    assert!(e.message.to_lowercase().contains("certificate"), "{e}");
}

#[tokio::test]
async fn email_speaks_implicit_tls_to_smtps() {
    crate::support::init();
    let ca = crate::support::target::TestCa::new();
    let leaf = ca.leaf_expiring_in(chrono::Duration::days(30));
    let smtp = SmtpServer::start_smtps(&leaf).await;
    let channel = email::Email::new(&email::Spec {
        smtp: smtp.smtps_url(),
        ca_file: Some(ca.ca_file().to_path_buf()),
        ..email_spec(&smtp, &["oncall@example.com"])
    })
    .expect("email channel");
    channel
        .send(&notification(EventKind::Resolved, Severity::High), "key-1")
        .await
        .expect("sent over implicit TLS");
    let got = smtp.wait_for_messages(1, Duration::from_secs(10)).await;
    assert!(
        got[0].subject.starts_with("[HIGH] web resolved"),
        "{}",
        got[0].subject
    );
}

#[tokio::test]
async fn a_channel_keeps_its_pace() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = store_with_queued(&dir, &["fast"]).await;
    for check in ["a", "b", "c"] {
        let mut n = notification(EventKind::Opened, Severity::Critical);
        n.check = check.into();
        n.at = Utc::now();
        n.started_at = n.at;
        store
            .record(
                IncidentChange::Open {
                    check: check.into(),
                    severity: Severity::Critical,
                    color: Color::Red,
                    message: n.message.clone(),
                    at: n.at,
                    notify: true,
                },
                vec![Outgoing {
                    channel: "paced".into(),
                    notification: n,
                    batch_at: None,
                }],
            )
            .await
            .expect("record");
    }
    let paced = Receiver::start().await;
    let fast = Receiver::start().await;
    let (outbox, counter) = outbox(store, &[("paced", &paced), ("fast", &fast)]);
    let outbox = outbox.with_pacing(BTreeMap::from([(
        "paced".to_string(),
        Duration::from_millis(300),
    )]));
    let started = std::time::Instant::now();
    let report = outbox.step().await.expect("step");
    let took = started.elapsed();
    assert_eq!(report.sent, 4);
    assert_eq!(count(&counter, "paced", "sent"), 3);
    assert_eq!(paced.requests().len(), 3);
    assert_eq!(fast.requests().len(), 1);
    // Three messages one pace apart: at least two intervals (a lower bound, so noise cannot break it).
    assert!(took >= Duration::from_millis(600), "sent three in {took:?}");
}

#[test]
fn channels_take_min_interval_with_defaults_by_kind() {
    let config = keeper::config::Config::parse(
        std::path::Path::new("keeper.toml"),
        "[channels.chat]\nkind = \"slack\"\nurl = \"http://127.0.0.1:1/\"\n\n[channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\nmin_interval = \"2s\"\n",
        &|_| None,
    )
    .expect("config");
    let by_name: BTreeMap<_, _> = config
        .channels
        .iter()
        .map(|c| (c.name.as_str(), c.min_interval))
        .collect();
    assert_eq!(
        by_name["chat"],
        Duration::from_secs(1),
        "Slack's documented pace"
    );
    assert_eq!(by_name["hook"], Duration::from_secs(2));
}
