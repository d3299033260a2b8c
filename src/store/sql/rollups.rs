//! Hourly rollups: rolling an hour of samples up, the latest hour rolled up,
//! retention, and the reads built on them (uptime for the API's book, each
//! day's uptime and each hour's latency for every check at once). When to
//! roll up is `store/rollup.rs`'s business.
//!
//! What is not rolled up yet (the open hour, and any closed hour the rollup
//! task has not reached) is read from the raw samples: everything at or
//! after the end of the latest hour rolled up, so no sample counts twice.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use super::{Result, Row};
use crate::store::rollup::{DayUptime, HourLatency, Latency, Rollup};
use crate::store::uptime::{DAY_MS, HOUR_MS, UptimeBook};
use crate::store::{Store, StoreError};

/// The columns [`rollup`] decodes, after `check_name` and `hour`.
const SUMS: &str = "total, ok, latency_p50, latency_p95, latency_max";
/// Rollup rows per INSERT: 7 parameters each, far below either backend's limit.
const ROWS_PER_UPSERT: usize = 1_000;

impl Store {
    /// The samples from `from` to `to` (excluded), in both sample tables
    /// (store/sql/samples.rs), summed up per check and
    /// hour (`slot`: hours since the epoch): `total`, `ok`, and the latency's
    /// p50 and p95 by nearest rank (the value ranked ⌈p·n/100⌉, as
    /// [`crate::core::percentile::rank`]) and max. `from` and `to` are
    /// placeholders (`$1`). The same SQL on both backends, so both rank alike.
    fn hourly_sums(&self, from: &str, to: &str) -> String {
        let at = self.millis("at");
        format!(
            "SELECT check_name, slot, COUNT(*) AS total, COUNT(*) FILTER (WHERE up) AS ok, \
                    MAX(CASE WHEN rn = (50 * n + 99) / 100 THEN latency_ms END) AS latency_p50, \
                    MAX(CASE WHEN rn = (95 * n + 99) / 100 THEN latency_ms END) AS latency_p95, \
                    MAX(latency_ms) AS latency_max \
             FROM (SELECT check_name, slot, up, latency_ms, \
                          ROW_NUMBER() OVER (PARTITION BY check_name, slot \
                                             ORDER BY latency_ms) AS rn, \
                          COUNT(*) OVER (PARTITION BY check_name, slot) AS n \
                   FROM (SELECT check_name, {at} / {HOUR_MS} AS slot, up, latency_ms \
                         FROM (SELECT check_name, at, up, latency_ms FROM samples \
                               WHERE at >= {from} AND at < {to} \
                               UNION ALL \
                               SELECT check_name, at, up, latency_ms FROM samples_recent \
                               WHERE at >= {from} AND at < {to}) s) h) r \
             GROUP BY check_name, slot"
        )
    }

    /// Rolls up the hour starting at `hour` (an hour's start) from its raw
    /// samples, replacing what was rolled up of it before, and sums its day
    /// up again from the day's hours; returns the hourly rows written (one
    /// per check with samples in the hour). The samples are summed up before
    /// the write transaction, so SQLite's write lock (which the sample writer
    /// and the engine wait for) is held only to write the sums.
    pub async fn roll_up_hour(&self, hour: DateTime<Utc>) -> Result<u64> {
        let sql = format!(
            "SELECT check_name, {SUMS} FROM ({}) s",
            self.hourly_sums("$1", "$2")
        );
        let sums = (self.query(AssertSqlSafe(sql)).time(hour))
            .time(hour + chrono::Duration::hours(1))
            .rows("summing up an hour of samples")
            .await?;
        let day = time(hour.timestamp_millis().div_euclid(DAY_MS) * DAY_MS)?;
        let mut tx = self.begin("starting to write an hour's rollup").await?;
        for chunk in sums.chunks(ROWS_PER_UPSERT) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let n = |k: usize| format!("${}", i * 7 + k);
                    format!(
                        "({}, {}, {}, {}, {}, {}, {})",
                        n(1),
                        n(2),
                        n(3),
                        n(4),
                        n(5),
                        n(6),
                        n(7)
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO rollups (check_name, hour, {SUMS}) VALUES {} \
                 ON CONFLICT (check_name, hour) DO UPDATE SET \
                     total = excluded.total, ok = excluded.ok, \
                     latency_p50 = excluded.latency_p50, latency_p95 = excluded.latency_p95, \
                     latency_max = excluded.latency_max",
                values.join(", ")
            );
            let mut upsert = tx.query(AssertSqlSafe(sql));
            for row in chunk {
                let l = latency(row)?;
                upsert = (upsert.bind(row.get::<String>("check_name")?).time(hour))
                    .bind(row.get::<i64>("total")?)
                    .bind(row.get::<i64>("ok")?)
                    .bind(l.p50)
                    .bind(l.p95)
                    .bind(l.max);
            }
            upsert.execute("writing an hour's rollup").await?;
        }
        tx.query(
            "INSERT INTO rollup_days (check_name, day, total, ok) \
             SELECT check_name, $1, CAST(SUM(total) AS BIGINT), CAST(SUM(ok) AS BIGINT) \
             FROM rollups WHERE hour >= $1 AND hour < $2 GROUP BY check_name \
             ON CONFLICT (check_name, day) DO UPDATE SET total = excluded.total, ok = excluded.ok",
        )
        .time(day)
        .time(day + chrono::Duration::days(1))
        .execute("summing up a day of rollups")
        .await?;
        tx.commit("committing an hour's rollup").await?;
        Ok(sums.len() as u64)
    }

    /// When the first sample at or after `since` was taken, if any.
    pub async fn first_sample_since(&self, since: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let row = self.query(
            "SELECT MIN(first) AS first FROM ( \
                 SELECT MIN(at) AS first FROM samples WHERE at >= $1 \
                 UNION ALL SELECT MIN(at) AS first FROM samples_recent WHERE at >= $1) f",
        );
        let row = row
            .time(since)
            .one("finding the next sample to roll up")
            .await?;
        row.time("samples.first")
    }

    /// The start of the latest hour rolled up, if any.
    pub async fn latest_rollup(&self) -> Result<Option<DateTime<Utc>>> {
        let row = (self.query("SELECT MAX(hour) AS latest FROM rollups"))
            .one("reading the latest hour rolled up")
            .await?;
        row.time("rollups.latest")
    }

    /// Where the raw samples take over from the rollups: the end of the
    /// latest hour rolled up, or `since` when there is none (or it is older).
    async fn rolled_until(&self, since: DateTime<Utc>) -> Result<DateTime<Utc>> {
        let latest = self.latest_rollup().await?;
        Ok(latest.map_or(since, |h| (h + chrono::Duration::hours(1)).max(since)))
    }

    /// Every check's rollups of the hours from `since` to `until` (excluded),
    /// by check and hour.
    pub async fn rollups(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> Result<Vec<Rollup>> {
        let sql = format!(
            "SELECT check_name, hour, {SUMS} FROM rollups WHERE hour >= $1 AND hour < $2 \
             ORDER BY check_name, hour"
        );
        (self.query(AssertSqlSafe(sql)).time(since).time(until))
            .all(rollup, "reading rollups")
            .await
    }

    /// Deletes the rollups of hours, and the sums of days, that start before
    /// `cutoff`; returns how many hourly rows went.
    pub async fn delete_rollups_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let days = self
            .query("DELETE FROM rollup_days WHERE day < $1")
            .time(cutoff);
        days.execute("deleting daily rollups past retention")
            .await?;
        let hours = self
            .query("DELETE FROM rollups WHERE hour < $1")
            .time(cutoff);
        hours.execute("deleting rollups past retention").await
    }

    /// Each check's samples per UTC day over the last `days` days up to
    /// `now` (today included): the sums of whole days rolled up, the hourly
    /// rollups of the day the raw samples start in, and the raw samples not
    /// rolled up yet (in both tables). Days without samples are left out;
    /// each check's days in order. One query for every check.
    pub async fn daily_uptime(
        &self,
        days: u32,
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, Vec<DayUptime>>> {
        let today = now.timestamp_millis().div_euclid(DAY_MS) * DAY_MS;
        let since = time(today - i64::from(days.max(1) - 1) * DAY_MS)?;
        let raw_since = self.rolled_until(since).await?;
        // Whole days from their sums, the day the raw samples start in from its hours.
        let hourly_since = time(raw_since.timestamp_millis().div_euclid(DAY_MS) * DAY_MS)?;
        let (day, hour, at) = (self.millis("day"), self.millis("hour"), self.millis("at"));
        // Each part grouped on its own and merged here: a GROUP BY over the
        // union would copy and sort every row first (seconds at 10,000 checks).
        let sql = format!(
            "SELECT check_name, {day} / {DAY_MS} AS slot, total, ok FROM rollup_days \
             WHERE day >= $1 AND day < $2 \
             UNION ALL \
             SELECT check_name, {hour} / {DAY_MS} AS slot, CAST(SUM(total) AS BIGINT) AS total, \
                    CAST(SUM(ok) AS BIGINT) AS ok \
             FROM rollups WHERE hour >= $2 AND hour < $3 GROUP BY 1, 2 \
             UNION ALL \
             SELECT check_name, {at} / {DAY_MS} AS slot, COUNT(*) AS total, \
                    COUNT(*) FILTER (WHERE up) AS ok \
             FROM samples WHERE at >= $3 AND at < $4 GROUP BY 1, 2 \
             UNION ALL \
             SELECT check_name, {at} / {DAY_MS} AS slot, COUNT(*) AS total, \
                    COUNT(*) FILTER (WHERE up) AS ok \
             FROM samples_recent WHERE at >= $3 AND at < $4 GROUP BY 1, 2"
        );
        let rows = (self.query(AssertSqlSafe(sql)).time(since))
            .time(hourly_since.max(since))
            .time(raw_since)
            .time(ahead(now))
            .rows("reading each day's uptime")
            .await?;
        let mut sums: HashMap<String, BTreeMap<i64, (u64, u64)>> = HashMap::new();
        for row in &rows {
            let day = sums.entry(row.get("check_name")?).or_default();
            let sum = day.entry(row.get("slot")?).or_default();
            sum.0 += count(row, "total")?;
            sum.1 += count(row, "ok")?;
        }
        let mut by_check = HashMap::with_capacity(sums.len());
        for (check, days) in sums {
            let days = days.into_iter().map(|(slot, (total, ok))| {
                let day = time(slot * DAY_MS)?.date_naive();
                Ok(DayUptime { day, total, ok })
            });
            by_check.insert(check, days.collect::<Result<Vec<_>>>()?);
        }
        Ok(by_check)
    }

    /// Each check's latency per hour over the last `hours` hours up to `now`
    /// (the current hour included): rollups, and the raw samples not rolled
    /// up yet, ranked alike. Hours without samples are left out; each
    /// check's hours in order. One query for every check.
    pub async fn hourly_latency(
        &self,
        hours: u32,
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, Vec<HourLatency>>> {
        let open = now.timestamp_millis().div_euclid(HOUR_MS) * HOUR_MS;
        let since = time(open - i64::from(hours.max(1) - 1) * HOUR_MS)?;
        let raw_since = self.rolled_until(since).await?;
        let hour = self.millis("hour");
        let sql = format!(
            "SELECT check_name, {hour} / {HOUR_MS} AS slot, \
                    latency_p50, latency_p95, latency_max FROM rollups \
             WHERE hour >= $1 AND hour < $2 \
             UNION ALL \
             SELECT check_name, slot, latency_p50, latency_p95, latency_max FROM ({}) r",
            self.hourly_sums("$2", "$3")
        );
        let rows = (self.query(AssertSqlSafe(sql)).time(since).time(raw_since))
            .time(time(open + HOUR_MS)?)
            .rows("reading each hour's latency")
            .await?;
        let mut by_check: HashMap<String, Vec<HourLatency>> = HashMap::new();
        for row in &rows {
            let hour = time(row.get::<i64>("slot")? * HOUR_MS)?;
            by_check
                .entry(row.get("check_name")?)
                .or_default()
                .push(HourLatency {
                    hour,
                    latency: latency(row)?,
                });
        }
        // In order here rather than by an ORDER BY over the union (a copy and a sort).
        for hours in by_check.values_mut() {
            hours.sort_by_key(|h| h.hour);
        }
        Ok(by_check)
    }

    /// Fills `book` with what its windows can count: the sums of whole days
    /// and the hourly rollups of the last day or two (the hours the 24 h
    /// window needs), then the raw samples not rolled up yet. Before the
    /// sample writer starts, so no batch counts twice.
    pub async fn seed_uptime(&self, book: &UptimeBook, now: DateTime<Utc>) -> Result<()> {
        // On an hour's start, so no hour is split between an hourly and a daily row.
        let hourly_since = (now - chrono::Duration::hours(25)).timestamp_millis();
        let hourly_since = time(hourly_since.div_euclid(HOUR_MS) * HOUR_MS)?;
        let since = UptimeBook::seed_since(now);
        let raw_since = self.rolled_until(since).await?;
        let day_of = |t: DateTime<Utc>| time(t.timestamp_millis().div_euclid(DAY_MS) * DAY_MS);
        let (days_since, hours_since) = (day_of(since)?, day_of(hourly_since.min(raw_since))?);
        let (day, hour) = (self.millis("day"), self.millis("hour"));
        let sql = format!(
            "SELECT check_name, {day} / {HOUR_MS} AS slot, total, ok FROM rollup_days \
             WHERE day >= $1 AND day < $2 \
             UNION ALL \
             SELECT check_name, {hour} / {HOUR_MS} AS slot, total, ok FROM rollups \
             WHERE hour >= $2 AND hour < $3"
        );
        let rolled = (self.query(AssertSqlSafe(sql)).time(days_since))
            .time(hours_since.max(days_since))
            .time(raw_since)
            .rows("counting rollups per check for uptime")
            .await?;
        for row in &rolled {
            let check: String = row.get("check_name")?;
            book.add_hour(
                &check,
                row.get("slot")?,
                count(row, "total")?,
                count(row, "ok")?,
            );
        }
        for (check, hour, total, up) in self
            .uptime_buckets(raw_since, hourly_since, ahead(now))
            .await?
        {
            let count = |n: i64| u64::try_from(n).unwrap_or(0);
            book.add_hour(&check, hour, count(total), count(up));
        }
        Ok(())
    }
}

/// The end of the raw samples read with the rollups: a day past `now`, for
/// clocks a little ahead. Two-sided, so SQLite ranges over `samples_at`
/// (with `at >= $1` alone its planner scans the table by check instead).
fn ahead(now: DateTime<Utc>) -> DateTime<Utc> {
    now + chrono::Duration::days(1)
}

/// Unix milliseconds as a time.
fn time(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} out of range")))
}

/// A count column, never negative.
fn count(row: &Row, column: &'static str) -> Result<u64> {
    let n: i64 = row.get(column)?;
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("rollups.{column}: {n} < 0")))
}

fn latency(row: &Row) -> Result<Latency> {
    Ok(Latency {
        p50: row.get("latency_p50")?,
        p95: row.get("latency_p95")?,
        max: row.get("latency_max")?,
    })
}

fn rollup(row: &Row) -> Result<Rollup> {
    Ok(Rollup {
        check: row.get("check_name")?,
        hour: row.time("rollups.hour")?,
        total: count(row, "total")?,
        ok: count(row, "ok")?,
        latency: latency(row)?,
    })
}
