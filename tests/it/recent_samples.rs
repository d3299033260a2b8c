//! SQLite's two sample tables (store/sqlite.rs): new samples gather in
//! `samples_recent` and move into the indexed `samples` in bulk. Every read
//! gives the same answer wherever the rows are, retention reaches both, and
//! the move comes after 20,000 rows or five minutes. Run on both backends:
//! PostgreSQL writes into `samples` directly and answers alike.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use keeper::core::Color;
use keeper::store::rollup::{DayUptime, HourLatency, Latency, hour_of};
use keeper::store::sqlite::RECENT_ROWS;
use keeper::store::writer::{SampleBuffer, Writer, WriterMetrics};
use keeper::store::{SampleRow, Store, StoreError};
use tracing::instrument::WithSubscriber;

use crate::support::db::{Backend, TestDb, both_backends};

const CHECKS: [&str; 3] = ["c0", "c1", "c2"];
const HOUR_MS: i64 = 3_600_000;

/// Now, to the millisecond (both backends round-trip it).
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now")
}

/// Sample `i` of `check`, `i` seconds after `start`: every third one down,
/// latencies all different.
fn sample(check: &str, start: DateTime<Utc>, i: i64) -> SampleRow {
    let up = i % 3 != 0;
    SampleRow {
        check: Arc::from(check),
        at: start + Duration::seconds(i),
        duration_ms: 20.0,
        up,
        color: if up { Color::Green } else { Color::Red },
        status_code: Some(if up { 200 } else { 503 }),
        latency_ms: ((i * 37) % 101) as f64 + 0.5,
        message: format!("sample {i}"),
        metrics: None,
        region: None,
    }
}

/// Everything the store answers about samples, from every read that takes them.
#[derive(Debug, PartialEq)]
struct Reads {
    c1_first_seven: Vec<SampleRow>,
    c1_all: Vec<SampleRow>,
    latest: Vec<SampleRow>,
    c0_uptime: Option<f64>,
    by_check: HashMap<String, f64>,
    buckets: Vec<(String, i64, i64, i64)>,
    days: HashMap<String, Vec<DayUptime>>,
    hours: HashMap<String, Vec<HourLatency>>,
    first: Option<DateTime<Utc>>,
    second: Option<DateTime<Utc>>,
}

async fn reads(store: &Store, start: DateTime<Utc>, now: DateTime<Utc>) -> Reads {
    let mut buckets = (store.uptime_buckets(start, start, now + Duration::days(1)))
        .await
        .expect("buckets");
    buckets.sort();
    Reads {
        c1_first_seven: store.samples("c1", start, 7).await.expect("samples"),
        c1_all: store.samples("c1", start, 10_000).await.expect("samples"),
        latest: store.latest_samples().await.expect("latest"),
        c0_uptime: store.uptime_pct("c0", start).await.expect("uptime"),
        by_check: store.uptime_by_check(start).await.expect("uptime"),
        buckets,
        days: store.daily_uptime(2, now).await.expect("days"),
        hours: store.hourly_latency(2, now).await.expect("hours"),
        first: store.first_sample_since(start).await.expect("first"),
        second: (store.first_sample_since(start + Duration::seconds(1)))
            .await
            .expect("first"),
    }
}

/// What [`reads`] must give for `rows`, worked out here.
fn expected(rows: &[SampleRow], start: DateTime<Utc>) -> Reads {
    let mut sorted = rows.to_vec();
    sorted.sort_by(|a, b| (&a.check, a.at).cmp(&(&b.check, b.at)));
    let of = |check: &str| -> Vec<SampleRow> {
        sorted
            .iter()
            .filter(|r| &*r.check == check)
            .cloned()
            .collect()
    };
    let pct = |rows: &[SampleRow]| {
        let up = rows.iter().filter(|r| r.up).count();
        100.0 * up as f64 / rows.len() as f64
    };
    let mut latest: Vec<SampleRow> = CHECKS
        .iter()
        .chain(&["c3"])
        .filter_map(|c| of(c).last().cloned())
        .collect();
    latest.sort_by(|a, b| a.check.cmp(&b.check));
    // Per check and hour (and day): totals, ups, latencies.
    let mut hours: BTreeMap<(String, i64), Vec<&SampleRow>> = BTreeMap::new();
    for r in &sorted {
        let hour = r.at.timestamp_millis().div_euclid(HOUR_MS);
        hours
            .entry((r.check.to_string(), hour))
            .or_default()
            .push(r);
    }
    let mut days: HashMap<String, BTreeMap<chrono::NaiveDate, (u64, u64)>> = HashMap::new();
    for r in &sorted {
        let day = days.entry(r.check.to_string()).or_default();
        let sum = day.entry(r.at.date_naive()).or_default();
        sum.0 += 1;
        sum.1 += u64::from(r.up);
    }
    let rank = |sorted: &[f64], p: usize| sorted[(p * sorted.len()).div_ceil(100) - 1];
    let mut latency: HashMap<String, Vec<HourLatency>> = HashMap::new();
    for ((check, hour), rows) in &hours {
        let mut l: Vec<f64> = rows.iter().map(|r| r.latency_ms).collect();
        l.sort_by(f64::total_cmp);
        latency.entry(check.clone()).or_default().push(HourLatency {
            hour: DateTime::from_timestamp_millis(hour * HOUR_MS).expect("hour"),
            latency: Latency {
                p50: rank(&l, 50),
                p95: rank(&l, 95),
                max: l[l.len() - 1],
            },
        });
    }
    Reads {
        c1_first_seven: of("c1")[..7].to_vec(),
        c1_all: of("c1"),
        latest,
        c0_uptime: Some(pct(&of("c0"))),
        by_check: CHECKS
            .iter()
            .chain(&["c3"])
            .map(|c| (c.to_string(), pct(&of(c))))
            .collect(),
        buckets: hours
            .iter()
            .map(|((check, hour), rows)| {
                let up = rows.iter().filter(|r| r.up).count() as i64;
                (check.clone(), *hour, rows.len() as i64, up)
            })
            .collect(),
        days: days
            .into_iter()
            .map(|(check, days)| {
                let days = days
                    .into_iter()
                    .map(|(day, (total, ok))| DayUptime { day, total, ok });
                (check, days.collect())
            })
            .collect(),
        hours: latency,
        first: Some(start),
        second: Some(start + Duration::seconds(1)),
    }
}

/// Rows where the backend keeps them before a move: `samples_recent` on SQLite, none on PostgreSQL.
fn recent(db: &TestDb, rows: usize) -> i64 {
    match db.backend() {
        Backend::Sqlite => rows as i64,
        Backend::Postgres => 0,
    }
}

both_backends!(
    async fn every_read_counts_a_sample_once_before_and_after_it_moves(db) {
        let store = db.store().await;
        let now = now();
        let start = now - Duration::seconds(200);
        // Even seconds stored and moved, odd ones still recent: each
        // check's samples alternate between the two tables. c3 has only
        // moved samples.
        let (mut moved, mut kept) = (Vec::new(), Vec::new());
        for i in 0..200 {
            let half = if i % 2 == 0 { &mut moved } else { &mut kept };
            half.extend(CHECKS.iter().map(|c| sample(c, start, i)));
        }
        moved.push(sample("c3", start, 150));
        store.insert_samples(&moved).await.expect("insert");
        let count = store.move_recent_samples().await.expect("move");
        assert_eq!(count as i64, recent(&db, moved.len()));
        store.insert_samples(&kept).await.expect("insert");
        assert_eq!(db.count("samples_recent").await, recent(&db, kept.len()));
        assert_eq!(db.samples().await, 601);

        let all: Vec<SampleRow> = moved.iter().chain(&kept).cloned().collect();
        let want = expected(&all, start);
        assert_eq!(reads(&store, start, now).await, want, "split between the tables");

        // Rolling an hour up reads both tables too.
        let hour = hour_of(start);
        store.roll_up_hour(hour).await.expect("roll up");
        let rolled = (store.rollups(hour, hour + Duration::hours(1)))
            .await
            .expect("rollups");
        let first_hour = hour.timestamp_millis() / HOUR_MS;
        for r in &rolled {
            let (_, _, total, up) = want.buckets.iter().find(|b| b.0 == r.check && b.1 == first_hour).expect("bucket");
            assert_eq!((r.total as i64, r.ok as i64), (*total, *up), "{}", r.check);
            let hours = &want.hours[&r.check];
            assert_eq!(Some(&r.latency), hours.iter().find(|h| h.hour == hour).map(|h| &h.latency));
        }
        // Every check with a sample in that hour: all four unless c3's
        // falls into the next one.
        let in_hour = want.buckets.iter().filter(|b| b.1 == first_hour).count();
        assert!(in_hour >= 3, "{:?}", want.buckets);
        assert_eq!(rolled.len(), in_hour, "{rolled:?}");

        let count = store.move_recent_samples().await.expect("move");
        assert_eq!(count as i64, recent(&db, kept.len()));
        assert_eq!(db.count("samples_recent").await, 0);
        assert_eq!(db.samples().await, 601);
        assert_eq!(reads(&store, start, now).await, want, "all moved, an hour rolled up");
    }
);

both_backends!(
    async fn retention_deletes_recent_and_moved_samples_alike(db) {
        let store = db.store().await;
        let start = now() - Duration::seconds(250);
        let rows = |from: i64| (from..from + 100).map(|i| sample("web", start, i)).collect::<Vec<_>>();
        store.insert_samples(&rows(0)).await.expect("insert");
        store.move_recent_samples().await.expect("move");
        store.insert_samples(&rows(100)).await.expect("insert");
        assert_eq!(db.count("samples_recent").await, recent(&db, 100));

        // 50 moved and 50 recent samples are older than the cut.
        let cutoff = start + Duration::seconds(50);
        let deleted = store.delete_samples_before(cutoff).await.expect("delete");
        assert_eq!(deleted, 50);
        let deleted = (store.delete_samples_before(start + Duration::seconds(150)))
            .await
            .expect("delete");
        assert_eq!(deleted, 100);
        assert_eq!(db.samples().await, 50);
        let left = store.samples("web", start, 1_000).await.expect("samples");
        assert_eq!(left, rows(100)[50..].to_vec());
    }
);

both_backends!(
    async fn recent_samples_move_after_twenty_thousand_rows_or_five_minutes(db) {
        let store = db.store().await;
        let start = now() - Duration::seconds(60);
        // One row short of the count: they stay.
        let rows: Vec<SampleRow> = (0..RECENT_ROWS - 1)
            .map(|i| sample(&format!("c{}", i % 1_000), start, i / 1_000))
            .collect();
        store.insert_samples(&rows).await.expect("insert");
        assert_eq!(db.count("samples_recent").await, recent(&db, rows.len()));
        // The next batch makes it: all move, sorted by check.
        store.insert_samples(&[sample("c0", start, 59)]).await.expect("insert");
        assert_eq!(db.count("samples_recent").await, 0);
        assert_eq!(db.count("samples").await, RECENT_ROWS);
        let c0 = store.samples("c0", start, 100).await.expect("samples");
        assert_eq!(c0.len(), 21);
        assert!(c0.windows(2).all(|w| w[0].at <= w[1].at), "in time order");

        // Into an empty table, a sample five minutes old moves at once; a fresh one stays.
        let old = now() - Duration::seconds(301);
        store.insert_samples(&[sample("old", old, 0)]).await.expect("insert");
        assert_eq!(db.count("samples_recent").await, 0);
        assert_eq!(db.count("samples").await, RECENT_ROWS + 1);
        store.insert_samples(&[sample("fresh", start, 0)]).await.expect("insert");
        assert_eq!(db.count("samples_recent").await, recent(&db, 1));
        assert_eq!(db.samples().await, RECENT_ROWS + 2);
    }
);

/// The trigger that makes SQLite's move fail: `samples` refuses rows.
const NO_MOVE: &str = "CREATE TRIGGER no_move BEFORE INSERT ON samples \
     BEGIN SELECT RAISE(FAIL, 'no room to move'); END";

/// A fresh SQLite database whose moves fail ([`NO_MOVE`]), and its store.
async fn refusing_moves() -> (TestDb, Store) {
    crate::support::init();
    let db = TestDb::sqlite();
    let store = db.store().await;
    db.execute(NO_MOVE).await;
    (db, store)
}

/// SQLite: a move that fails keeps every row where it was, still read; the
/// batch is stored and says so ([`StoreError::NotMoved`]), and the next
/// batch moves them all.
#[tokio::test]
async fn a_failed_move_loses_nothing_and_the_next_batch_moves() {
    let (db, store) = refusing_moves().await;
    // Five minutes old: the move is due at once.
    let old = now() - Duration::seconds(301);
    let error = store
        .insert_samples(&[sample("old", old, 0)])
        .await
        .expect_err("the move fails");
    assert!(matches!(error, StoreError::NotMoved(_)), "{error}");
    assert!(error.to_string().contains("no room to move"), "{error}");
    assert_eq!(db.count("samples_recent").await, 1);
    assert_eq!(
        store.samples("old", old, 10).await.expect("samples").len(),
        1
    );

    db.execute("DROP TRIGGER no_move").await;
    store
        .insert_samples(&[sample("next", now(), 0)])
        .await
        .expect("insert");
    assert_eq!(db.count("samples_recent").await, 0);
    assert_eq!(db.count("samples").await, 2);
}

/// What a tracing subscriber wrote, line by line.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// SQLite: while the move keeps failing, the sample writer stores every
/// batch and says so in its log at the 1st, 2nd, 4th and 8th batch, not at
/// each one (a batch a second); keeper:storage pages it.
#[tokio::test]
async fn a_move_that_keeps_failing_is_logged_ever_more_rarely_and_every_batch_is_stored() {
    let (db, store) = refusing_moves().await;
    let buffer = SampleBuffer::new(100);
    let metrics = WriterMetrics::new().expect("writer metrics");
    let mut writer = Writer::new(store, buffer.clone(), metrics);
    let log = Captured::default();
    let subscriber = {
        let log = log.clone();
        tracing_subscriber::fmt()
            .with_writer(move || log.clone())
            .with_ansi(false)
            .finish()
    };
    let subscriber = Arc::new(subscriber);
    // Five minutes old: every batch tries the move.
    let old = now() - Duration::seconds(301);
    for i in 0..9 {
        buffer.push(sample("old", old, i));
        let written = (writer.flush_once())
            .with_subscriber(subscriber.clone())
            .await
            .expect("the batch is stored though the move fails");
        assert_eq!(written, 1);
    }
    let text = String::from_utf8(log.0.lock().unwrap().clone()).expect("utf-8");
    let said: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("no room to move"))
        .collect();
    assert_eq!(said.len(), 4, "{text}");
    for (line, attempts) in said.iter().zip([1, 2, 4, 8]) {
        assert!(line.contains(&format!("attempts={attempts}")), "{line}");
    }
    assert_eq!(db.count("samples_recent").await, 9);
}
