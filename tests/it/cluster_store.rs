//! Several keeper instances on one database, at the store and outbox level
//! (issue 12): outbox rows are claimed, so each is sent by one instance; a
//! claimer that dies mid-send leaves its row to another once its claim
//! lapses; a reminder is refused once the incident was acknowledged through
//! another instance; SQLite is for one keeper process; a keeper older than
//! its database refuses to start; the renewal's lease read fetches a view
//! again only when its owner changed it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use keeper::core::{Color, EventKind, Notification, Outgoing, Severity};
use keeper::incident::IncidentChange;
use keeper::notify::outbox::Outbox;
use keeper::notify::{Channel, ChannelSpec, webhook};
use keeper::store::sqlite::InstanceLock;
use keeper::store::{Claim, Lease, LeaseClaim, LeaseViews, Marked, Store, StoreError};
use sqlx::Connection;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::support::config::{Check, TestConfig};
use crate::support::db::{Backend, TestDb, both_backends};
use crate::support::process::Process;
use crate::support::receiver::Receiver;
use crate::support::target::Target;
use crate::support::{init, wait_until};

const WAIT: Duration = Duration::from_secs(30);

/// Rows queued for the workers to share.
const ROWS: usize = 200;
/// Channels they are spread over (a channel's rows go through one instance at a time).
const CHANNELS: usize = 8;

fn notification(check: &str, at: DateTime<Utc>) -> Notification {
    Notification {
        incident: 0,
        check: check.into(),
        state: EventKind::Opened,
        severity: Severity::Critical,
        color: Color::Red,
        message: "503 Service Unavailable".into(),
        labels: BTreeMap::new(),
        started_at: at,
        at,
        url: None,
        duration_s: None,
    }
}

fn open(check: &str, at: DateTime<Utc>, notify: bool) -> IncidentChange {
    IncidentChange::Open {
        check: check.into(),
        severity: Severity::Critical,
        color: Color::Red,
        message: "503 Service Unavailable".into(),
        at,
        notify,
    }
}

/// Opens an incident of `check` with one notification to `channel`, due now.
async fn queue(store: &Store, check: &str, channel: &str) -> i64 {
    let at = Utc::now();
    let out = Outgoing {
        channel: channel.into(),
        notification: notification(check, at),
        batch_at: None,
    };
    store
        .record(open(check, at, true), vec![out])
        .await
        .expect("an incident with its notification")
        .id
}

/// Webhook channels by name, each posting to its URL.
fn channels(urls: &[(String, String)]) -> Arc<BTreeMap<String, Channel>> {
    init();
    let http = reqwest::Client::new();
    let built = urls
        .iter()
        .map(|(name, url)| {
            let spec = ChannelSpec::Webhook(webhook::Spec {
                url: url.clone(),
                headers: BTreeMap::new(),
                secret: None,
            });
            (name.clone(), spec.build(&http).expect("a webhook channel"))
        })
        .collect();
    Arc::new(built)
}

/// An outbox worker named `name` on a store of its own (as another process would be).
async fn worker(
    db: &TestDb,
    name: &str,
    channels: Arc<BTreeMap<String, Channel>>,
) -> (Outbox, prometheus::IntCounterVec) {
    let counter = keeper::metrics::Metrics::new(&[]).notifications;
    let outbox = Outbox::new(db.connect().await, channels, counter.clone())
        .with_instance(name)
        .with_poll_interval(Duration::from_millis(20))
        .with_backoff(Duration::from_millis(20), Duration::from_millis(100));
    (outbox, counter)
}

fn claim<'a>(by: &'a str, lease: Duration) -> Claim<'a> {
    Claim {
        by,
        lease,
        busy: &[],
    }
}

/// Rows of the outbox in `status`.
async fn rows_in(db: &TestDb, status: &str) -> i64 {
    db.count(&format!("outbox WHERE status = '{status}'")).await
}

#[tokio::test]
async fn three_workers_on_one_postgres_send_each_of_200_rows_exactly_once() {
    let db = TestDb::postgres().await;
    let store = db.store().await;
    let rx = Receiver::start().await;
    let urls: Vec<(String, String)> = (0..CHANNELS)
        .map(|c| (format!("hook{c}"), rx.url_for(&format!("/hook{c}"))))
        .collect();
    let stop = CancellationToken::new();
    let mut counters = Vec::new();
    let mut running = Vec::new();
    for name in ["a", "b", "c"] {
        let (outbox, counter) = worker(&db, name, channels(&urls)).await;
        counters.push((name, counter));
        running.push(tokio::spawn(outbox.run(stop.clone())));
    }
    // Queued while the workers run, as incidents come: each step finds a few.
    for n in 0..ROWS {
        queue(
            &store,
            &format!("check{n}"),
            &format!("hook{}", n % CHANNELS),
        )
        .await;
    }
    wait_until("every row is marked sent", WAIT, || async {
        rows_in(&db, "sent").await == ROWS as i64
    })
    .await;
    stop.cancel();
    for task in running {
        task.await.expect("a worker stops");
    }

    let requests = rx.requests();
    let keys: Vec<String> = requests
        .iter()
        .map(|r| r.header("idempotency-key").expect("a key").to_string())
        .collect();
    let distinct: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), ROWS, "every row reached the receiver");
    assert_eq!(keys.len(), ROWS, "and none twice");
    let by_worker: Vec<(&str, u64)> = counters
        .iter()
        .map(|(name, counter)| {
            let sent = (0..CHANNELS)
                .map(|c| {
                    let channel = format!("hook{c}");
                    counter.with_label_values(&[channel.as_str(), "sent"]).get()
                })
                .sum();
            (*name, sent)
        })
        .collect();
    println!("sent by worker: {by_worker:?}");
    assert_eq!(by_worker.iter().map(|(_, n)| n).sum::<u64>(), ROWS as u64);
    assert_eq!(
        db.count("outbox WHERE claimed_by IS NOT NULL OR claimed_until IS NOT NULL")
            .await,
        0,
        "every outcome released its claim"
    );
}

/// A webhook receiver that reads requests and never answers: a send to it
/// hangs until its sender gives up or is killed. Keeps what it read.
struct Hanging {
    url: String,
    read: Arc<Mutex<Vec<u8>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Hanging {
    async fn start() -> Hanging {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the hanging receiver");
        let url = format!(
            "http://{}/hook",
            listener.local_addr().expect("its address")
        );
        let read = Arc::new(Mutex::new(Vec::new()));
        let into = read.clone();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                let into = into.clone();
                held.push(tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        into.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                }));
            }
        });
        Hanging { url, read, server }
    }

    /// The `Idempotency-Key` of the request read so far, once its headers are in.
    fn key(&self) -> Option<String> {
        let read = String::from_utf8_lossy(&self.read.lock().unwrap()).to_lowercase();
        let line = read.lines().find(|l| l.starts_with("idempotency-key:"))?;
        Some(line["idempotency-key:".len()..].trim().to_string())
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[tokio::test]
async fn a_worker_killed_mid_send_leaves_its_row_to_another_once_its_claim_lapses() {
    let db = TestDb::postgres().await;
    let store = db.store().await;
    let hanging = Hanging::start().await;
    let rx = Receiver::start().await;
    queue(&store, "web", "hook").await;
    // Worker a's hook never answers; its claim holds 2 s.
    let (a, _) = worker(&db, "a", channels(&[("hook".into(), hanging.url.clone())])).await;
    let a = a.with_claim_lease(Duration::from_secs(2));
    let sending = tokio::spawn(async move { a.step().await });
    wait_until("worker a is sending", WAIT, || async {
        hanging.key().is_some()
    })
    .await;
    sending.abort();
    let _ = sending.await;
    let key_a = hanging.key().expect("a's key");

    let mut conn = sqlx::PgConnection::connect(db.url())
        .await
        .expect("connect");
    let (claimed_by, claimed_until): (Option<String>, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT claimed_by, claimed_until FROM outbox")
            .fetch_one(&mut conn)
            .await
            .expect("the row");
    assert_eq!(claimed_by.as_deref(), Some("a"), "a died holding its claim");
    let claimed_until = claimed_until.expect("a claim ends");

    // Worker b reaches the hook; it sends the row once a's claim lapsed.
    let (b, _) = worker(&db, "b", channels(&[("hook".into(), rx.url())])).await;
    wait_until("worker b sends the row", WAIT, || async {
        b.step().await.expect("b's step").sent == 1
    })
    .await;
    let requests = rx.requests();
    assert_eq!(requests.len(), 1, "b sent it once");
    assert_eq!(
        requests[0].header("idempotency-key"),
        Some(key_a.as_str()),
        "the second send carries the first one's key: the receiver can tell it is a repeat"
    );
    let (status, sent_at, claimed_by): (String, Option<DateTime<Utc>>, Option<String>) =
        sqlx::query_as("SELECT status, sent_at, claimed_by FROM outbox")
            .fetch_one(&mut conn)
            .await
            .expect("the row");
    assert_eq!(status, "sent");
    assert_eq!(claimed_by, None, "b's outcome released the claim");
    assert!(
        sent_at.expect("sent at") >= claimed_until,
        "b sent only after a's claim lapsed: {sent_at:?} < {claimed_until}"
    );
    assert_eq!(b.step().await.expect("b's step").sent, 0, "sent means done");
}

#[tokio::test]
async fn a_claim_is_renewed_while_a_slow_channel_sends_so_no_one_else_takes_its_rows() {
    let db = TestDb::postgres().await;
    let store = db.store().await;
    let rx = Receiver::start().await;
    for check in ["a", "b", "c", "d"] {
        queue(&store, check, "hook").await;
    }
    let urls = [("hook".to_string(), rx.url())];
    // One message per 1.2 s: a's four sends outlast its 2 s lease unless renewed.
    let (a, _) = worker(&db, "a", channels(&urls)).await;
    let a = a
        .with_claim_lease(Duration::from_secs(2))
        .with_pacing(BTreeMap::from([(
            "hook".into(),
            Duration::from_millis(1200),
        )]));
    let (b, _) = worker(&db, "b", channels(&urls)).await;
    let sending = tokio::spawn(async move { a.step().await });
    // a has claimed the four rows once the first reaches the receiver.
    rx.wait_for_requests(1, WAIT).await;
    let mut sent_by_b = 0;
    while !sending.is_finished() {
        sent_by_b += b.step().await.expect("b's step").sent;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = sending.await.expect("a's step").expect("a's step");
    assert_eq!(
        (report.sent, report.lost, sent_by_b),
        (4, 0, 0),
        "{report:?}"
    );
    let keys: BTreeSet<String> = rx
        .requests()
        .iter()
        .map(|r| r.header("idempotency-key").expect("a key").to_string())
        .collect();
    assert_eq!((rx.requests().len(), keys.len()), (4, 4), "each sent once");
}

both_backends!(
    async fn a_row_claimed_by_another_instance_waits_and_its_outcome_is_the_claimers(db) {
        let store = db.store().await;
        let other = db.connect().await;
        queue(&store, "web", "hook").await;
        queue(&store, "api", "hook").await;
        queue(&store, "db", "mail").await;
        let lease = Duration::from_secs(600);

        let a = store
            .claim_notifications(Utc::now(), 1, claim("a", lease))
            .await
            .expect("a claims");
        let first = a.entries[0].id;
        assert_eq!(a.entries[0].channel, "hook");
        // b may not take a's row, nor the next of its channel (order), only mail's.
        let b = other
            .claim_notifications(Utc::now(), 10, claim("b", lease))
            .await
            .expect("b claims");
        let channels: Vec<&str> = b.entries.iter().map(|e| e.channel.as_str()).collect();
        assert_eq!(channels, ["mail"]);
        // A look at the outbox shows only the row nobody claimed.
        let due = store.due_notifications(Utc::now(), 10).await.expect("due").entries;
        assert_eq!(due.len(), 1);
        assert!(due[0].id > first && due[0].channel == "hook");

        // b cannot record an outcome on a's row, nor renew a's claim.
        let lost = other
            .notification_failed(first, 1, "not b's", "b")
            .await
            .expect("mark");
        assert_eq!(lost, Marked::ClaimLost);
        assert!(other.renew_claim("b", &[first], lease).await.expect("renew").is_empty());
        assert_eq!(store.renew_claim("a", &[first], lease).await.expect("renew"), [first]);
        assert_eq!(rows_in(&db, "failed").await, 0);

        // a's outcome releases the claim: hook's next row is b's to take.
        let sent = store
            .notification_sent(first, Utc::now(), "a")
            .await
            .expect("mark");
        assert_eq!(sent, Marked::Recorded);
        let b = other
            .claim_notifications(Utc::now(), 10, claim("b", lease))
            .await
            .expect("b claims");
        let channels: Vec<&str> = b.entries.iter().map(|e| e.channel.as_str()).collect();
        assert_eq!(channels, ["hook", "mail"], "b takes its own claim again (not busy)");
        // Claims past their lease are anyone's.
        let c = store
            .claim_notifications(Utc::now(), 10, claim("c", lease))
            .await
            .expect("c claims");
        assert!(c.entries.is_empty(), "b's claims hold");
        let b = other
            .claim_notifications(Utc::now(), 10, claim("b", Duration::ZERO))
            .await
            .expect("b claims for no time");
        assert_eq!(b.entries.len(), 2);
        let c = store
            .claim_notifications(Utc::now(), 10, claim("c", lease))
            .await
            .expect("c claims");
        assert_eq!(c.entries.len(), 2, "b's lapsed claims went to c");
    }
);

both_backends!(
    async fn a_reminder_is_refused_once_another_instance_acknowledged(db) {
        let here = db.store().await;
        let there = db.connect().await;
        let at = Utc::now();
        let opened = here.record(open("web", at, true), Vec::new()).await.expect("open");
        let ack = IncidentChange::Acknowledge {
            id: opened.id,
            by: Some("bob".into()),
            at,
        };
        there.record(ack, Vec::new()).await.expect("acknowledged there");
        let reminder = Outgoing {
            channel: "hook".into(),
            notification: notification("web", at),
            batch_at: None,
        };
        let remind = IncidentChange::Remind { id: opened.id, at };
        let refused = here.record(remind, vec![reminder]).await;
        assert!(
            matches!(refused, Err(StoreError::NotFound(id)) if id == opened.id),
            "{refused:?}"
        );
        assert_eq!(db.count("outbox").await, 0, "no reminder queued");
        let kinds: Vec<String> = here
            .incident_events(opened.id)
            .await
            .expect("timeline")
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["opened", "acknowledged"]);
    }
);

both_backends!(
    async fn a_resolved_incident_is_not_escalated_and_a_held_one_is_notified_once(db) {
        let here = db.store().await;
        let there = db.connect().await;
        let at = Utc::now();
        // Held back (not notified), then resolved elsewhere.
        let opened = here.record(open("web", at, false), Vec::new()).await.expect("open");
        let resolve = IncidentChange::Resolve {
            id: opened.id,
            message: "200 OK".into(),
            at,
        };
        there.record(resolve, Vec::new()).await.expect("resolved there");
        let escalate = IncidentChange::Escalate {
            id: opened.id,
            severity: Severity::Critical,
            color: Color::Red,
            message: "worse".into(),
            at,
        };
        let refused = here.record(escalate, Vec::new()).await;
        assert!(matches!(refused, Err(StoreError::NotFound(_))), "{refused:?}");
        // Its hold ends (a digest tells of it, resolved): once, whichever
        // instance releases it first.
        let notify = IncidentChange::Notify {
            id: opened.id,
            reason: "the digest".into(),
            at,
        };
        here.record(notify.clone(), Vec::new()).await.expect("notified once");
        let again = there.record(notify, Vec::new()).await;
        assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");
    }
);

#[tokio::test]
async fn one_sqlite_file_is_locked_by_one_keeper_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("keeper.db").display());
    let first = InstanceLock::take(&url).await.expect("locks");
    assert!(first.is_some());
    let second = InstanceLock::take(&url).await;
    let e = second.expect_err("the file is taken");
    assert!(matches!(e, StoreError::SqliteInUse { .. }), "{e}");
    drop(first);
    assert!(
        InstanceLock::take(&url)
            .await
            .expect("free again")
            .is_some()
    );
    // Nothing to share: a memory database, or PostgreSQL.
    assert!(
        InstanceLock::take("sqlite::memory:")
            .await
            .expect("memory")
            .is_none()
    );
    assert!(
        InstanceLock::take("postgres://localhost/keeper")
            .await
            .expect("pg")
            .is_none()
    );
}

#[tokio::test]
async fn a_second_keeper_on_one_sqlite_file_refuses_and_a_restart_after_sigkill_starts() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("keeper.db");
    let config = TestConfig::new()
        .listen("127.0.0.1:0")
        .storage(format!("sqlite://{}", file.display()))
        .write_in(dir.path());
    let first = Process::start(&config).await;

    let second = tokio::process::Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(["run", "-c"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let second = tokio::time::timeout(WAIT, second)
        .await
        .expect("the second keeper exits")
        .expect("it runs");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert!(stderr.contains("SQLite is for one instance"), "{stderr}");

    // SIGKILL: no shutdown. The OS releases the lock with the process.
    first.kill();
    let mut restarted = Process::start(&config).await;
    let ready = format!("{}/readyz", restarted.base().await);
    let http = reqwest::Client::new();
    wait_until("the restarted keeper is ready", WAIT, || async {
        http.get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
}

/// The color `keeper` at `base` shows for check `web`.
async fn web_on(http: &reqwest::Client, base: &str) -> Option<String> {
    let resp = http
        .get(format!("{base}/api/v1/checks/web"))
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = resp.json().await.ok()?;
    body["color"].as_str().map(str::to_string)
}

/// The `state`s of the notifications `rx` received.
fn states(rx: &Receiver) -> Vec<String> {
    rx.json_bodies()
        .iter()
        .map(|n| n["state"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn two_keepers_on_one_postgres_page_an_outage_once_and_its_recovery_once() {
    init();
    let db = TestDb::postgres().await;
    db.store().await;
    let target = Target::start().await;
    target.set_status(503);
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let web = Check::http("web", target.url("/"))
        .interval("100ms")
        .set("failures_before_alert", 1)
        .set("successes_before_resolve", 1);
    let config = TestConfig::new()
        .listen("127.0.0.1:0")
        .storage(db.url())
        .check(web)
        .page(&rx)
        .write_in(dir.path());
    // Both probe the check and both decide (ownership is not theirs to share
    // yet): the database keeps one incident and each notification goes once.
    let mut a = Process::start(&config).await;
    let mut b = Process::start(&config).await;
    let bases = [a.base().await, b.base().await];
    let http = reqwest::Client::new();
    let settled = |color: &'static str| {
        let (http, bases, db) = (&http, &bases, &db);
        move || async move {
            for base in bases {
                if web_on(http, base).await.as_deref() != Some(color) {
                    return false;
                }
            }
            rows_in(db, "pending").await == 0
        }
    };
    wait_until("both see web red, every page sent", WAIT, settled("red")).await;
    wait_until("the opening reaches the receiver", WAIT, || async {
        states(&rx).contains(&"opened".to_string())
    })
    .await;
    target.set_status(200);
    wait_until(
        "both see web green, every page sent",
        WAIT,
        settled("green"),
    )
    .await;
    wait_until("the recovery reaches the receiver", WAIT, || async {
        states(&rx).contains(&"resolved".to_string())
    })
    .await;
    assert_eq!(states(&rx), ["opened", "resolved"]);
    assert_eq!(db.count("incidents").await, 1);
}

/// The highest migration this keeper knows, from its migrations folder.
fn known_migration() -> i64 {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
    std::fs::read_dir(dir)
        .expect("the migrations folder")
        .filter_map(|f| {
            let name = f.ok()?.file_name().into_string().ok()?;
            name.split('_').next()?.parse::<i64>().ok()
        })
        .max()
        .expect("migrations")
}

both_backends!(
    async fn a_database_migrated_by_a_newer_keeper_is_refused_naming_both_versions(db) {
        db.store().await;
        let checksum = match db.backend() {
            Backend::Sqlite => "X'00'",
            Backend::Postgres => "'\\x00'::bytea",
        };
        db.execute(&format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (9999, 'from a newer keeper', TRUE, {checksum}, 0)"
        ))
        .await;
        let e = db.connect().await.migrate().await.expect_err("refused");
        let known = known_migration();
        assert!(
            matches!(e, StoreError::NewerDatabase { database: 9999, known: k } if k == known),
            "{e:?}"
        );
        let message = e.to_string();
        assert!(
            message.contains("the database is at migration 9999")
                && message.contains(&format!("this keeper knows up to {known}")),
            "{message}"
        );
    }
);

fn lease_claim(name: &str, view: Option<&str>) -> LeaseClaim {
    LeaseClaim {
        name: name.into(),
        region: String::new(),
        view: view.map(String::from),
    }
}

/// Instance a claims `api` and `web` for `lease` through `views`, publishing these views.
async fn claim_api_and_web(
    views: &mut LeaseViews,
    store: &keeper::store::Store,
    lease: Duration,
    (api, web): (&str, &str),
) -> Vec<(String, String)> {
    let claims = [lease_claim("api", Some(api)), lease_claim("web", Some(web))];
    views
        .claim(store, "a", lease, &claims)
        .await
        .expect("claimed")
}

/// (owner, view) of each lease, by check.
fn owners_and_views(leases: &[Lease]) -> BTreeMap<String, (String, Option<String>)> {
    (leases.iter())
        .map(|l| (l.name.clone(), (l.owner.clone(), l.view.clone())))
        .collect()
}

#[tokio::test]
async fn a_renewal_sends_and_reads_a_view_again_only_when_it_changed() {
    init();
    let db = TestDb::postgres().await;
    let store = db.store().await;
    let lease = Duration::from_secs(15);
    // Instance a renews through its LeaseViews; b claims directly.
    let mut a = LeaseViews::default();
    let view = |owner: &str, v: &str| (owner.to_string(), Some(v.to_string()));

    let held = claim_api_and_web(&mut a, &store, lease, ("w1", "v1")).await;
    assert_eq!(held.len(), 2);
    assert_eq!(a.sent(), 2);
    let first = a.read(&store).await.expect("a read");
    assert_eq!(a.fetched(), 0, "the views a published are not fetched back");
    assert_eq!(first, store.leases().await.expect("the whole read"));
    let expected = BTreeMap::from([
        ("api".into(), view("a", "w1")),
        ("web".into(), view("a", "v1")),
    ]);
    assert_eq!(owners_and_views(&first), expected);

    // Renewed with the same views: none sent, none fetched, still delivered.
    claim_api_and_web(&mut a, &store, lease, ("w1", "v1")).await;
    assert_eq!(a.sent(), 0, "unchanged views are not sent again");
    let second = a.read(&store).await.expect("a read");
    assert_eq!(a.fetched(), 0, "unchanged views are not read again");
    assert_eq!(second, store.leases().await.expect("the whole read"));
    assert_eq!(owners_and_views(&second), expected);

    // Another reader (instance c) fetches every view once, then only web's when it changes.
    let mut c = LeaseViews::default();
    assert_eq!(c.read(&store).await.expect("a read"), second);
    assert_eq!(c.fetched(), 2);
    claim_api_and_web(&mut a, &store, lease, ("w1", "v2")).await;
    assert_eq!(a.sent(), 1);
    let third = c.read(&store).await.expect("a read");
    assert_eq!(c.fetched(), 1, "only the view that changed");
    let expected = BTreeMap::from([
        ("api".into(), view("a", "w1")),
        ("web".into(), view("a", "v2")),
    ]);
    assert_eq!(owners_and_views(&third), expected);
    assert_eq!(c.read(&store).await.expect("a read"), third);
    assert_eq!(c.fetched(), 0);

    // b takes web over (a gave it up) with its own view: a and c read it.
    assert_eq!(
        store
            .release("a", &[("web".into(), String::new())])
            .await
            .ok(),
        Some(1)
    );
    let held = store
        .claim("b", lease, &[lease_claim("web", Some("b1"))])
        .await
        .expect("claimed");
    assert_eq!(held.len(), 1);
    for reader in [&mut a, &mut c] {
        let leases = reader.read(&store).await.expect("a read");
        assert_eq!(reader.fetched(), 1);
        assert_eq!(owners_and_views(&leases)["web"], view("b", "b1"));
    }

    // A lease forgotten is gone from the read; one back under that name is fetched anew.
    db.execute("DELETE FROM check_leases WHERE check_name = 'api'")
        .await;
    let after = c.read(&store).await.expect("a read");
    assert_eq!(c.fetched(), 0);
    assert_eq!(owners_and_views(&after).keys().collect::<Vec<_>>(), ["web"]);
    let held = store
        .claim("b", lease, &[lease_claim("api", Some("w1"))])
        .await
        .expect("claimed");
    assert_eq!(held.len(), 1);
    let back = c.read(&store).await.expect("a read");
    assert_eq!(c.fetched(), 1);
    assert_eq!(owners_and_views(&back)["api"], view("b", "w1"));
}
