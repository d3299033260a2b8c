//! The daily health report, `HEALTH_REPORT_YYYY-MM-DD.md` (DESIGN.md §8,
//! `keeper report health`; `[reports] health` sends it on a schedule): the
//! overall status, each app's checks (status, uptime, p95 latency, error
//! rate, memory/CPU/disk, incidents, deployments), certificates expiring
//! soon, the slowest database statements, backups and heartbeats, log error
//! rates and critical lines, and the actions every yellow or red indicator
//! calls for.
//!
//! [`gather`] reads the [`Facts`] of a [`Period`] from the store (the raw
//! samples, or the hourly rollups once the samples are past retention);
//! [`actions`] derives the action list and [`markdown`] writes the report,
//! both pure; [`html`] turns that Markdown into the email's HTML part and
//! [`daily`] sends it through the routed channels.

pub mod actions;
pub mod daily;
#[cfg(test)]
mod fixture;
pub mod gather;
pub mod html;
pub mod markdown;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::classify::Thresholds;
use crate::core::deployment::Deployment;
use crate::core::{Color, Metric};
use crate::incident::Incident;

pub use gather::gather;
pub use markdown::render;

/// Checks without an `app` label are listed under this name.
pub const OTHER: &str = "other";
/// Certificates expiring within this many days are listed.
pub const CERT_DAYS: f64 = 30.0;

/// The report's file name: `HEALTH_REPORT_YYYY-MM-DD.md`.
pub fn file_name(date: NaiveDate) -> String {
    format!("HEALTH_REPORT_{}.md", date.format("%Y-%m-%d"))
}

/// The 24 hours a report covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub date: NaiveDate,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// The day is today: the period ends now, not at midnight.
    pub to_now: bool,
}

impl Period {
    /// The 24 hours up to the end of UTC day `date`, or up to `now` when
    /// that day is today. `None` for a day that has not begun.
    pub fn of(date: NaiveDate, now: DateTime<Utc>) -> Option<Period> {
        let start = date.and_hms_opt(0, 0, 0)?.and_utc();
        if start > now {
            return None;
        }
        let end = start + Duration::days(1);
        let (until, to_now) = if now < end { (now, true) } else { (end, false) };
        Some(Period {
            date,
            since: until - Duration::days(1),
            until,
            to_now,
        })
    }
}

/// A measured value over the period: the newest and the worst (highest, or
/// lowest for a metric where lower is worse).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    pub latest: f64,
    pub peak: f64,
}

/// Where a check's counts came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Its raw samples.
    Samples,
    /// The hourly rollups (raw samples past retention): the p95 is the worst hour's.
    Rollups,
    /// Nothing stored for the period.
    Nothing,
}

/// What one check did in the period.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckFacts {
    pub name: String,
    /// Its `app` label; `None` is listed under [`OTHER`].
    pub app: Option<String>,
    /// The probe kind (`http`, `tls`, `postgres`, `log`, `heartbeat`…).
    pub kind: &'static str,
    /// Its layered thresholds (built-in, `[defaults]`, its own).
    pub thresholds: Arc<Thresholds>,
    pub source: Source,
    pub total: u64,
    pub ok: u64,
    pub p95_ms: Option<f64>,
    /// Its newest sample in the period: color and message.
    pub latest: Option<(Color, String, DateTime<Utc>)>,
    pub metrics: BTreeMap<Metric, Reading>,
    /// `log` checks: the distinct critical lines seen, newest first.
    pub criticals: Vec<String>,
    /// `postgres` checks: the slowest statements its newest sample names
    /// (from `pg_stat_statements`), as it wrote them.
    pub slowest: Option<String>,
    /// `heartbeat` checks: the last successful ping, and whether the check
    /// says it is overdue (its newest sample is down).
    pub heartbeat: Option<Heartbeat>,
}

impl CheckFacts {
    /// Percentage of up samples; `None` without samples.
    pub fn uptime(&self) -> Option<f64> {
        (self.total > 0).then(|| 100.0 * self.ok as f64 / self.total as f64)
    }

    /// The app it is listed under.
    pub fn app_name(&self) -> &str {
        self.app.as_deref().unwrap_or(OTHER)
    }

    /// The color of its newest sample; `None` when it has none in the period.
    pub fn color(&self) -> Option<Color> {
        self.latest.as_ref().map(|(c, _, _)| *c)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Heartbeat {
    pub last_success: Option<DateTime<Utc>>,
    pub overdue: bool,
}

/// Everything the report says.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    pub period: Period,
    /// When it was made.
    pub made_at: DateTime<Utc>,
    /// Every configured check, in the config's order.
    pub checks: Vec<CheckFacts>,
    /// Incidents open at some time in the period, oldest first.
    pub incidents: Vec<Incident>,
    /// Deployments in the period, oldest first.
    pub deployments: Vec<Deployment>,
}

impl Facts {
    /// The apps, in order of first appearance ([`OTHER`] last), each with its checks.
    pub fn apps(&self) -> Vec<(&str, Vec<&CheckFacts>)> {
        let mut apps: Vec<(&str, Vec<&CheckFacts>)> = Vec::new();
        for c in &self.checks {
            match apps.iter_mut().find(|(a, _)| *a == c.app_name()) {
                Some((_, list)) => list.push(c),
                None => apps.push((c.app_name(), vec![c])),
            }
        }
        apps.sort_by_key(|(a, _)| *a == OTHER);
        apps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_past_day_is_whole_and_today_ends_now() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        let p = Period::of(date, at("2026-11-30T06:00:00Z")).unwrap();
        assert_eq!(p.since, at("2026-11-29T00:00:00Z"));
        assert_eq!(p.until, at("2026-11-30T00:00:00Z"));
        assert!(!p.to_now);
        let today = Period::of(date, at("2026-11-29T08:00:00Z")).unwrap();
        assert_eq!(today.since, at("2026-11-28T08:00:00Z"));
        assert_eq!(today.until, at("2026-11-29T08:00:00Z"));
        assert!(today.to_now);
        assert_eq!(Period::of(date, at("2026-11-28T23:59:59Z")), None);
        assert_eq!(file_name(date), "HEALTH_REPORT_2026-11-29.md");
    }
}
