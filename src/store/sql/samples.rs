//! Reading samples back, uptime counts and retention. Writing them is each
//! backend's bulk insert ([`Store::insert_samples`]), fed by the writer.
//!
//! Samples are in two tables: `samples`, indexed, and `samples_recent`,
//! where SQLite's writer gathers new rows for a few minutes before moving
//! them into `samples` (store/sqlite.rs; on PostgreSQL it stays empty).
//! Every read here takes both in one statement, so a move between two
//! reads cannot count a sample twice or miss it. Aggregates are summed in
//! each table before the two are added up: a GROUP BY over the union of
//! raw rows would copy and sort every one of them first.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Result, Row, decode_each};
use crate::store::{SampleRow, Store, StoreError};

/// The columns of a sample, as [`sample`] decodes them.
macro_rules! columns {
    () => {
        "check_name, at, duration_ms, up, color, status_code, latency_ms, message, metrics, region"
    };
}

/// `$select` from each sample table with the same `$filter`, as one
/// `UNION ALL` (the SQL text, built at compile time).
macro_rules! in_both_tables {
    ($select:expr, $filter:expr) => {
        concat!(
            $select,
            " FROM samples ",
            $filter,
            " UNION ALL ",
            $select,
            " FROM samples_recent ",
            $filter
        )
    };
}

/// Up and total samples, counted in each table before they are added up.
macro_rules! counts {
    () => {
        "COUNT(*) AS total, COUNT(*) FILTER (WHERE up) AS up"
    };
}

/// [`Store::uptime_buckets`]' query around the backend's `$hour` expression.
macro_rules! buckets {
    ($hour:literal) => {
        concat!(
            "SELECT check_name, hour, CAST(SUM(total) AS BIGINT) AS total, \
                    CAST(SUM(up) AS BIGINT) AS up FROM (",
            in_both_tables!(
                concat!("SELECT check_name, ", $hour, " AS hour, ", counts!()),
                "WHERE at >= $1 AND at < $3 GROUP BY 1, 2"
            ),
            ") b GROUP BY 1, 2"
        )
    };
}

/// Up and total samples per check since `$1`, in both tables, summed.
const UPTIME_BY_CHECK: &str = concat!(
    "SELECT check_name, CAST(SUM(total) AS BIGINT) AS total, \
            CAST(SUM(up) AS BIGINT) AS up FROM (",
    in_both_tables!(
        concat!("SELECT check_name, ", counts!()),
        "WHERE at >= $1 GROUP BY check_name"
    ),
    ") u GROUP BY check_name"
);

impl Store {
    /// Deletes samples taken before `cutoff` (`storage.retention`); returns how many.
    pub async fn delete_samples_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let delete = self.query("DELETE FROM samples WHERE at < $1").time(cutoff);
        let indexed = delete.execute("deleting samples past retention").await?;
        let delete = (self.query("DELETE FROM samples_recent WHERE at < $1")).time(cutoff);
        let recent = delete
            .execute("deleting recent samples past retention")
            .await?;
        Ok(indexed + recent)
    }

    /// `check`'s samples taken at or after `since`, oldest first, at most `limit`.
    pub async fn samples(
        &self,
        check: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<SampleRow>> {
        self.query(concat!(
            "SELECT * FROM (SELECT ",
            columns!(),
            " FROM samples WHERE check_name = $1 AND at >= $2 ORDER BY at LIMIT $3) s \
             UNION ALL SELECT * FROM (SELECT ",
            columns!(),
            " FROM samples_recent WHERE check_name = $1 AND at >= $2 ORDER BY at LIMIT $3) r \
             ORDER BY at LIMIT $3"
        ))
        .bind(check)
        .time(since)
        .bind(i64::from(limit))
        .all(sample, "reading a check's samples")
        .await
    }

    /// The newest sample of each check, found by the index of each: SQLite
    /// through its rowid, and in its recent samples with `MAX(at)` (whose
    /// row SQLite gives the other columns of); PostgreSQL, whose recent
    /// table stays empty, with `DISTINCT ON`.
    pub async fn latest_samples(&self) -> Result<Vec<SampleRow>> {
        let sql = self.pick(
            "SELECT s.check_name, s.at, s.duration_ms, s.up, s.color, s.status_code, \
                    s.latency_ms, s.message, s.metrics, s.region \
             FROM (SELECT DISTINCT check_name FROM samples) c \
             JOIN samples s ON s.rowid = ( \
                 SELECT rowid FROM samples \
                 WHERE check_name = c.check_name ORDER BY at DESC LIMIT 1) \
             UNION ALL \
             SELECT check_name, MAX(at) AS at, duration_ms, up, color, status_code, \
                    latency_ms, message, metrics, region \
             FROM samples_recent GROUP BY check_name \
             ORDER BY check_name, at DESC",
            "SELECT DISTINCT ON (check_name) check_name, at, duration_ms, up, color, \
                    status_code, latency_ms, message, metrics, region \
             FROM samples ORDER BY check_name, at DESC",
        );
        let rows = self
            .query(sql)
            .rows("reading the latest sample of each check")
            .await?;
        let mut latest = decode_each("samples", "check_name", rows, sample);
        // Newest first within a check: the first of each is the one.
        latest.dedup_by(|later, first| later.check == first.check);
        Ok(latest)
    }

    /// Percentage of up samples of `check` since `since`; `None` without samples.
    pub async fn uptime_pct(&self, check: &str, since: DateTime<Utc>) -> Result<Option<f64>> {
        let counts = self
            .query(concat!(
                "SELECT CAST(SUM(total) AS BIGINT) AS total, CAST(SUM(up) AS BIGINT) AS up \
                 FROM (",
                in_both_tables!(
                    concat!("SELECT ", counts!()),
                    "WHERE check_name = $1 AND at >= $2"
                ),
                ") u"
            ))
            .bind(check)
            .time(since)
            .one("computing uptime")
            .await?;
        let (total, up): (i64, i64) = (counts.get("total")?, counts.get("up")?);
        Ok((total > 0).then(|| 100.0 * up as f64 / total as f64))
    }

    /// Percentage of up samples since `since`, for every check that has samples.
    pub async fn uptime_by_check(&self, since: DateTime<Utc>) -> Result<HashMap<String, f64>> {
        let rows = (self.query(UPTIME_BY_CHECK).time(since))
            .rows("computing uptime per check")
            .await?;
        let mut uptime = HashMap::new();
        for row in rows {
            let (total, up): (i64, i64) = (row.get("total")?, row.get("up")?);
            if total > 0 {
                uptime.insert(row.get("check_name")?, 100.0 * up as f64 / total as f64);
            }
        }
        Ok(uptime)
    }

    /// Samples from `since` to `until` (excluded) counted per check and
    /// hour as `(check, hour since the epoch, total, up)`; those before
    /// `hourly_since` per day instead (the hour is the day's first). Bounded
    /// on both sides: with `at >= $1` alone SQLite's planner scans the whole
    /// table in the order of (check_name, at) for the GROUP BY.
    pub async fn uptime_buckets(
        &self,
        since: DateTime<Utc>,
        hourly_since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<(String, i64, i64, i64)>> {
        let sql = self.pick(
            buckets!("CASE WHEN at >= $2 THEN at / 3600000 ELSE (at / 86400000) * 24 END"),
            buckets!(
                "(CASE WHEN at >= $2 THEN floor(extract(epoch FROM at) / 3600) \
                 ELSE floor(extract(epoch FROM at) / 86400) * 24 END)::bigint"
            ),
        );
        let buckets = self.query(sql).time(since).time(hourly_since).time(until);
        buckets
            .all(bucket, "counting samples per check and hour for uptime")
            .await
    }
}

fn bucket(row: &Row) -> Result<(String, i64, i64, i64)> {
    Ok((
        row.get("check_name")?,
        row.get("hour")?,
        row.get("total")?,
        row.get("up")?,
    ))
}

fn sample(row: &Row) -> Result<SampleRow> {
    let status_code = match row.get::<Option<i32>>("status_code")? {
        Some(code) => Some(u16::try_from(code).map_err(|_| {
            StoreError::Corrupt(format!("samples.status_code: {code} is not an HTTP status"))
        })?),
        None => None,
    };
    Ok(SampleRow {
        check: row.get::<String>("check_name")?.into(),
        at: row.time("samples.at")?,
        duration_ms: row.get("duration_ms")?,
        up: row.get("up")?,
        color: row.text("samples.color", str::parse)?,
        status_code,
        latency_ms: row.get("latency_ms")?,
        message: row.get("message")?,
        metrics: row.get("metrics")?,
        region: row.get::<Option<String>>("region")?.map(Into::into),
    })
}
