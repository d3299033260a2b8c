//! Hourly rollups (DESIGN.md §6): every closed hour's samples of each check
//! summed up — count, ok count, latency p50/p95/max — and kept [`KEEP`] (400
//! days) while raw samples go after `storage.retention`. This file owns when
//! hours are rolled up and the rows' types; the queries are in
//! `sql/rollups.rs`, and retention (`retention.rs`) deletes old rollups.
//!
//! At start every closed hour after the latest one rolled up (within raw
//! retention) is caught up; then each hour [`GRACE`] after it closes, so the
//! writer has flushed its samples. Each step rolls the latest hour rolled up
//! once more, for samples stored late (the writer holds them while the
//! database is away). Rolling up is an upsert: twice, or after a crash,
//! changes nothing. A failed step is logged and retried at the next one.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{Store, StoreError};

/// How long rollups are kept.
pub const KEEP: Duration = Duration::from_secs(400 * 86_400);
/// How long after an hour closes it is rolled up.
pub const GRACE: Duration = Duration::from_secs(120);
const HOUR: chrono::Duration = chrono::Duration::hours(1);

/// One check's samples in one hour, summed up.
#[derive(Clone, Debug, PartialEq)]
pub struct Rollup {
    pub check: String,
    /// The hour's start.
    pub hour: DateTime<Utc>,
    pub total: u64,
    pub ok: u64,
    pub latency: Latency,
}

/// Latency percentiles of an hour's samples, by nearest rank
/// ([`crate::core::percentile`]), over every sample (up or down).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

/// A check's samples in one UTC day: from rollups, and raw samples for the
/// hours not rolled up yet (the current one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayUptime {
    pub day: chrono::NaiveDate,
    pub total: u64,
    pub ok: u64,
}

impl DayUptime {
    /// Percentage up; `None` without samples.
    pub fn pct(&self) -> Option<f64> {
        (self.total > 0).then(|| 100.0 * self.ok as f64 / self.total as f64)
    }
}

/// A check's latency in one hour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HourLatency {
    /// The hour's start.
    pub hour: DateTime<Utc>,
    pub latency: Latency,
}

/// What one step rolled up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rolled {
    /// Hours rolled up (those with samples).
    pub hours: u32,
    /// Rollup rows written (one per check with samples in each hour).
    pub rows: u64,
}

/// The start of the hour `at` lies in.
pub fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    let ms = at.timestamp_millis();
    DateTime::from_timestamp_millis(ms - ms.rem_euclid(3_600_000)).unwrap_or(at)
}

/// One step: rolls up each closed hour at `now` from the latest already
/// rolled up on (that one again), or from the first hour wholly within raw
/// `retention` when there is none or it lies before.
pub async fn step(
    store: &Store,
    retention: Duration,
    now: DateTime<Utc>,
) -> Result<Rolled, StoreError> {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let open = hour_of(now);
    // The oldest hour none of whose samples retention may have deleted, and
    // none older than the rollups are kept.
    let keep = chrono::Duration::from_std(KEEP).unwrap_or(chrono::Duration::MAX);
    let oldest = [retention, keep]
        .into_iter()
        .filter_map(|back| now.checked_sub_signed(back))
        .map(|cut| hour_of(cut) + HOUR)
        .max()
        .unwrap_or(open);
    let from = match store.latest_rollup().await? {
        Some(latest) => latest.max(oldest),
        None => oldest,
    };
    let mut rolled = Rolled::default();
    let mut hour = from;
    while hour < open {
        // Hours without samples (keeper was down) are skipped, not rolled up.
        match store.first_sample_since(hour).await? {
            Some(at) if at < open => hour = hour.max(hour_of(at)),
            _ => break,
        }
        rolled.rows += store.roll_up_hour(hour).await?;
        rolled.hours += 1;
        hour += HOUR;
    }
    Ok(rolled)
}

/// Rolls up at start and [`GRACE`] after each hour closes, until `shutdown`
/// (which also ends a step in progress).
pub async fn run(store: Store, retention: Duration, shutdown: CancellationToken) {
    loop {
        // A step cut short at shutdown leaves its hour's transaction
        // uncommitted: the next start rolls that hour up again.
        let stepped = tokio::select! {
            _ = shutdown.cancelled() => return,
            stepped = step(&store, retention, Utc::now()) => stepped,
        };
        match stepped {
            Ok(Rolled { hours: 0, .. }) => {}
            Ok(r) => tracing::info!(hours = r.hours, rows = r.rows, "samples rolled up"),
            Err(e) => tracing::warn!(error = %e, "rolling up samples; will retry next hour"),
        }
        let next = hour_of(Utc::now()) + HOUR;
        let wait = (next - Utc::now()).to_std().unwrap_or_default() + GRACE;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_starts_on_the_hour() {
        let at = DateTime::parse_from_rfc3339("2026-11-30T05:59:59.999Z")
            .expect("time")
            .to_utc();
        let start = DateTime::parse_from_rfc3339("2026-11-30T05:00:00Z")
            .expect("time")
            .to_utc();
        assert_eq!(hour_of(at), start);
        assert_eq!(hour_of(start), start);
    }

    #[test]
    fn a_day_of_no_samples_has_no_uptime() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).expect("date");
        let none = DayUptime {
            day,
            total: 0,
            ok: 0,
        };
        assert_eq!(none.pct(), None);
        let some = DayUptime {
            day,
            total: 200,
            ok: 199,
        };
        assert_eq!(some.pct(), Some(99.5));
    }
}
