//! Delivery that never gives up on a transient failure (DESIGN.md §4): the
//! real app against a loopback receiver, with `[delivery]` caps small enough
//! for tests. Also: one undecodable row (in the outbox, or among the rows
//! loaded at start) stays there and never stops the others.

use std::time::Duration;

use keeper::core::EventKind;
use keeper::core::Severity;
use sqlx::Connection;

use crate::support::app::{TestApp, spawn_app};
use crate::support::config::{Check, TestConfig};
use crate::support::db::{Backend, TestDb, both_backends};
use crate::support::receiver::{Receiver, Reply};
use crate::support::target::Target;
use crate::support::{wait_for, wait_until};

const WAIT: Duration = Duration::from_secs(20);

/// One failing `http` check `web` routed to `hook`, with `delivery` as the
/// `[delivery]` section's keys (no section when empty).
fn config(target: &Target, hook: &Receiver, delivery: &[(&str, &str)]) -> TestConfig {
    let mut config = TestConfig::new();
    for (key, value) in delivery {
        config = config.delivery(key, *value);
    }
    config
        .check(Check::http("web", target.url("/health")).interval("200ms"))
        .page(hook)
}

/// `(id, status, attempts, last_error)` of every outbox row, by id.
async fn outbox_rows(db: &TestDb) -> Vec<(i64, String, i64, Option<String>)> {
    let sql = "SELECT id, status, CAST(attempts AS BIGINT), last_error FROM outbox ORDER BY id";
    match db.backend() {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(db.url())
                .await
                .expect("connect");
            let sql = "SELECT id, status, attempts, last_error FROM outbox ORDER BY id";
            sqlx::query_as(sql).fetch_all(&mut conn).await
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(db.url())
                .await
                .expect("connect");
            sqlx::query_as(sql).fetch_all(&mut conn).await
        }
    }
    .expect("reading the outbox")
}

/// Requests whose body is one `opened` notification.
fn openings(hook: &Receiver) -> Vec<crate::support::recorded::Recorded> {
    hook.requests()
        .into_iter()
        .filter(|r| r.json()["state"] == "opened")
        .collect()
}

#[tokio::test]
async fn a_503_outage_longer_than_the_old_give_up_is_retried_until_delivered_once() {
    let target = Target::start().await;
    target.set_status(503);
    let hook = Receiver::start().await;
    // Twelve refusals: the old rule gave up after eight.
    for _ in 0..12 {
        hook.push_response(Reply::status(503).body("maintenance"));
    }
    let app = spawn_app(
        Backend::Sqlite,
        config(
            &target,
            &hook,
            &[("min_backoff", "20ms"), ("max_backoff", "100ms")],
        ),
    )
    .await;

    wait_until("the opening is delivered", WAIT, || async {
        outbox_rows(&app.db).await.iter().any(|r| r.1 == "sent")
    })
    .await;
    let rows = outbox_rows(&app.db).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].2, 12, "twelve failed attempts recorded: {rows:?}");
    let sent = openings(&hook);
    assert_eq!(sent.len(), 13, "twelve 503s, then the one 200");
    let key = sent[0]
        .header("idempotency-key")
        .expect("an Idempotency-Key header")
        .to_string();
    assert_eq!(
        key,
        rows[0].0.to_string(),
        "the key is the notification's id"
    );
    for r in &sent {
        assert_eq!(r.header("idempotency-key"), Some(key.as_str()));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_400_fails_at_once_with_the_answer_recorded() {
    let target = Target::start().await;
    target.set_status(503);
    let hook = Receiver::start().await;
    hook.set_response(400, "unknown room #ops");
    let app = spawn_app(
        Backend::Sqlite,
        config(&target, &hook, &[("min_backoff", "20ms")]),
    )
    .await;

    let row = wait_for("the notification is failed", WAIT, || async {
        outbox_rows(&app.db)
            .await
            .into_iter()
            .find(|r| r.1 == "failed")
    })
    .await;
    let error = row.3.unwrap_or_default();
    assert!(
        error.contains("400") && error.contains("unknown room #ops"),
        "{error}"
    );
    assert_eq!(row.2, 1, "one attempt");
    assert_eq!(hook.requests().len(), 1, "no second attempt");
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains(r#"keeper_notifications_total{channel="hook",outcome="failed"} 1"#),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn past_max_age_a_failing_notification_is_failed_and_counted() {
    let target = Target::start().await;
    target.set_status(503);
    let hook = Receiver::start().await;
    hook.set_response(503, "still down");
    let delivery = [
        ("max_age", "1s"),
        ("min_backoff", "50ms"),
        ("max_backoff", "200ms"),
    ];
    let app = spawn_app(Backend::Sqlite, config(&target, &hook, &delivery)).await;

    let row = wait_for("the notification is failed", WAIT, || async {
        outbox_rows(&app.db)
            .await
            .into_iter()
            .find(|r| r.1 == "failed")
    })
    .await;
    let error = row.3.clone().unwrap_or_default();
    assert!(
        error.contains("503") && error.contains("still down"),
        "{error}"
    );
    assert!(error.contains("max_age"), "{error}");
    assert!(row.2 >= 2, "retried before giving up: {row:?}");
    let tried = hook.requests().len();
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains(r#"keeper_notifications_total{channel="hook",outcome="failed"} 1"#),
        "{metrics}"
    );
    assert_eq!(hook.requests().len(), tried, "no attempt after failing");
    app.stop().await;
}

#[tokio::test]
async fn a_pending_row_keeps_its_attempts_and_key_across_a_restart() {
    let target = Target::start().await;
    target.set_status(503);
    let hook = Receiver::start().await;
    hook.set_response(503, "");
    let config = config(
        &target,
        &hook,
        &[("min_backoff", "100ms"), ("max_backoff", "300ms")],
    );
    let app = spawn_app(Backend::Sqlite, config.clone()).await;
    wait_until("three attempts", WAIT, || async {
        hook.requests().len() >= 3
    })
    .await;
    let db = app.stop().await;
    let before = outbox_rows(&db).await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0].1, "pending");
    assert!(before[0].2 >= 3, "{before:?}");

    hook.set_response(200, "ok");
    let app = TestApp::start_on(db, config).await;
    wait_until(
        "the opening is delivered after the restart",
        WAIT,
        || async { outbox_rows(&app.db).await[0].1 == "sent" },
    )
    .await;
    let after = outbox_rows(&app.db).await;
    assert_eq!(
        after[0].2, before[0].2,
        "the attempt count is kept: {after:?}"
    );
    let sent = openings(&hook);
    assert_eq!(
        sent.len() as i64,
        before[0].2 + 1,
        "one more attempt, delivered"
    );
    let key = before[0].0.to_string();
    for r in &sent {
        assert_eq!(r.header("idempotency-key"), Some(key.as_str()));
    }
    app.stop().await;
}

/// Inserts a resolved incident of a check no longer configured, and returns its id.
async fn old_incident(db: &TestDb) -> i64 {
    db.execute(match db.backend() {
            Backend::Sqlite => {
                "INSERT INTO incidents (id, check_name, severity, color, message, started_at, resolved_at, notified_at) \
                 VALUES (900, 'gone', 'critical', 'red', 'was down', 1000, 2000, 1000)"
            }
            Backend::Postgres => {
                "INSERT INTO incidents (id, check_name, severity, color, message, started_at, resolved_at, notified_at) \
                 VALUES (900, 'gone', 'critical', 'red', 'was down', now(), now(), now())"
            }
        },
    )
    .await;
    900
}

/// Queues an outbox row for `hook` with `payload` and `attempts` (SQL text).
async fn queue_row(db: &TestDb, id: i64, incident: i64, payload: &str, attempts: &str) {
    let payload = payload.replace('\'', "''");
    let now = match db.backend() {
        Backend::Sqlite => chrono::Utc::now().timestamp_millis().to_string(),
        Backend::Postgres => "now()".to_string(),
    };
    db.execute(&format!(
            "INSERT INTO outbox (id, incident_id, channel, payload, attempts, next_attempt_at, created_at) \
             VALUES ({id}, {incident}, 'hook', '{payload}', {attempts}, {now}, {now})"
        ),
    )
    .await;
}

both_backends!(
    async fn a_corrupt_outbox_row_is_failed_and_the_others_are_delivered(db) {
        db.store().await;
        let target = Target::start().await;
        target.set_status(503);
        let hook = Receiver::start().await;
        let incident = old_incident(&db).await;
        let mut good = crate::notify::notification(EventKind::Resolved, Severity::Critical);
        good.incident = incident;
        good.check = "gone".into();
        let good = serde_json::to_string(&good).expect("json");
        let exploded = good.replace("\"resolved\"", "\"exploded\"");
        queue_row(&db, 1, incident, "not json", "0").await;
        queue_row(&db, 2, incident, &exploded, "0").await;
        if db.backend() == Backend::Sqlite {
            // SQLite keeps whatever it is given: text where a number belongs.
            queue_row(&db, 3, incident, &good, "'many'").await;
        }
        queue_row(&db, 4, incident, &good, "0").await;
        let app = TestApp::start_on(db, config(&target, &hook, &[])).await;

        wait_until("the good rows are delivered", WAIT, || async {
            let states: Vec<_> = hook.json_bodies().iter().map(|b| b["state"].clone()).collect();
            states.contains(&"resolved".into()) && states.contains(&"opened".into())
        })
        .await;
        let rows = outbox_rows(&app.db).await;
        let status = |id: i64| rows.iter().find(|r| r.0 == id).expect("row").clone();
        for bad in [1, 2] {
            let row = status(bad);
            assert_eq!(row.1, "failed", "{rows:?}");
            let why = row.3.unwrap_or_default();
            assert!(why.contains("payload"), "row {bad}: {why}");
        }
        assert!(status(2).3.unwrap_or_default().contains("exploded"), "{rows:?}");
        if app.db.backend() == Backend::Sqlite {
            assert_eq!(status(3).1, "failed", "{rows:?}");
            assert!(status(3).3.unwrap_or_default().contains("attempts"), "{rows:?}");
        }
        assert_eq!(status(4).1, "sent", "{rows:?}");
        let metrics = app.get_text("/metrics").await;
        let failed = if app.db.backend() == Backend::Sqlite { 3 } else { 2 };
        assert!(
            metrics.contains(&format!(
                r#"keeper_notifications_total{{channel="hook",outcome="failed"}} {failed}"#
            )),
            "{metrics}"
        );
        app.stop().await;
    }
);

both_backends!(
    async fn bad_rows_at_start_are_skipped_and_keeper_starts(db) {
        db.store().await;
        let target = Target::start().await;
        target.set_status(503);
        let hook = Receiver::start().await;
        let (now, future) = match db.backend() {
            Backend::Sqlite => {
                let now = chrono::Utc::now().timestamp_millis();
                (now.to_string(), (now + 3_600_000).to_string())
            }
            Backend::Postgres => ("now()".into(), "now() + interval '1 hour'".into()),
        };
        // An open incident with a severity keeper does not know.
        db.execute(&format!(
                "INSERT INTO incidents (check_name, severity, color, message, started_at, notified_at) \
                 VALUES ('gone', 'apocalyptic', 'red', 'x', {now}, {now})"
            ),
        )
        .await;
        // A silence of `web` whose labels are not JSON: skipped, so web still pages.
        db.execute(&format!(
                "INSERT INTO silences (check_name, labels, starts_at, ends_at, comment) \
                 VALUES ('web', 'not json', {now}, {future}, 'broken')"
            ),
        )
        .await;
        // A last sample of a colour keeper does not know.
        db.execute(&format!(
                "INSERT INTO samples (check_name, at, duration_ms, up, color, latency_ms, message) \
                 VALUES ('web', {now}, 1, {up}, 'purple', 1, 'x')",
                up = if db.backend() == Backend::Sqlite { "1" } else { "true" },
            ),
        )
        .await;
        if db.backend() == Backend::Sqlite {
            // Text where a timestamp belongs: only SQLite takes it.
            db.execute("INSERT INTO heartbeats (check_name, token, first_seen) VALUES ('beat', NULL, 'yesterday')",
            )
            .await;
            db.execute("INSERT INTO incidents (check_name, severity, color, message, started_at) \
                 VALUES ('other', 'critical', 'red', 'x', 'last week')",
            )
            .await;
        }
        let config =
            config(&target, &hook, &[]).check(Check::heartbeat("beat").set("period", "1d"));
        let app = TestApp::start_on(db, config).await;

        let ready = app.http.get(format!("{}/readyz", app.base)).send().await.expect("readyz");
        assert_eq!(ready.status(), 200, "{:?}", ready.text().await);
        let opened = wait_for("web's opening", WAIT, || async {
            hook.json_bodies().into_iter().find(|b| b["state"] == "opened")
        })
        .await;
        assert_eq!(opened["check"], "web");
        app.stop().await;
    }
);

#[tokio::test]
async fn every_http_channel_sends_the_notification_id_as_idempotency_key() {
    use keeper::notify::{
        ChannelSpec, alertmanager, discord, ntfy, pagerduty, slack, teams, webhook,
    };
    let rx = Receiver::start().await;
    let url = rx.url();
    let specs = [
        ChannelSpec::Webhook(webhook::Spec {
            url: url.clone(),
            headers: Default::default(),
            secret: None,
        }),
        ChannelSpec::Slack(slack::Spec { url: url.clone() }),
        ChannelSpec::Discord(discord::Spec { url: url.clone() }),
        ChannelSpec::Teams(teams::Spec { url: url.clone() }),
        ChannelSpec::Ntfy(ntfy::Spec {
            url: url.clone(),
            token: None,
        }),
        ChannelSpec::PagerDuty(pagerduty::Spec {
            routing_key: "R0UTING".into(),
            url: Some(url.clone()),
        }),
        ChannelSpec::Alertmanager(alertmanager::Spec {
            url: rx.url_for(""),
            headers: Default::default(),
            resend: None,
        }),
    ];
    let http = crate::notify::http();
    let n = crate::notify::notification(EventKind::Opened, Severity::Critical);
    for (i, spec) in specs.iter().enumerate() {
        let channel = spec.build(&http).expect("channel");
        // Twice: a retry carries the same key.
        for _ in 0..2 {
            channel.send(&n, "4711").await.expect("delivered");
        }
        let requests = rx.wait_for_requests(2 * (i + 1), WAIT).await;
        for r in &requests[2 * i..] {
            assert_eq!(r.header("idempotency-key"), Some("4711"), "{}", spec.kind());
        }
    }
}

#[tokio::test]
async fn an_email_carries_a_message_id_made_from_the_notification_id() {
    use keeper::notify::Deliver;
    let smtp = crate::support::smtp::SmtpServer::start().await;
    let spec = keeper::notify::email::Spec {
        smtp: smtp.url(),
        from: "Keeper <keeper@example.com>".into(),
        to: vec!["oncall@example.com".into()],
        ca_file: None,
        insecure_plaintext: false,
    };
    let mail = keeper::notify::email::Email::new(&spec).expect("email spec");
    let n = crate::notify::notification(EventKind::Opened, Severity::Critical);
    mail.send(&n, "4711").await.expect("delivered");
    mail.send(&n, "4711").await.expect("delivered again");
    mail.send(&n, "direct-00ff").await.expect("delivered");
    let ids: Vec<String> = smtp
        .wait_for_messages(3, WAIT)
        .await
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(
        ids,
        [
            "<keeper.4711@example.com>",
            "<keeper.4711@example.com>",
            "<keeper.direct-00ff@example.com>"
        ]
    );
}

#[tokio::test]
async fn a_direct_notification_keeps_one_key_across_its_retries() {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use keeper::core::Outgoing;
    use keeper::notify::outbox::Outbox;
    use keeper::notify::{Channel, ChannelSpec, webhook};

    let db = TestDb::sqlite();
    let store = db.store().await;
    let rx = Receiver::start().await;
    rx.push_response(Reply::status(503));
    rx.push_response(Reply::status(408));
    let spec = ChannelSpec::Webhook(webhook::Spec {
        url: rx.url(),
        headers: BTreeMap::new(),
        secret: None,
    });
    let channels: BTreeMap<String, Channel> = BTreeMap::from([(
        "hook".into(),
        spec.build(&crate::notify::http()).expect("channel"),
    )]);
    let counter = keeper::metrics::Metrics::new(&[]).notifications;
    let outbox = Outbox::new(store, Arc::new(channels), counter.clone())
        .with_backoff(Duration::from_millis(20), Duration::from_millis(50));
    let direct = outbox.direct();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(outbox.run(shutdown.clone()));
    let n = crate::notify::notification(EventKind::Opened, Severity::Critical);
    let row = |n| Outgoing {
        channel: "hook".into(),
        notification: n,
        batch_at: None,
    };
    direct.send(vec![row(n.clone())]);

    let requests = rx.wait_for_requests(3, WAIT).await;
    let key = requests[0]
        .header("idempotency-key")
        .expect("a key")
        .to_string();
    assert!(key.starts_with("direct-"), "{key}");
    assert!(
        requests
            .iter()
            .all(|r| r.header("idempotency-key") == Some(key.as_str()))
    );
    wait_until("sent", WAIT, || async {
        counter.with_label_values(&["hook", "sent"]).get() == 1
    })
    .await;
    // Another notification gets another key.
    direct.send(vec![row(n)]);
    let requests = rx.wait_for_requests(4, WAIT).await;
    assert_ne!(requests[3].header("idempotency-key"), Some(key.as_str()));
    shutdown.cancel();
    task.await.expect("outbox stops");
}

#[test]
fn delivery_caps_are_read_strictly() {
    use crate::support::{config_error, parse_config};
    let config = parse_config("").expect("empty config");
    assert_eq!(config.delivery.max_age, Duration::from_secs(24 * 3600));
    assert_eq!(config.delivery.max_backoff, Duration::from_secs(300));
    assert_eq!(config.delivery.min_backoff, Duration::from_secs(1));
    let config = parse_config("[delivery]\nmax_age = \"2h\"\nmax_backoff = \"100ms\"\n")
        .expect("small caps");
    assert_eq!(config.delivery.max_age, Duration::from_secs(7200));
    assert_eq!(config.delivery.max_backoff, Duration::from_millis(100));
    assert_eq!(config.delivery.min_backoff, Duration::from_millis(100));

    let e = config_error("[delivery]\nmax_age = \"0s\"\n");
    assert!(
        e.starts_with("keeper.toml:2:11: delivery.max_age: must be above 0"),
        "{e}"
    );
    let e = config_error("[delivery]\nmin_backoff = \"10s\"\nmax_backoff = \"5s\"\n");
    assert!(
        e.starts_with("keeper.toml:2:15: delivery.min_backoff: must be at most"),
        "{e}"
    );
    let e = config_error("[delivery]\nmax_attempts = 8\n");
    assert!(e.starts_with("keeper.toml:2:1: delivery"), "{e}");
    assert!(e.contains("max_attempts"), "{e}");
    let e = config_error("[delivery]\nmax_age = \"soon\"\n");
    assert!(e.starts_with("keeper.toml:2:11: delivery"), "{e}");
}

both_backends!(
    async fn the_migration_revives_young_rows_the_old_attempt_limit_gave_up(db) {
        db.store().await;
        let incident = old_incident(&db).await;
        let (now, old) = match db.backend() {
            Backend::Sqlite => {
                let now = chrono::Utc::now().timestamp_millis();
                (now.to_string(), (now - 2 * 86_400_000).to_string())
            }
            Backend::Postgres => ("now()".into(), "now() - interval '2 days'".into()),
        };
        let gave_up = "receiver answered 503 (gave up after 8 attempts)";
        let rows = [
            (1, "hook", "failed", gave_up, &now),
            (2, "hook", "failed", "receiver answered 404 Not Found", &now),
            (3, "hook", "failed", gave_up, &old),
            (4, "mail", "failed", gave_up, &now),
            (5, "mail", "sent", "", &now),
        ];
        for (id, channel, status, error, created) in rows {
            db.execute(&format!(
                    "INSERT INTO outbox (id, incident_id, channel, payload, status, attempts, \
                     next_attempt_at, last_error, created_at) \
                     VALUES ({id}, {incident}, '{channel}', '{{}}', '{status}', 8, {created}, \
                     '{error}', {created})"
                ),
            )
            .await;
        }
        // As if the database was last migrated by the version before.
        db.execute("DELETE FROM _sqlx_migrations WHERE version = 6").await;
        db.store().await;

        let status: Vec<String> = outbox_rows(&db).await.into_iter().map(|r| r.1).collect();
        assert_eq!(
            status,
            ["pending", "failed", "failed", "failed", "sent"],
            "young, given up for attempts, and nothing later delivered: retried"
        );
    }
);
