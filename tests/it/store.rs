//! The store contract, run on SQLite and on PostgreSQL (a fresh database each):
//! migrations, batched samples, incidents and their timeline, the outbox, and
//! the sample writer holding rows while the database fails.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use keeper::core::Outgoing;
use keeper::core::{Color, Severity};
use keeper::core::{EventKind, Notification};
use keeper::incident::IncidentChange;
use keeper::store::writer::{SampleBuffer, Writer, WriterMetrics};
use keeper::store::{Claim, Marked, SampleRow, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::support::db::{TestDb, both_backends};
use crate::support::wait_until;

/// A fixed instant plus `secs` seconds (whole milliseconds, so both backends round-trip it).
fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

fn sample(check: &str, at: DateTime<Utc>, up: bool) -> SampleRow {
    SampleRow {
        check: Arc::from(check),
        at,
        duration_ms: 12.5,
        up,
        color: if up { Color::Green } else { Color::Red },
        status_code: if up { Some(200) } else { None },
        latency_ms: 11.25,
        message: if up {
            "200 OK".into()
        } else {
            "connection refused".into()
        },
        metrics: up.then(|| r#"{"cert_days_left":12.5}"#.to_string()),
        region: up.then(|| "fra".into()),
    }
}

fn notification(check: &str, state: EventKind, at: DateTime<Utc>) -> Notification {
    Notification {
        incident: 0,
        check: check.into(),
        state,
        severity: Severity::High,
        color: Color::Red,
        message: "503 Service Unavailable".into(),
        labels: BTreeMap::from([("app".to_string(), check.to_string())]),
        started_at: t(0),
        at,
        url: None,
        duration_s: None,
    }
}

fn outgoing(channel: &str, n: Notification) -> Outgoing {
    Outgoing {
        channel: channel.into(),
        notification: n,
        batch_at: None,
    }
}

fn open(check: &str, at: DateTime<Utc>) -> IncidentChange {
    IncidentChange::Open {
        check: check.into(),
        severity: Severity::High,
        color: Color::Red,
        message: "503 Service Unavailable".into(),
        at,
        notify: true,
    }
}

fn metrics() -> WriterMetrics {
    WriterMetrics::new().expect("creating writer metrics")
}

both_backends!(
    async fn migrating_twice_is_idempotent(db) {
        let store = db.store().await;
        store.migrate().await.expect("second migration");
        let again = db.store().await;
        again.ping().await.expect("ping after migrating twice");
        assert_eq!(db.count("incidents").await, 0);
    }
);

both_backends!(
    async fn ten_thousand_samples_in_one_call_read_back(db) {
        let store = db.store().await;
        // 10 checks × 1,000 samples; every tenth sample is down.
        let rows: Vec<SampleRow> = (0..1_000)
            .flat_map(|i| (0..10).map(move |c| sample(&format!("c{c}"), t(i), i % 10 != 0)))
            .collect();
        let started = Instant::now();
        store.insert_samples(&rows).await.expect("inserting 10k samples");
        eprintln!(
            "{:?}: 10,000 samples in {:?}",
            db.backend(),
            started.elapsed()
        );

        assert_eq!(db.samples().await, 10_000);
        let latest = store.latest_samples().await.expect("latest samples");
        assert_eq!(latest.len(), 10);
        for (c, row) in latest.iter().enumerate() {
            assert_eq!(*row, sample(&format!("c{c}"), t(999), true));
        }
        let uptime = store.uptime_pct("c3", t(0)).await.expect("uptime");
        assert_eq!(uptime, Some(90.0));
        // Since t(991): samples 991..=999, all up.
        assert_eq!(store.uptime_pct("c3", t(991)).await.expect("uptime"), Some(100.0));
        assert_eq!(store.uptime_pct("nope", t(0)).await.expect("uptime"), None);
        assert_eq!(store.uptime_pct("c3", t(5_000)).await.expect("uptime"), None);
        let all = store.uptime_by_check(t(0)).await.expect("uptime per check");
        assert_eq!(all.len(), 10);
        assert!(all.values().all(|pct| *pct == 90.0), "{all:?}");
        assert!(store.uptime_by_check(t(5_000)).await.expect("uptime").is_empty());
        store.insert_samples(&[]).await.expect("an empty batch");

        // One check's samples since a time, oldest first, measurements and all.
        let since = store.samples("c3", t(995), 100).await.expect("samples since");
        let expected: Vec<SampleRow> = (995..1_000).map(|i| sample("c3", t(i), true)).collect();
        assert_eq!(since, expected);
        assert_eq!(since[0].metrics.as_deref(), Some(r#"{"cert_days_left":12.5}"#));
        assert_eq!(store.samples("c3", t(0), 3).await.expect("limited").len(), 3);
        assert!(store.samples("nope", t(0), 10).await.expect("none").is_empty());
    }
);

both_backends!(
    async fn a_second_open_incident_for_a_check_is_refused(db) {
        let store = db.store().await;
        let first = store.record(open("web", t(0)), vec![]).await.expect("open");
        let second = store.record(open("web", t(5)), vec![]).await;
        assert!(
            matches!(&second, Err(StoreError::AlreadyOpen(check)) if check == "web"),
            "{second:?}"
        );
        let other = store.record(open("api", t(6)), vec![]).await.expect("open api");
        assert_ne!(first.id, other.id);
        let open_now = store.open_incidents().await.expect("open incidents");
        assert_eq!(open_now, vec![first, other]);
        // The refused open left nothing behind.
        assert_eq!(db.count("incident_events").await, 2);
    }
);

both_backends!(
    async fn incident_lifecycle_keeps_its_timeline(db) {
        let store = db.store().await;
        let opened = store.record(open("web", t(0)), vec![]).await.expect("open");
        assert_eq!(opened.check, "web");
        assert_eq!(opened.severity, Severity::High);
        assert_eq!(opened.started_at, t(0));
        assert_eq!((opened.acknowledged_at, opened.resolved_at), (None, None));

        let escalated = store
            .record(
                IncidentChange::Escalate {
                    id: opened.id,
                    severity: Severity::Critical,
                    color: Color::Red,
                    message: "connection refused".into(),
                    at: t(30),
                },
                vec![],
            )
            .await
            .expect("escalate");
        assert_eq!(escalated.severity, Severity::Critical);
        assert_eq!(escalated.message, "connection refused");
        assert_eq!(escalated.resolved_at, None);

        let resolve = IncidentChange::Resolve {
            id: opened.id,
            message: "200 OK".into(),
            at: t(90),
        };
        let resolved = store.record(resolve.clone(), vec![]).await.expect("resolve");
        assert_eq!(resolved.resolved_at, Some(t(90)));
        assert_eq!(store.incident(opened.id).await.expect("incident"), resolved);
        assert!(store.open_incidents().await.expect("open").is_empty());

        let events = store.incident_events(opened.id).await.expect("events");
        let timeline: Vec<_> = events
            .iter()
            .map(|e| (e.at, e.kind.as_str(), e.detail.as_str()))
            .collect();
        assert_eq!(
            timeline,
            vec![
                (t(0), "opened", "503 Service Unavailable"),
                (t(30), "escalated", "connection refused"),
                (t(90), "resolved", "200 OK"),
            ]
        );

        // A resolved incident can be neither resolved nor escalated again.
        let again = store.record(resolve, vec![]).await;
        assert!(matches!(again, Err(StoreError::NotFound(id)) if id == opened.id), "{again:?}");
        assert!(matches!(
            store.incident(999_999).await,
            Err(StoreError::NotFound(999_999))
        ));

        let reopened = store.record(open("web", t(120)), vec![]).await.expect("reopen");
        assert_ne!(reopened.id, opened.id);
        assert_eq!(store.open_incidents().await.expect("open"), vec![reopened]);
    }
);

both_backends!(
    async fn outbox_rows_carry_the_new_incident_id(db) {
        let store = db.store().await;
        let opened = store
            .record(
                open("web", t(0)),
                vec![
                    outgoing("oncall-email", notification("web", EventKind::Opened, t(0))),
                    outgoing("ops-slack", notification("web", EventKind::Opened, t(0))),
                ],
            )
            .await
            .expect("open with notifications");
        let due = store.due_notifications(t(0), 10).await.expect("due").entries;
        let channels: Vec<_> = due.iter().map(|e| e.channel.as_str()).collect();
        assert_eq!(channels, ["oncall-email", "ops-slack"]);
        for entry in &due {
            assert_eq!(entry.attempts, 0);
            let mut expected = notification("web", EventKind::Opened, t(0));
            expected.incident = opened.id;
            assert_eq!(entry.notification, expected);
        }
        // Not due before the change happened; the limit is honoured.
        assert!(store.due_notifications(t(-1), 10).await.expect("due").entries.is_empty());
        assert_eq!(store.due_notifications(t(0), 1).await.expect("due").entries.len(), 1);

        store
            .record(
                IncidentChange::Resolve {
                    id: opened.id,
                    message: "200 OK".into(),
                    at: t(60),
                },
                vec![outgoing("ops-slack", notification("web", EventKind::Resolved, t(60)))],
            )
            .await
            .expect("resolve with a notification");
        let due = store.due_notifications(t(60), 10).await.expect("due").entries;
        assert_eq!(due.len(), 3);
        assert_eq!(due[2].notification.state, EventKind::Resolved);
        assert_eq!(due[2].notification.incident, opened.id);
    }
);

both_backends!(
    async fn outbox_retry_then_sent_then_failed(db) {
        let store = db.store().await;
        let opened = store
            .record(
                open("web", t(0)),
                vec![
                    outgoing("hook", notification("web", EventKind::Opened, t(0))),
                    outgoing("mail", notification("web", EventKind::Opened, t(0))),
                ],
            )
            .await
            .expect("open");
        // One worker, "me", claims the due rows; its own claims are its to take again.
        let worker = &store;
        let claim = |at| async move {
            let me = Claim {
                by: "me",
                lease: Duration::from_secs(600),
                busy: &[],
            };
            worker.claim_notifications(at, 10, me).await.expect("claim").entries
        };
        let due = claim(t(1)).await;
        let (hook, mail) = (due[0].id, due[1].id);

        store
            .notification_retry(hook, 1, t(61), "503 from receiver", "me")
            .await
            .expect("retry");
        let ids = |d: Vec<keeper::core::OutboxEntry>| d.iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(claim(t(60)).await), [mail]);
        let due = claim(t(61)).await;
        assert_eq!(ids(due.clone()), [hook, mail]);
        assert_eq!(due[0].attempts, 1);
        assert_eq!(due[0].notification.incident, opened.id);

        let sent = store.notification_sent(hook, t(62), "me").await.expect("sent");
        assert_eq!(sent, Marked::Recorded);
        assert_eq!(ids(claim(t(10_000)).await), [mail]);

        store
            .notification_failed(mail, 5, "550 no such user", "me")
            .await
            .expect("failed");
        assert!(claim(t(10_000)).await.is_empty());
        assert_eq!(db.count("outbox").await, 2, "failed rows stay in the outbox");

        assert!(store.notification_sent(999_999, t(1), "me").await.is_err());
    }
);

both_backends!(
    async fn writer_holds_newest_rows_while_the_database_fails(db) {
        // Not migrated: every insert fails until the tables exist.
        let store = db.connect().await;
        let buffer = SampleBuffer::new(100);
        let metrics = metrics();
        let mut writer = Writer::new(store.clone(), buffer.clone(), metrics.clone());
        // 150 rows, the oldest 50 down: if the oldest are the ones dropped, all kept rows are up.
        for i in 0..150 {
            buffer.push(sample("w", t(i), i >= 50));
        }
        assert_eq!((buffer.len(), buffer.dropped()), (100, 50));

        assert!(writer.flush_once().await.is_err());
        assert_eq!((buffer.len(), buffer.dropped()), (100, 50), "failed rows are kept");
        assert_eq!((metrics.dropped.get(), metrics.pending.get()), (50, 100));
        assert_eq!(metrics.written.get(), 0);

        buffer.push(sample("w", t(150), true));
        assert_eq!((buffer.len(), buffer.dropped()), (100, 51));

        store.migrate().await.expect("migrate: the database is back");
        assert_eq!(writer.flush_once().await.expect("flush"), 100);
        assert_eq!(writer.flush_once().await.expect("flush"), 0);
        assert_eq!(db.samples().await, 100);
        assert_eq!(store.uptime_pct("w", t(0)).await.expect("uptime"), Some(100.0));
        let latest = store.latest_samples().await.expect("latest");
        assert_eq!(latest, vec![sample("w", t(150), true)]);
        assert_eq!(
            (metrics.written.get(), metrics.dropped.get(), metrics.pending.get()),
            (100, 51, 0)
        );
    }
);

both_backends!(
    async fn writer_task_retries_until_the_database_is_back(db) {
        let store = db.connect().await;
        let buffer = SampleBuffer::new(1_000);
        let writer = Writer::new(store.clone(), buffer.clone(), metrics())
            .flush_interval(Duration::from_millis(20));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(writer.run(shutdown.clone()));
        for i in 0..10 {
            buffer.push(sample("w", t(i), true));
        }
        store.migrate().await.expect("migrate");
        wait_until("the writer wrote the held rows", Duration::from_secs(10), || async {
            db.samples().await == 10
        })
        .await;
        shutdown.cancel();
        task.await.expect("writer task");
    }
);

both_backends!(
    async fn writer_shutdown_flushes_everything_left(db) {
        let store = db.store().await;
        let buffer = SampleBuffer::new(20_000);
        let metrics = metrics();
        let writer = Writer::new(store.clone(), buffer.clone(), metrics.clone())
            .flush_interval(Duration::from_secs(3_600));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(writer.run(shutdown.clone()));
        for i in 0..7_000 {
            buffer.push(sample("w", t(i), true));
        }
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the writer stops within its grace period")
            .expect("writer task");
        assert_eq!(db.samples().await, 7_000);
        assert!(buffer.is_empty());
        assert_eq!((metrics.written.get(), metrics.pending.get()), (7_000, 0));
    }
);

/// PostgreSQL gone away for real (its database dropped under the pool): the
/// writer fails fast, holds the rows, and a writer on a working store writes them.
#[tokio::test]
async fn writer_keeps_rows_when_postgres_goes_away() {
    crate::support::init();
    let gone = TestDb::postgres().await;
    let store = gone.store().await;
    gone.drop_now().await;

    let buffer = SampleBuffer::new(50);
    let mut writer = Writer::new(store, buffer.clone(), metrics());
    for i in 0..80 {
        buffer.push(sample("w", t(i), true));
    }
    let started = Instant::now();
    assert!(writer.flush_once().await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a gone database fails fast"
    );
    assert_eq!((buffer.len(), buffer.dropped()), (50, 30));

    let back = TestDb::postgres().await;
    let mut writer = Writer::new(back.store().await, buffer.clone(), metrics());
    assert_eq!(writer.flush_once().await.expect("flush"), 50);
    assert_eq!(back.samples().await, 50);
}

/// `Store::connect` names both backends by URL and refuses anything else.
#[tokio::test]
async fn store_urls_choose_the_backend() {
    crate::support::init();
    let memory = Store::connect("sqlite::memory:")
        .await
        .expect("memory sqlite");
    memory.migrate().await.expect("migrate memory");
    memory
        .insert_samples(&[sample("m", t(0), true)])
        .await
        .expect("insert into memory");
    assert_eq!(memory.latest_samples().await.expect("latest").len(), 1);
    assert!(matches!(
        Store::connect("mysql://localhost/keeper").await,
        Err(StoreError::UnsupportedUrl(_))
    ));
}

both_backends!(
    async fn sample_text_with_tabs_newlines_and_backslashes_round_trips(db) {
        let store = db.store().await;
        let mut row = sample("odd\tname\\x", t(1), false);
        row.message = "line one\nline\ttwo \\N back\\slash\r end".into();
        row.metrics = Some(r#"{"say":"tab\there \\N"}"#.into());
        row.status_code = None;
        // Times and measurements exact, before PostgreSQL's epoch (2000) too.
        let mut old = sample("before 2000", t(1), true);
        old.at = "1999-12-31T23:59:59.750Z".parse().expect("time");
        old.duration_ms = 0.1 + 0.2;
        old.latency_ms = 1.0 / 3.0;
        old.status_code = Some(599);
        row.at += chrono::Duration::milliseconds(250);
        store.insert_samples(&[row.clone(), old.clone()]).await.expect("insert");
        let mut latest = store.latest_samples().await.expect("latest");
        latest.sort_by_key(|r| r.at);
        assert_eq!(latest, vec![old, row]);
    }
);

both_backends!(
    async fn a_nul_in_a_sample_is_stored_as_a_replacement_and_the_batch_goes_in(db) {
        let store = db.store().await;
        // A target's bytes can reach a message; PostgreSQL's text cannot hold
        // NUL, and a refused row would fail its whole batch at every retry.
        let mut odd = sample("odd", t(1), false);
        odd.message = "got \0\0 from the banner".into();
        let fine = sample("fine", t(2), true);
        store
            .insert_samples(&[odd.clone(), fine.clone()])
            .await
            .expect("insert");
        let mut latest = store.latest_samples().await.expect("latest");
        latest.sort_by(|a, b| a.check.cmp(&b.check));
        odd.message = "got \u{FFFD}\u{FFFD} from the banner".into();
        assert_eq!(latest, vec![fine, odd]);
    }
);

both_backends!(
    async fn retention_deletes_only_samples_past_it(db) {
        let store = db.store().await;
        let now = chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis())
            .expect("now, to the millisecond");
        let old = sample("web", now - chrono::Duration::days(31), true);
        let recent = sample("web", now - chrono::Duration::days(29), true);
        store.insert_samples(&[old, recent.clone()]).await.expect("insert");
        let deleted = keeper::store::retention::prune(&store, std::time::Duration::from_secs(30 * 86_400))
            .await
            .expect("prune");
        assert_eq!(deleted, 1);
        assert_eq!(db.samples().await, 1);
        assert_eq!(store.latest_samples().await.expect("latest"), vec![recent]);
    }
);

both_backends!(
    async fn held_openings_are_notified_once_and_silences_end(db) {
        let store = db.store().await;
        let held = store
            .record(
                IncidentChange::Open {
                    check: "web".into(),
                    severity: Severity::Critical,
                    color: Color::Red,
                    message: "503".into(),
                    at: t(0),
                    notify: false,
                },
                vec![],
            )
            .await
            .expect("open held back");
        assert_eq!(held.notified_at, None);
        let notify = |at| IncidentChange::Notify {
            id: held.id,
            reason: "held back while dependency db is failing".into(),
            at,
        };
        let notified = store.record(notify(t(5)), vec![]).await.expect("notify");
        assert_eq!(notified.notified_at, Some(t(5)));
        assert!(matches!(
            store.record(notify(t(6)), vec![]).await,
            Err(StoreError::NotFound(_))
        ));
        let events = store.incident_events(held.id).await.expect("events");
        assert_eq!(events[1].kind, "notified");
        assert_eq!(events[1].detail, "held back while dependency db is failing");

        let silence = store
            .create_silence(&keeper::incident::NewSilence {
                check: None,
                labels: [("team".to_string(), "ops".to_string())].into(),
                starts_at: t(0),
                ends_at: t(100),
                comment: "deploy".into(),
                created_by: Some("alice".into()),
            })
            .await
            .expect("silence");
        assert_eq!(store.silences(t(50)).await.expect("silences"), vec![silence.clone()]);
        assert!(store.silences(t(100)).await.expect("silences").is_empty());
        let ended = store.expire_silence(silence.id, t(20)).await.expect("expire");
        assert_eq!(ended.ends_at, t(20));
        assert!(store.silences(t(30)).await.expect("silences").is_empty());
        assert!(matches!(
            store.expire_silence(9_999, t(30)).await,
            Err(StoreError::NotFound(9_999))
        ));
    }
);

both_backends!(
    async fn deployments_are_listed_newest_first_by_app_and_time(db) {
        use keeper::core::deployment::NewDeployment;
        let store = db.store().await;
        let deploy = |app: &str, version: &str, secs| NewDeployment {
            app: app.into(),
            version: version.into(),
            description: format!("{app} {version}"),
            by: "ci".into(),
            at: t(secs),
        };
        let web1 = store.record_deployment(&deploy("web", "v1", 0)).await.expect("web v1");
        let api1 = store.record_deployment(&deploy("api", "v7", 30)).await.expect("api v7");
        let web2 = store.record_deployment(&deploy("web", "v2", 60)).await.expect("web v2");
        assert_eq!((web2.app.as_str(), web2.version.as_str(), web2.at), ("web", "v2", t(60)));
        assert_eq!((web2.by.as_str(), web2.description.as_str()), ("ci", "web v2"));
        assert!(web1.id < api1.id && api1.id < web2.id);

        let all = store.deployments(None, t(0), t(60), 10).await.expect("all");
        assert_eq!(all, vec![web2.clone(), api1.clone(), web1.clone()]);
        let web = store.deployments(Some("web"), t(0), t(60), 10).await.expect("web");
        assert_eq!(web, vec![web2.clone(), web1]);
        // Both ends included; the limit keeps the newest.
        let between = store.deployments(None, t(30), t(59), 10).await.expect("between");
        assert_eq!(between, vec![api1]);
        let newest = store.deployments(None, t(0), t(60), 1).await.expect("newest");
        assert_eq!(newest, vec![web2]);
        assert!(store.deployments(Some("nope"), t(0), t(60), 10).await.expect("none").is_empty());
    }
);
