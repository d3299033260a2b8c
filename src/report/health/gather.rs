//! Reads a health report's [`Facts`] from keeper's database: each check's
//! samples of the period (or its hourly rollups once the samples are past
//! retention), the incidents open during it, its deployments and the
//! heartbeats' last pings. Read-only: it works on the reader pool while the
//! daemon runs, and from `keeper report health` while it is down.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::{CheckFacts, Facts, Heartbeat, Period, Reading, Source};
use crate::config::CheckConfig;
use crate::core::percentile::percentile;
use crate::core::{Direction, Metric};
use crate::store::rollup::Rollup;
use crate::store::{IncidentFilter, SampleRow, Store, StoreError};

/// Samples read per query while walking a check's period.
const PAGE: u32 = 5000;
/// The newest incidents looked through for those open during the period.
const INCIDENT_SCAN: u32 = 10_000;
/// At most this many deployments are listed.
const DEPLOY_LIMIT: u32 = 1000;
/// At most this many distinct critical lines are kept per log check.
const CRITICALS: usize = 10;

/// Reads the facts of `period` for `checks` (the config's).
pub async fn gather(
    store: &Store,
    checks: &[Arc<CheckConfig>],
    period: Period,
    now: DateTime<Utc>,
) -> Result<Facts, StoreError> {
    let rollups = store.rollups(period.since, period.until).await?;
    let mut rolled: HashMap<&str, Vec<&Rollup>> = HashMap::new();
    for r in &rollups {
        rolled.entry(r.check.as_str()).or_default().push(r);
    }
    let pings: HashMap<String, Option<DateTime<Utc>>> = store
        .heartbeats()
        .await?
        .into_iter()
        .map(|h| (h.check, h.last_success))
        .collect();
    let mut facts = Vec::with_capacity(checks.len());
    for check in checks {
        let mut f = read_check(store, check, period).await?;
        if f.source == Source::Nothing {
            from_rollups(&mut f, rolled.get(&*check.name));
        }
        if f.kind == "heartbeat" {
            f.heartbeat = Some(Heartbeat {
                last_success: pings.get(&*check.name).copied().flatten(),
                overdue: f.heartbeat.as_ref().is_some_and(|h| h.overdue),
            });
        }
        facts.push(f);
    }
    let mut incidents: Vec<_> = store
        .incidents(IncidentFilter::All, INCIDENT_SCAN)
        .await?
        .into_iter()
        .filter(|i| i.started_at < period.until && i.resolved_at.is_none_or(|r| r >= period.since))
        .collect();
    incidents.sort_by_key(|i| (i.started_at, i.id));
    let mut deployments = store
        .deployments(None, period.since, period.until, DEPLOY_LIMIT)
        .await?;
    deployments.retain(|d| d.at < period.until);
    deployments.reverse();
    Ok(Facts {
        period,
        made_at: now,
        checks: facts,
        incidents,
        deployments,
    })
}

/// One check's samples in the period, summed up as they are read.
async fn read_check(
    store: &Store,
    check: &CheckConfig,
    period: Period,
) -> Result<CheckFacts, StoreError> {
    let mut acc = Acc::default();
    let mut cursor = period.since;
    loop {
        let rows = store.samples(&check.name, cursor, PAGE).await?;
        let full = rows.len() == PAGE as usize;
        let Some(last) = rows.last().map(|r| r.at) else {
            break;
        };
        for row in rows.iter().filter(|r| r.at < period.until) {
            acc.add(row);
        }
        if !full || last >= period.until {
            break;
        }
        cursor = last + Duration::milliseconds(1);
    }
    let kind = check.probe.kind();
    let overdue = kind == "heartbeat" && acc.latest_up == Some(false);
    Ok(CheckFacts {
        name: check.name.to_string(),
        app: check.labels.get("app").cloned(),
        kind,
        thresholds: check.thresholds.clone(),
        source: if acc.total > 0 {
            Source::Samples
        } else {
            Source::Nothing
        },
        total: acc.total,
        ok: acc.ok,
        p95_ms: percentile(&acc.latencies, 95),
        latest: acc.latest,
        metrics: acc.metrics,
        criticals: acc.criticals,
        slowest: acc.slowest,
        heartbeat: overdue.then_some(Heartbeat {
            last_success: None,
            overdue,
        }),
    })
}

/// Counts and p95 from the hourly rollups, for a check whose raw samples of
/// the period are gone: the p95 is the worst hour's.
fn from_rollups(f: &mut CheckFacts, rollups: Option<&Vec<&Rollup>>) {
    let Some(rollups) = rollups.filter(|r| !r.is_empty()) else {
        return;
    };
    f.source = Source::Rollups;
    f.total = rollups.iter().map(|r| r.total).sum();
    f.ok = rollups.iter().map(|r| r.ok).sum();
    f.p95_ms = rollups.iter().map(|r| r.latency.p95).reduce(f64::max);
}

#[derive(Default)]
struct Acc {
    total: u64,
    ok: u64,
    latencies: Vec<f64>,
    latest: Option<(crate::core::Color, String, DateTime<Utc>)>,
    latest_up: Option<bool>,
    metrics: BTreeMap<Metric, Reading>,
    criticals: Vec<String>,
    slowest: Option<String>,
}

impl Acc {
    /// Adds one sample (they come oldest first).
    fn add(&mut self, s: &SampleRow) {
        self.total += 1;
        self.ok += u64::from(s.up);
        self.latencies.push(s.latency_ms);
        self.latest = Some((s.color, s.message.clone(), s.at));
        self.latest_up = Some(s.up);
        for (metric, value) in measured(s.metrics.as_deref()) {
            let worse = |a: f64, b: f64| match metric.direction() {
                Direction::Above => a.max(b),
                Direction::Below => a.min(b),
            };
            let r = self.metrics.entry(metric).or_insert(Reading {
                latest: value,
                peak: value,
            });
            r.latest = value;
            r.peak = worse(r.peak, value);
        }
        if let Some(line) = critical_line(&s.message) {
            self.criticals.retain(|l| l != line);
            self.criticals.insert(0, line.to_string());
            self.criticals.truncate(CRITICALS);
        }
        if let Some(slowest) = slowest(&s.message) {
            self.slowest = Some(slowest.to_string());
        }
    }
}

/// The metrics of a sample's `metrics` JSON (other named values are skipped).
fn measured(json: Option<&str>) -> Vec<(Metric, f64)> {
    let Some(serde_json::Value::Object(map)) = json.and_then(|j| serde_json::from_str(j).ok())
    else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(k, v)| Some((Metric::from_str(k).ok()?, v.as_f64()?)))
        .collect()
}

/// The line a `log` check's red sample quotes: `critical line 3s ago: "LINE"; …`.
pub fn critical_line(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("critical line ")?;
    let start = rest.find(" ago: \"")? + " ago: \"".len();
    let end = rest.rfind("\"; ").filter(|e| *e >= start)?;
    Some(&rest[start..end])
}

/// What a `postgres` sample says of the slowest statements: the text after
/// `; slowest: ` (the last part of its message).
pub fn slowest(message: &str) -> Option<&str> {
    let at = message.find("; slowest: ")?;
    Some(&message[at + "; slowest: ".len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_lines_and_slowest_statements_are_read_from_messages() {
        let m = "critical line 2s ago: \"Out of memory: Killed process 12 \"; x\"; 40 lines/min";
        assert_eq!(
            critical_line(m),
            Some("Out of memory: Killed process 12 \"; x")
        );
        assert_eq!(critical_line("12 lines/min, 0.00% errors"), None);
        let pg =
            "SELECT 1 in 2 ms; 3/100 connections (3%); 8 MB; slowest: 120 ms × 30 \"SELECT a\"";
        assert_eq!(slowest(pg), Some("120 ms × 30 \"SELECT a\""));
        assert_eq!(slowest("SELECT 1 in 2 ms; 8 MB"), None);
    }

    #[test]
    fn metrics_keep_the_latest_and_the_worst() {
        let mut acc = Acc::default();
        let row = |m: &str| SampleRow {
            check: "h".into(),
            at: Utc::now(),
            duration_ms: 1.0,
            up: true,
            color: crate::core::Color::Green,
            status_code: None,
            latency_ms: 1.0,
            message: String::new(),
            metrics: Some(m.into()),
            region: None,
        };
        acc.add(&row(
            r#"{"memory_pct": 50, "cert_days_left": 20, "connections": 3}"#,
        ));
        acc.add(&row(r#"{"memory_pct": 90, "cert_days_left": 10}"#));
        acc.add(&row(r#"{"memory_pct": 60, "cert_days_left": 12}"#));
        let memory = acc.metrics[&Metric::MemoryPct];
        assert_eq!((memory.latest, memory.peak), (60.0, 90.0));
        let cert = acc.metrics[&Metric::CertDaysLeft];
        assert_eq!((cert.latest, cert.peak), (12.0, 10.0));
        assert_eq!(acc.metrics.len(), 2);
        assert_eq!((acc.total, acc.ok), (3, 3));
    }
}
