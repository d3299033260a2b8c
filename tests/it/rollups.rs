//! Hourly rollups on SQLite and PostgreSQL (a fresh database each): samples
//! written at known times, rolled up exactly (counts and nearest-rank
//! percentiles, the same as `core::percentile`), idempotently, catching up
//! closed hours within raw retention; the reads the status page needs; uptime
//! that outlives the raw samples; and rollups deleted after 400 days.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use keeper::core::percentile::percentile;
use keeper::core::{Color, uptime_color};
use keeper::store::rollup::{self, DayUptime, Latency, Rollup};
use keeper::store::uptime::UptimeBook;
use keeper::store::{SampleRow, Store, retention};

use crate::support::app::TestApp;
use crate::support::config::{Check, TestConfig};
use crate::support::db::both_backends;
use crate::support::wait_until;

const HOUR: chrono::Duration = chrono::Duration::hours(1);
const DAY: chrono::Duration = chrono::Duration::days(1);

fn hours(n: i64) -> chrono::Duration {
    chrono::Duration::hours(n)
}

fn days(n: i64) -> chrono::Duration {
    chrono::Duration::days(n)
}

/// 2026-11-27 08:00 UTC, an hour's start.
fn h0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap()
}

/// Now, to the millisecond (both backends keep milliseconds).
fn now_ms() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now")
}

fn sample(check: &str, at: DateTime<Utc>, up: bool, latency_ms: f64) -> SampleRow {
    SampleRow {
        check: Arc::from(check),
        at,
        duration_ms: latency_ms,
        up,
        color: if up { Color::Green } else { Color::Red },
        status_code: None,
        latency_ms,
        message: String::new(),
        metrics: None,
        region: None,
    }
}

/// `n` samples of `check` spread over the hour starting at `hour`, the first
/// `down` of them down, latencies from `latency(i)`.
fn hour_of_samples(
    check: &str,
    hour: DateTime<Utc>,
    n: i64,
    down: i64,
    latency: impl Fn(i64) -> f64,
) -> Vec<SampleRow> {
    (0..n)
        .map(|i| {
            sample(
                check,
                hour + chrono::Duration::milliseconds(3_600_000 * i / n),
                i >= down,
                latency(i),
            )
        })
        .collect()
}

fn expected(check: &str, hour: DateTime<Utc>, rows: &[SampleRow]) -> Rollup {
    let latencies: Vec<f64> = rows.iter().map(|r| r.latency_ms).collect();
    Rollup {
        check: check.into(),
        hour,
        total: rows.len() as u64,
        ok: rows.iter().filter(|r| r.up).count() as u64,
        latency: Latency {
            p50: percentile(&latencies, 50).expect("p50"),
            p95: percentile(&latencies, 95).expect("p95"),
            max: percentile(&latencies, 100).expect("max"),
        },
    }
}

both_backends!(
    async fn an_hour_rolls_up_exactly_and_again_to_the_same_rows(db) {
        let store = db.store().await;
        // web: 37 samples in the first hour, latencies scrambled, 3 down, the
        // last one a millisecond before the hour ends; 5 in the next, the
        // first exactly on its start.
        let scrambled = |i: i64| ((i * 7919) % 101) as f64 * 0.25 + 1.0;
        let mut first = hour_of_samples("web", h0(), 36, 3, scrambled);
        first.push(sample("web", h0() + HOUR - chrono::Duration::milliseconds(1), true, 99.5));
        let second: Vec<_> = (0..5)
            .map(|i| sample("web", h0() + HOUR + chrono::Duration::minutes(i), true, 100.0 + i as f64))
            .collect();
        let api = vec![sample("api", h0() + chrono::Duration::minutes(30), false, 7.0)];
        for rows in [&first, &second, &api] {
            store.insert_samples(rows).await.expect("insert");
        }

        assert_eq!(store.roll_up_hour(h0()).await.expect("roll up"), 2);
        assert_eq!(store.roll_up_hour(h0() + HOUR).await.expect("roll up"), 1);
        let rows = store.rollups(h0(), h0() + hours(2)).await.expect("rollups");
        let want = vec![
            expected("api", h0(), &api),
            expected("web", h0(), &first),
            expected("web", h0() + HOUR, &second),
        ];
        assert_eq!(rows, want);
        // Known values, not only the reference function's.
        assert_eq!((want[2].total, want[2].ok), (5, 5));
        assert_eq!(want[2].latency, Latency { p50: 102.0, p95: 104.0, max: 104.0 });
        assert_eq!((want[1].total, want[1].ok, want[1].latency.max), (37, 34, 99.5));

        // Again: the same rows, none added.
        store.roll_up_hour(h0()).await.expect("roll up again");
        store.roll_up_hour(h0() + HOUR).await.expect("roll up again");
        assert_eq!(store.rollups(h0(), h0() + hours(2)).await.expect("rollups"), want);
        assert_eq!(db.count("rollups").await, 3);
        assert_eq!(db.count("rollup_days").await, 2);
        assert_eq!(store.latest_rollup().await.expect("latest"), Some(h0() + HOUR));

        // A sample stored late: rolling up the hour again counts it.
        let late = sample("web", h0() + HOUR + chrono::Duration::minutes(59), false, 500.0);
        store.insert_samples(std::slice::from_ref(&late)).await.expect("insert");
        store.roll_up_hour(h0() + HOUR).await.expect("roll up again");
        let mut second = second;
        second.push(late);
        let rows = store.rollups(h0() + HOUR, h0() + hours(2)).await.expect("rollups");
        assert_eq!(rows, vec![expected("web", h0() + HOUR, &second)]);
        assert_eq!((rows[0].total, rows[0].ok, rows[0].latency.max), (6, 5, 500.0));
    }
);

both_backends!(
    async fn a_step_catches_up_closed_hours_within_retention_and_leaves_the_open_one(db) {
        let store = db.store().await;
        let now = h0() + chrono::Duration::minutes(30);
        let ms = |m: i64| chrono::Duration::minutes(m);
        let rows = vec![
            // Kept by one day's retention (cut at 08:30 the day before), but
            // its hour is not wholly within it: not rolled up.
            sample("web", now - DAY + ms(10), true, 1.0),
            sample("web", now - hours(3), true, 2.0),
            sample("web", now - hours(3) + ms(1), false, 4.0),
            sample("web", now - hours(2), true, 3.0),
            // The open hour: not rolled up.
            sample("web", now, true, 5.0),
        ];
        store.insert_samples(&rows).await.expect("insert");
        let retention = Duration::from_secs(86_400);
        let rolled = rollup::step(&store, retention, now).await.expect("step");
        // From 09:00 the day before (the hour after the cut's) to the open
        // 08:00, the two hours with samples.
        assert_eq!(rolled, rollup::Rolled { hours: 2, rows: 2 });
        let all = store.rollups(h0() - hours(30), h0() + HOUR).await.expect("rollups");
        let got: Vec<_> = all.iter().map(|r| (r.hour, r.total, r.ok)).collect();
        assert_eq!(got, vec![(h0() - hours(3), 2, 1), (h0() - hours(2), 1, 1)]);

        // The next step rolls the latest hour again, and the one closed since
        // (07:00 had no samples).
        let later = now + HOUR;
        let again = rollup::step(&store, retention, later).await.expect("step");
        assert_eq!(again, rollup::Rolled { hours: 2, rows: 2 });
        let all = store.rollups(h0() - hours(30), h0() + hours(2)).await.expect("rollups");
        let got: Vec<_> = all.iter().map(|r| (r.hour, r.total, r.ok)).collect();
        assert_eq!(got, vec![(h0() - hours(3), 2, 1), (h0() - hours(2), 1, 1), (h0(), 1, 1)]);
    }
);

both_backends!(
    async fn daily_uptime_and_hourly_latency_join_rollups_and_the_open_hour(db) {
        let store = db.store().await;
        let day = |d: i64| Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap() + days(d);
        let now = day(2) + chrono::Duration::minutes(10 * 60 + 30);
        let lat = |i: i64| 10.0 + i as f64;
        let d0 = hour_of_samples("web", day(0) + hours(5), 10, 1, lat);
        let d1 = hour_of_samples("web", day(1) + hours(23), 4, 2, lat);
        let d2 = hour_of_samples("web", day(2) + hours(9), 10, 0, lat);
        // The open hour (10:00–10:30 so far): never rolled up.
        let open = hour_of_samples("web", day(2) + hours(10), 3, 2, |i| 50.0 - i as f64);
        let api = hour_of_samples("api", day(1) + hours(23), 2, 0, lat);
        for rows in [&d0, &d1, &d2, &open, &api] {
            store.insert_samples(rows).await.expect("insert");
        }
        for hour in [day(0) + hours(5), day(1) + hours(23), day(2) + hours(9)] {
            store.roll_up_hour(hour).await.expect("roll up");
        }

        let daily = store.daily_uptime(90, now).await.expect("daily uptime");
        let date = |d: u32| NaiveDate::from_ymd_opt(2026, 11, 20 + d).expect("date");
        assert_eq!(
            daily["web"],
            vec![
                DayUptime { day: date(0), total: 10, ok: 9 },
                DayUptime { day: date(1), total: 4, ok: 2 },
                DayUptime { day: date(2), total: 13, ok: 11 },
            ]
        );
        assert_eq!(daily["api"], vec![DayUptime { day: date(1), total: 2, ok: 2 }]);
        assert_eq!(daily.len(), 2);
        // Two days back: the first day is out.
        let two = store.daily_uptime(2, now).await.expect("daily uptime");
        assert_eq!(two["web"].len(), 2);

        let hourly = store.hourly_latency(24, now).await.expect("hourly latency");
        let web: Vec<_> = hourly["web"].iter().map(|h| (h.hour, h.latency)).collect();
        let lat_of = |rows: &[SampleRow]| expected("web", day(0), rows).latency;
        assert_eq!(
            web,
            vec![
                (day(1) + hours(23), lat_of(&d1)),
                (day(2) + hours(9), lat_of(&d2)),
                (day(2) + hours(10), Latency { p50: 49.0, p95: 50.0, max: 50.0 }),
            ]
        );
        assert_eq!(hourly["api"].len(), 1);

        // Once the open hour is rolled up, the reads say the same.
        store.roll_up_hour(day(2) + hours(10)).await.expect("roll up");
        assert_eq!(store.hourly_latency(24, now).await.expect("hourly"), hourly);
        assert_eq!(store.daily_uptime(90, now).await.expect("daily"), daily);
    }
);

/// `n` samples of web a second apart from the start of the hour `ago`
/// before `now`, `ok` of them up; returns that hour.
async fn write_at(
    store: &Store,
    now: DateTime<Utc>,
    ago: chrono::Duration,
    n: i64,
    ok: i64,
) -> DateTime<Utc> {
    let hour = rollup::hour_of(now - ago);
    let rows: Vec<_> = (0..n)
        .map(|i| sample("web", hour + chrono::Duration::seconds(i), i < ok, 1.0))
        .collect();
    store.insert_samples(&rows).await.expect("insert");
    hour
}

both_backends!(
    async fn uptime_comes_from_rollups_after_raw_samples_are_purged(db) {
        let store = db.store().await;
        let now = now_ms();
        let old = write_at(&store, now, days(40), 10, 5).await;
        let recent = write_at(&store, now, days(10), 10, 10).await;
        // The open hour: from its start, maybe a few seconds past now.
        write_at(&store, now, chrono::Duration::zero(), 2, 2).await;
        store.roll_up_hour(old).await.expect("roll up");
        store.roll_up_hour(recent).await.expect("roll up");
        let retention = Duration::from_secs(30 * 86_400);
        assert_eq!(retention::prune(&store, retention).await.expect("prune"), 10);
        assert_eq!(db.samples().await, 12);
        assert_eq!(db.count("rollups").await, 2);

        // The book: 90 days from the rollups, the open hour from the samples.
        let book = UptimeBook::new();
        store.seed_uptime(&book, now).await.expect("seed");
        let w = book.windows("web", now);
        assert_eq!((w.h24, w.d7, w.d30), (Some(100.0), Some(100.0), Some(100.0)));
        let d90 = w.d90.expect("90d uptime");
        assert!((d90 - 100.0 * 17.0 / 22.0).abs() < 1e-9, "{d90}");
        let daily = store.daily_uptime(90, now).await.expect("daily");
        let (total, ok) = daily["web"].iter().fold((0, 0), |(t, o), d| (t + d.total, o + d.ok));
        assert_eq!((total, ok, daily["web"].len()), (22, 17, 3));

        // A closed hour not rolled up yet: keeper's rollup task does it at start.
        let missed = write_at(&store, now, hours(5), 4, 4).await;
        // The API shows the 90 d window and each window's color.
        let config = TestConfig::new().check(Check::tcp("web", "127.0.0.1:9").interval("1h"));
        let app = TestApp::start_on(db, config).await;
        wait_until("keeper rolled up the missed hour", Duration::from_secs(30), || async {
            let rows = store.rollups(missed, missed + HOUR).await.expect("rollups");
            rows.iter().any(|r| (r.check.as_str(), r.total, r.ok) == ("web", 4, 4))
        })
        .await;
        let web = app.check("web").await;
        let d90 = web["uptime_pct"]["90d"].as_f64().expect("90d uptime");
        // 21 of 26 (or 27, with keeper's own first, refused, probe).
        assert!((77.0..81.0).contains(&d90), "{web}");
        for window in ["24h", "7d", "30d", "90d"] {
            let pct = web["uptime_pct"][window].as_f64().expect("uptime");
            let color = uptime_color(pct).as_str();
            assert_eq!(web["uptime_color"][window], color, "{window}: {web}");
        }
        assert_eq!(web["uptime_color"]["90d"], "red");
        app.stop().await;
    }
);

both_backends!(
    async fn retention_deletes_rollups_past_400_days_only(db) {
        let store = db.store().await;
        let now = now_ms();
        let gone = write_at(&store, now, days(401), 3, 3).await;
        let kept = write_at(&store, now, days(399), 4, 3).await;
        for hour in [gone, kept] {
            store.roll_up_hour(hour).await.expect("roll up");
        }
        assert_eq!((db.count("rollups").await, db.count("rollup_days").await), (2, 2));
        assert_eq!(retention::prune_rollups(&store).await.expect("prune"), 1);
        assert_eq!((db.count("rollups").await, db.count("rollup_days").await), (1, 1));
        let left = store.rollups(now - days(500), now).await.expect("rollups");
        assert_eq!(left.len(), 1);
        assert_eq!((left[0].hour, left[0].total, left[0].ok), (kept, 4, 3));
        assert_eq!(retention::prune_rollups(&store).await.expect("prune"), 0);
    }
);

#[test]
fn uptime_bands_color_the_windows() {
    assert_eq!(uptime_color(99.95), Color::Green);
    assert_eq!(uptime_color(97.0), Color::Yellow);
    assert_eq!(uptime_color(50.0), Color::Red);
}
