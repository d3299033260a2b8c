//! `keeper report cost [--month YYYY-MM]`: what each Fly app keeper watches
//! (each `fly` check's `app`) costs in a month — its machines × size × the
//! `[cost]` price table, and its volumes — and whether it is sized right,
//! from the `prometheus` (`memory_pct`, `cpu_pct`) and `host` checks
//! labelled with the same `app`.
//!
//! What the estimate assumes: the machines and volumes the Machines API
//! lists now, each in its current state for the whole month (the API keeps
//! no history), billed per second. A running machine costs its vCPUs and
//! RAM; a stopped, suspended or never-started one only its root file
//! system, `cost.stopped_rootfs_gb` GB at the volume price (0 by default:
//! the API does not say how much of the rootfs is used, so it is left out
//! rather than guessed). Volumes cost their provisioned size, attached or
//! not. GPUs, IP addresses, bandwidth and snapshots are not counted.
//!
//! Right-sizing judges memory by its peak (RAM must hold the peak) and CPU
//! by its average (bursts are what shared CPUs are for): either over
//! `scale_up_above_pct` suggests the next size up, both (or the one
//! measured) under `scale_down_below_pct` the next size down.

mod fly;
mod price;
mod render;
mod usage;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::Serialize;

pub use price::{CpuKind, Direction, Guest};
pub use render::markdown;
pub use usage::Use;

use crate::config::{CheckConfig, Config, Cost};
use crate::core::Metric;
use crate::probe;
use crate::store::Store;

/// A calendar month in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Month {
    first: NaiveDate,
}

impl Month {
    /// The month `at` falls in.
    pub fn containing(at: DateTime<Utc>) -> Month {
        let first = NaiveDate::from_ymd_opt(at.year(), at.month(), 1).unwrap_or_default();
        Month { first }
    }

    pub fn start(&self) -> DateTime<Utc> {
        Utc.from_utc_datetime(&self.first.and_time(chrono::NaiveTime::MIN))
    }

    /// The first instant of the next month.
    pub fn end(&self) -> DateTime<Utc> {
        let next = self
            .first
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(self.first);
        Utc.from_utc_datetime(&next.and_time(chrono::NaiveTime::MIN))
    }

    pub fn seconds(&self) -> f64 {
        (self.end() - self.start()).num_seconds() as f64
    }
}

impl FromStr for Month {
    type Err = String;
    fn from_str(s: &str) -> Result<Month, String> {
        let bad = || format!("month {s:?}: expected YYYY-MM, e.g. 2026-11");
        let (year, month) = s.split_once('-').ok_or_else(bad)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(bad());
        }
        let (year, month) = (
            year.parse().map_err(|_| bad())?,
            month.parse().map_err(|_| bad())?,
        );
        let first = NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(bad)?;
        Ok(Month { first })
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.first.format("%Y-%m"))
    }
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct CostReport {
    pub month: String,
    pub days: f64,
    pub prices: Cost,
    pub apps: Vec<AppCost>,
    /// The sum of the apps' totals (those that could be read).
    pub total_usd: f64,
}

impl CostReport {
    /// Whether some app's machines could not be read.
    pub fn has_errors(&self) -> bool {
        self.apps.iter().any(|a| a.error.is_some())
    }
}

/// One Fly app.
#[derive(Clone, Debug, Serialize)]
pub struct AppCost {
    pub app: String,
    /// The `fly` check it came from.
    pub check: String,
    pub machines: Vec<MachineLine>,
    pub volumes: Vec<VolumeLine>,
    pub total_usd: f64,
    /// Why the machines or volumes could not be read.
    pub error: Option<String>,
    pub sizing: Sizing,
}

#[derive(Clone, Debug, Serialize)]
pub struct MachineLine {
    pub id: String,
    pub region: String,
    pub state: String,
    pub guest: Option<Guest>,
    /// `shared-cpu-1x 1GB`, or why the size is not known.
    pub size: String,
    /// What it is billed for: `running`, `rootfs only`, `not counted`.
    pub billed: String,
    pub usd: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct VolumeLine {
    pub id: String,
    pub name: String,
    pub region: String,
    pub size_gb: f64,
    pub usd: f64,
}

/// Whether the app is sized right, from what measured it.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Sizing {
    /// No `prometheus` (memory_pct / cpu_pct) or `host` check for the app.
    NoUsageData,
    /// Such checks, but nothing measured in the month.
    NoSamples { sources: Vec<String> },
    /// A source could not be read.
    Unavailable { reason: String },
    Measured {
        sources: Vec<String>,
        memory: Option<Use>,
        cpu: Option<Use>,
        verdict: Verdict,
        suggestions: Vec<Suggestion>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Down,
    Up,
    SizedRight,
}

/// One size the app runs at and what to move it to.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suggestion {
    pub from: Guest,
    /// `None`: already the smallest (or largest) size.
    pub to: Option<Guest>,
    /// The change per machine over the month, USD.
    pub change_usd: Option<f64>,
}

/// The verdict from memory (by its peak) and CPU (by its average), and
/// which of the two should change.
pub fn judge(memory: Option<Use>, cpu: Option<Use>, bands: &Cost) -> (Verdict, bool, bool) {
    let side = |value: Option<f64>| {
        value.map(|v| {
            if v > bands.scale_up_above_pct {
                Some(Direction::Up)
            } else if v < bands.scale_down_below_pct {
                Some(Direction::Down)
            } else {
                None
            }
        })
    };
    let m = side(memory.map(|u| u.peak_pct));
    let c = side(cpu.map(|u| u.average_pct));
    let up = |s: Option<Option<Direction>>| s == Some(Some(Direction::Up));
    let down_or_none =
        |s: Option<Option<Direction>>| s.is_none() || s == Some(Some(Direction::Down));
    if up(m) || up(c) {
        (Verdict::Up, up(m), up(c))
    } else if (m.is_some() || c.is_some()) && down_or_none(m) && down_or_none(c) {
        (Verdict::Down, m.is_some(), c.is_some())
    } else {
        (Verdict::SizedRight, false, false)
    }
}

/// The report for `month` (as of `now`): every app of a `fly` check (the
/// first check of each app), read one after the other through `client`, by
/// name; `store` for `host` checks' samples.
pub async fn report(
    config: &Config,
    month: Month,
    now: DateTime<Utc>,
    client: &reqwest::Client,
    store: Option<&Store>,
) -> CostReport {
    let mut apps: Vec<AppCost> = Vec::new();
    for check in &config.checks {
        let probe::Spec::Fly(spec) = &check.probe else {
            continue;
        };
        if apps.iter().any(|a| a.app == spec.app.trim()) {
            continue;
        }
        apps.push(app_cost(config, check, spec, month, now, client, store).await);
    }
    apps.sort_by(|a, b| a.app.cmp(&b.app));
    let total_usd = price::cents(apps.iter().map(|a| a.total_usd).sum());
    CostReport {
        month: month.to_string(),
        days: month.seconds() / 86_400.0,
        prices: config.cost.clone(),
        apps,
        total_usd,
    }
}

async fn app_cost(
    config: &Config,
    check: &CheckConfig,
    spec: &probe::fly::Spec,
    month: Month,
    now: DateTime<Utc>,
    client: &reqwest::Client,
    store: Option<&Store>,
) -> AppCost {
    let app = spec.app.trim().to_string();
    let mut cost = AppCost {
        app: app.clone(),
        check: check.name.to_string(),
        machines: Vec::new(),
        volumes: Vec::new(),
        total_usd: 0.0,
        error: None,
        sizing: Sizing::NoUsageData,
    };
    let (machines, volumes) = match fly::read(client, spec).await {
        Ok(read) => read,
        Err(e) => {
            cost.error = Some(e);
            return cost;
        }
    };
    let prices = &config.cost;
    let month_s = month.seconds();
    cost.machines = machines
        .iter()
        .map(|m| machine_line(m, prices, month_s))
        .collect();
    cost.volumes = volumes
        .into_iter()
        .map(|v| VolumeLine {
            usd: price::cents(price::over(v.size_gb * prices.volume_gb_month, month_s)),
            id: v.id,
            name: v.name,
            region: v.region,
            size_gb: v.size_gb,
        })
        .collect();
    let lines = cost.machines.iter().map(|m| m.usd);
    cost.total_usd = price::cents(lines.chain(cost.volumes.iter().map(|v| v.usd)).sum());
    let names = [
        Some(app.as_str()),
        check.labels.get("app").map(String::as_str),
    ];
    let sources: Vec<&CheckConfig> = config
        .checks
        .iter()
        .filter(|c| {
            let labelled = c.labels.get("app").map(String::as_str);
            labelled.is_some() && names.contains(&labelled) && measures_usage(c)
        })
        .map(AsRef::as_ref)
        .collect();
    let sizes: Vec<Guest> = machines
        .iter()
        .filter(|m| m.running())
        .filter_map(|m| m.guest.clone().ok())
        .collect();
    let window = (month.start(), month.end().min(now));
    cost.sizing = sizing(&sources, &sizes, window, prices, month_s, client, store).await;
    cost
}

fn machine_line(m: &fly::Machine, prices: &Cost, month_s: f64) -> MachineLine {
    let (size, guest) = match &m.guest {
        Ok(g) => (g.to_string(), Some(*g)),
        Err(why) => (why.clone(), None),
    };
    let (billed, per_30_days) = match (m.running(), guest) {
        (true, Some(g)) => ("running".to_string(), g.price_month(prices)),
        (true, None) => ("not counted".to_string(), 0.0),
        (false, _) if prices.stopped_rootfs_gb > 0.0 => (
            format!("rootfs only ({} GB)", prices.stopped_rootfs_gb),
            prices.stopped_rootfs_gb * prices.volume_gb_month,
        ),
        (false, _) => ("rootfs not counted".to_string(), 0.0),
    };
    MachineLine {
        id: m.id.clone(),
        region: m.region.clone(),
        state: m.state.clone(),
        guest,
        size,
        billed,
        usd: price::cents(price::over(per_30_days, month_s)),
    }
}

/// A `prometheus` check of memory or CPU percent, or a `host` check.
fn measures_usage(check: &CheckConfig) -> bool {
    match &check.probe {
        probe::Spec::Prometheus(p) => matches!(p.metric, Metric::MemoryPct | Metric::CpuPct),
        probe::Spec::Host(_) => true,
        _ => false,
    }
}

async fn sizing(
    sources: &[&CheckConfig],
    sizes: &[Guest],
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    prices: &Cost,
    month_s: f64,
    client: &reqwest::Client,
    store: Option<&Store>,
) -> Sizing {
    if sources.is_empty() {
        return Sizing::NoUsageData;
    }
    let (mut memory, mut cpu) = (usage::Tally::default(), usage::Tally::default());
    let mut named = Vec::new();
    for check in sources {
        let read = match &check.probe {
            probe::Spec::Prometheus(p) if from < to => {
                let tally = usage::prometheus(client, p, from, to).await;
                named.push(format!("prometheus check {:?}", &*check.name));
                tally.map(|t| match p.metric {
                    Metric::MemoryPct => memory.merge(t),
                    _ => cpu.merge(t),
                })
            }
            probe::Spec::Host(_) if from < to => {
                named.push(format!("host check {:?}", &*check.name));
                match store {
                    Some(store) => usage::host(store, &check.name, from, to)
                        .await
                        .map(|(m, c)| {
                            memory.merge(m);
                            cpu.merge(c);
                        }),
                    None => Err("no database to read host samples from".into()),
                }
            }
            _ => Ok(()),
        };
        if let Err(reason) = read {
            return Sizing::Unavailable { reason };
        }
    }
    let (memory, cpu) = (memory.result(), cpu.result());
    if memory.is_none() && cpu.is_none() {
        let sources = sources.iter().map(|c| c.name.to_string()).collect();
        return Sizing::NoSamples { sources };
    }
    let (verdict, m, c) = judge(memory, cpu, prices);
    let mut suggestions: Vec<Suggestion> = Vec::new();
    let direction = match verdict {
        Verdict::Down => Some(Direction::Down),
        Verdict::Up => Some(Direction::Up),
        Verdict::SizedRight => None,
    };
    for from in sizes {
        let Some(direction) = direction else { break };
        if suggestions.iter().any(|s| s.from == *from) {
            continue;
        }
        let to = from.next(direction, m, c);
        let change_usd = to.map(|to| {
            let delta = to.price_month(prices) - from.price_month(prices);
            price::cents(price::over(delta, month_s))
        });
        suggestions.push(Suggestion {
            from: *from,
            to,
            change_usd,
        });
    }
    Sizing::Measured {
        sources: named,
        memory,
        cpu,
        verdict,
        suggestions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(average_pct: f64, peak_pct: f64) -> Option<Use> {
        Some(Use {
            average_pct,
            peak_pct,
        })
    }

    #[test]
    fn months_parse_and_know_their_length() {
        let m: Month = "2026-02".parse().unwrap();
        assert_eq!(m.to_string(), "2026-02");
        assert_eq!(m.seconds(), 28.0 * 86_400.0);
        assert_eq!(m.start().to_rfc3339(), "2026-02-01T00:00:00+00:00");
        assert_eq!(m.end().to_rfc3339(), "2026-03-01T00:00:00+00:00");
        let dec: Month = "2026-12".parse().unwrap();
        assert_eq!(dec.end().to_rfc3339(), "2027-01-01T00:00:00+00:00");
        for bad in ["2026-13", "2026-1", "26-01", "2026/01", "", "2026-00"] {
            assert!(bad.parse::<Month>().is_err(), "{bad}");
        }
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 5, 0, 0).unwrap();
        assert_eq!(Month::containing(now).to_string(), "2026-11");
    }

    #[test]
    fn memory_goes_by_its_peak_and_cpu_by_its_average() {
        let bands = Cost::default();
        assert_eq!(
            judge(used(15.0, 25.0), None, &bands),
            (Verdict::Down, true, false)
        );
        assert_eq!(
            judge(used(15.0, 50.0), None, &bands),
            (Verdict::SizedRight, false, false)
        );
        assert_eq!(
            judge(used(60.0, 91.0), None, &bands),
            (Verdict::Up, true, false)
        );
        assert_eq!(
            judge(None, used(85.0, 100.0), &bands),
            (Verdict::Up, false, true)
        );
        assert_eq!(
            judge(None, used(10.0, 100.0), &bands),
            (Verdict::Down, false, true)
        );
        // Both must be low to go down; either high goes up.
        assert_eq!(
            judge(used(10.0, 20.0), used(50.0, 90.0), &bands).0,
            Verdict::SizedRight
        );
        assert_eq!(
            judge(used(10.0, 20.0), used(90.0, 99.0), &bands),
            (Verdict::Up, false, true)
        );
        assert_eq!(
            judge(used(10.0, 20.0), used(5.0, 90.0), &bands),
            (Verdict::Down, true, true)
        );
        assert_eq!(judge(None, None, &bands).0, Verdict::SizedRight);
    }
}
