//! Reads cannot starve writes (issue 9, point 6): API reads run on connections
//! of their own, `GET /api/v1/checks` costs O(checks) and the incidents list a
//! constant number of queries — so a client hammering the API while the
//! database holds a month of samples does not keep a failing check from paging
//! nor turn `keeper:storage` red. Run on SQLite and PostgreSQL. Also here:
//! the incidents list reads as it did, and PostgreSQL's `statement_timeout`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use keeper::core::{Color, Severity};
use keeper::incident::IncidentChange;
use keeper::store::postgres::{PgLimits, PgStore};
use keeper::store::{IncidentFilter, Store};
use sqlx::{AssertSqlSafe, Connection};

use crate::support::app::TestApp;
use crate::support::config::{Check, TestConfig};
use crate::support::db::{Backend, TestDb, both_backends};
use crate::support::receiver::Receiver;
use crate::support::target::Target;
use crate::support::{wait_for, wait_until};

/// Raw samples of the loaded check: a month of them at about one per 2.6 s.
const SAMPLES: i64 = 1_000_000;
/// Resolved incidents, each with an opening and a resolve event.
const INCIDENTS: i64 = 1_000;

/// Runs `sql` (trusted) on a connection of its own.
async fn exec(db: &TestDb, sql: &str) {
    let done = match db.backend() {
        Backend::Sqlite => async {
            let mut conn = sqlx::SqliteConnection::connect(db.url()).await?;
            sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
                .execute(&mut conn)
                .await
        }
        .await
        .map(|_| ()),
        Backend::Postgres => async {
            let mut conn = sqlx::PgConnection::connect(db.url()).await?;
            sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
                .execute(&mut conn)
                .await
        }
        .await
        .map(|_| ()),
    };
    done.unwrap_or_else(|e| panic!("running {sql}: {e}"));
}

/// `SAMPLES` samples of check `loaded` over the last 30 days (one in ten
/// down) and `INCIDENTS` resolved incidents of it with their events, in
/// bulk SQL.
async fn load(db: &TestDb) {
    let now = Utc::now().timestamp_millis();
    let step = 30 * 86_400_000 / SAMPLES;
    let sql = match db.backend() {
        Backend::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
             INSERT INTO samples (check_name, at, duration_ms, up, color, latency_ms, message) \
             SELECT 'loaded', {now} - i * {step}, 1.0, i % 10 <> 0, \
                    CASE WHEN i % 10 = 0 THEN 'red' ELSE 'green' END, 1.0, 'ok' FROM n; \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {INCIDENTS}) \
             INSERT INTO incidents (check_name, severity, color, message, started_at, resolved_at) \
             SELECT 'loaded', 'high', 'red', 'down', {now} - i * 60000, {now} - i * 60000 + 1000 FROM n; \
             INSERT INTO incident_events (incident_id, at, kind, detail) \
             SELECT id, started_at, 'opened', 'down' FROM incidents \
             UNION ALL SELECT id, resolved_at, 'resolved', 'up' FROM incidents;",
            last = SAMPLES - 1,
        ),
        Backend::Postgres => format!(
            "INSERT INTO samples (check_name, at, duration_ms, up, color, latency_ms, message) \
             SELECT 'loaded', to_timestamp(({now} - i * {step}) / 1000.0), 1.0, i % 10 <> 0, \
                    CASE WHEN i % 10 = 0 THEN 'red' ELSE 'green' END, 1.0, 'ok' \
             FROM generate_series(0::bigint, {last}) i; \
             INSERT INTO incidents (check_name, severity, color, message, started_at, resolved_at) \
             SELECT 'loaded', 'high', 'red', 'down', to_timestamp(({now} - i * 60000) / 1000.0), \
                    to_timestamp(({now} - i * 60000 + 1000) / 1000.0) \
             FROM generate_series(1::bigint, {INCIDENTS}) i; \
             INSERT INTO incident_events (incident_id, at, kind, detail) \
             SELECT id, started_at, 'opened', 'down' FROM incidents \
             UNION ALL SELECT id, resolved_at, 'resolved', 'up' FROM incidents; \
             ANALYZE;",
            last = SAMPLES - 1,
        ),
    };
    exec(db, &sql).await;
}

/// Clients asking for every check and every incident as fast as they are
/// answered, until `stop`. Returns how many answers were 200.
fn hammer(app: &TestApp, clients: usize, stop: Arc<AtomicBool>) -> Arc<AtomicUsize> {
    let ok = Arc::new(AtomicUsize::new(0));
    for i in 0..clients {
        let (http, base, stop, ok) = (app.http.clone(), app.base.clone(), stop.clone(), ok.clone());
        let path = if i % 3 != 0 {
            "/api/v1/checks"
        } else {
            "/api/v1/incidents?state=all&limit=1000"
        };
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(resp) = http.get(format!("{base}{path}")).send().await
                    && resp.status() == 200
                    && resp.bytes().await.is_ok()
                {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    ok
}

both_backends!(
    /// A month of samples and a thousand incidents, two dozen clients reading them
    /// as fast as they can: the failing check still pages within its deadline
    /// and `keeper:storage` stays green throughout.
    async fn hammering_reads_do_not_starve_paging(db) {
        db.store().await;
        load(&db).await;
        let target = Target::start().await;
        let hook = Receiver::start().await;
        let config = TestConfig::new()
            .set("watchdog", "interval", "200ms")
            .set("watchdog", "timeout", "1s")
            .set("watchdog", "failures_before_alert", 2)
            .check(Check::http("loaded", target.url("/loaded")).interval("1h"))
            .check(
                Check::http("web", target.url("/web"))
                    .interval("200ms")
                    .set("failures_before_alert", 2),
            )
            .page(&hook);
        let app = TestApp::start_on(db, config).await;
        wait_until("web is green", Duration::from_secs(20), || async {
            app.check("web").await["color"] == "green"
        })
        .await;

        let stop = Arc::new(AtomicBool::new(false));
        let answered = hammer(&app, 24, stop.clone());
        wait_until("the hammering is answered", Duration::from_secs(60), || async {
            answered.load(Ordering::Relaxed) >= 8
        })
        .await;
        target.set_status(500);
        let storage_red = Arc::new(AtomicBool::new(false));
        let watch = tokio::spawn({
            let (http, base, red, stop) =
                (app.http.clone(), app.base.clone(), storage_red.clone(), stop.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(resp) = http.get(format!("{base}/api/v1/checks/keeper:storage")).send().await
                        && let Ok(check) = resp.json::<serde_json::Value>().await
                        && check["color"] == "red"
                    {
                        red.store(true, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        // Two failures 200 ms apart, then the send: seconds, not minutes,
        // even on a loaded two-core machine.
        let opened = wait_for("web's page while the API is hammered", Duration::from_secs(15), || async {
            hook.json_bodies()
                .into_iter()
                .find(|n| n["check"] == "web" && n["state"] == "opened")
        })
        .await;
        assert_eq!(opened["check"], "web");
        // The watchdog probes storage every 200 ms: watch it for two more seconds of its runs.
        let ran_at = |check: serde_json::Value| {
            check["last_run_at"].as_str().and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        };
        let from = ran_at(app.check("keeper:storage").await).expect("keeper:storage has run");
        wait_until("keeper:storage ran for two more seconds", Duration::from_secs(30), || async {
            ran_at(app.check("keeper:storage").await)
                .is_some_and(|at| at - from >= chrono::Duration::seconds(2))
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        let _ = watch.await;
        assert!(!storage_red.load(Ordering::Relaxed), "keeper:storage turned red under read load");
        let storage_pages: Vec<_> = hook
            .json_bodies()
            .into_iter()
            .filter(|n| n["check"] == "keeper:storage")
            .collect();
        assert!(storage_pages.is_empty(), "{storage_pages:?}");
        // Uptime still answers, from the stored samples (one in ten down).
        let loaded = app.check("loaded").await;
        let d30 = loaded["uptime_pct"]["30d"].as_f64().expect("30d uptime");
        assert!((85.0..=95.0).contains(&d30), "{loaded}");
        app.stop().await;
    }
);

/// A fixed instant plus `secs` seconds.
fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000 + secs, 0).expect("time")
}

fn open(check: &str, at: DateTime<Utc>) -> IncidentChange {
    IncidentChange::Open {
        check: check.into(),
        severity: Severity::Medium,
        color: Color::Yellow,
        message: format!("{check} is slow"),
        at,
        notify: true,
    }
}

/// Incidents of checks keeper does not run (so start-up leaves them alone),
/// with timelines of different lengths written out of order between them.
async fn incidents_with_timelines(store: &Store) -> Vec<i64> {
    let a = store
        .record(open("a", t(0)), vec![])
        .await
        .expect("open a")
        .id;
    let b = store
        .record(open("b", t(10)), vec![])
        .await
        .expect("open b")
        .id;
    let c = store
        .record(open("c", t(10)), vec![])
        .await
        .expect("open c")
        .id;
    let escalate = |id, at| IncidentChange::Escalate {
        id,
        severity: Severity::High,
        color: Color::Red,
        message: "down".into(),
        at,
    };
    store
        .record(escalate(b, t(20)), vec![])
        .await
        .expect("escalate b");
    store
        .record(escalate(a, t(30)), vec![])
        .await
        .expect("escalate a");
    store
        .record(
            IncidentChange::Acknowledge {
                id: a,
                by: Some("ana".into()),
                at: t(40),
            },
            vec![],
        )
        .await
        .expect("ack a");
    for (id, at) in [(c, 45), (a, 50), (b, 60)] {
        store
            .record(
                IncidentChange::Resolve {
                    id,
                    message: "up".into(),
                    at: t(at),
                },
                vec![],
            )
            .await
            .expect("resolve");
    }
    let d = store
        .record(open("a", t(70)), vec![])
        .await
        .expect("open a again")
        .id;
    store
        .record(
            IncidentChange::Resolve {
                id: d,
                message: "up".into(),
                at: t(71),
            },
            vec![],
        )
        .await
        .expect("resolve d");
    vec![a, b, c, d]
}

both_backends!(
    /// The list, read in two queries, shows what each incident's own page
    /// (one query per timeline) shows, newest first, every event in order.
    async fn the_incidents_list_shows_every_timeline_as_before(db) {
        let store = db.store().await;
        let [a, b, c, d] = incidents_with_timelines(&store).await[..] else {
            panic!("four incidents")
        };
        let config = TestConfig::new().check(Check::tcp("port", "127.0.0.1:9").interval("1h"));
        let app = TestApp::start_on(db, config).await;
        let list = app.get_json("/api/v1/incidents?state=all&limit=1000").await;
        let list = list.as_array().expect("an array");
        let ids: Vec<i64> = list.iter().map(|i| i["id"].as_i64().expect("id")).collect();
        // Newest first; b and c started together: the higher id first.
        assert_eq!(ids, vec![d, c, b, a]);
        for listed in list {
            let one = app.get_json(&format!("/api/v1/incidents/{}", listed["id"])).await;
            assert_eq!(listed, &one);
        }
        let kinds = |i: usize| -> Vec<String> {
            list[i]["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|e| e["kind"].as_str().expect("kind").to_string())
                .collect()
        };
        assert_eq!(kinds(3), ["opened", "escalated", "acknowledged", "resolved"]);
        assert_eq!(kinds(2), ["opened", "escalated", "resolved"]);
        assert_eq!(kinds(1), ["opened", "resolved"]);
        assert_eq!(kinds(0), ["opened", "resolved"]);
        assert_eq!(list[3]["events"][2]["detail"], "by ana");
        let listed = app.get_json("/api/v1/incidents?state=all&limit=2").await;
        assert_eq!(listed.as_array().map(Vec::len), Some(2));
        app.stop().await;
    }
);

/// Holds an exclusive lock on `table` in a transaction of its own until dropped.
async fn lock_table(db: &TestDb, table: &str) -> sqlx::PgConnection {
    let mut conn = sqlx::PgConnection::connect(db.url())
        .await
        .expect("connecting");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
    )))
    .execute(&mut conn)
    .await
    .expect("locking");
    conn
}

/// A statement that waits longer than `statement_timeout` (here on a lock
/// another session holds: the database is stuck) is cancelled by the server
/// and the call fails, on the engine's connections and on the API's.
#[tokio::test]
async fn postgres_cancels_a_statement_past_its_timeout() {
    crate::support::init();
    let db = TestDb::postgres().await;
    db.store().await;
    let store = Store::Postgres(
        PgStore::connect_with(
            db.url(),
            PgLimits {
                statement_timeout: Duration::from_millis(300),
                read_statement_timeout: Duration::from_millis(200),
            },
        )
        .await
        .expect("connecting"),
    );
    let _lock = lock_table(&db, "incidents").await;
    let hang = Duration::from_secs(10); // a hang detector, not a timing
    let written = tokio::time::timeout(hang, store.record(open("web", t(0)), vec![]))
        .await
        .expect("the write ends");
    let err = written
        .expect_err("the write cannot take the lock")
        .to_string();
    assert!(err.contains("statement timeout"), "{err}");
    let read = tokio::time::timeout(hang, store.reader().incidents(IncidentFilter::All, 10))
        .await
        .expect("the read ends");
    let err = read.expect_err("the read cannot take the lock").to_string();
    assert!(err.contains("statement timeout"), "{err}");
    // The API's connections are read-only.
    drop(_lock);
    let err = store
        .reader()
        .record(open("web", t(0)), vec![])
        .await
        .expect_err("no writes on the read connections")
        .to_string();
    assert!(err.contains("read-only"), "{err}");
}
