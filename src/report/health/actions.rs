//! The "Actions" list: every yellow or red indicator of the report, each a
//! line naming the check, the value and the band it crossed (the check's own
//! layered thresholds: built-in, `[defaults]`, its own). Pure.

use crate::classify::Level;
use crate::core::{Color, Direction, Metric};

use super::{CheckFacts, Facts};

/// One thing a person should look at.
#[derive(Clone, Debug, PartialEq)]
pub struct Action {
    pub color: Color,
    pub check: String,
    /// What crossed which band: `uptime 80.00 % is below the red bound 95 %`.
    pub what: String,
}

/// Every action the facts call for: red ones first, then yellow, each in
/// the config's order of checks.
pub fn actions(f: &Facts) -> Vec<Action> {
    let mut out = Vec::new();
    for c in &f.checks {
        check_actions(c, &mut out);
    }
    for i in f.incidents.iter().filter(|i| i.resolved_at.is_none()) {
        out.push(Action {
            color: Color::Red,
            check: i.check.clone(),
            what: format!(
                "incident {} ({}) is still open: {}",
                i.id, i.severity, i.message
            ),
        });
    }
    out.sort_by_key(|a| std::cmp::Reverse(a.color));
    out
}

fn check_actions(c: &CheckFacts, out: &mut Vec<Action>) {
    let mut push = |color: Color, what: String| {
        out.push(Action {
            color,
            check: c.name.clone(),
            what,
        })
    };
    if let Some((color, message, _)) = &c.latest
        && *color != Color::Green
    {
        push(*color, format!("status is {color} now: {message}"));
    }
    if let Some(uptime) = c.uptime()
        && let Some(level) = band(c, Metric::UptimePct, uptime)
    {
        push(
            level.color,
            crossed("uptime", Metric::UptimePct, uptime, level),
        );
    }
    if let Some(p95) = c.p95_ms
        && let Some(level) = band(c, Metric::LatencyMs, p95)
    {
        push(
            level.color,
            crossed("p95 latency", Metric::LatencyMs, p95, level),
        );
    }
    for (&metric, reading) in &c.metrics {
        // A certificate's days only go down: the latest is what matters.
        let (which, value) = match metric {
            Metric::CertDaysLeft => ("", reading.latest),
            _ => ("peak ", reading.peak),
        };
        if let Some(level) = band(c, metric, value) {
            let name = format!("{which}{}", metric.as_str());
            push(level.color, crossed(&name, metric, value, level));
        }
    }
    if let Some(h) = &c.heartbeat
        && h.overdue
    {
        let last = h.last_success.map_or_else(
            || "never succeeded".to_string(),
            |at| format!("last success {}", at.format("%Y-%m-%d %H:%M:%S")),
        );
        push(Color::Red, format!("overdue ({last})"));
    }
}

/// The yellow or red level `value` of `metric` falls in, by the check's thresholds.
fn band(c: &CheckFacts, metric: Metric, value: f64) -> Option<&Level> {
    c.thresholds
        .get(metric)?
        .evaluate(value)
        .filter(|l| l.color != Color::Green)
}

/// `uptime 80.00 % is below the red bound 95 %`.
fn crossed(name: &str, metric: Metric, value: f64, level: &Level) -> String {
    let side = match (level.direction, level.inclusive) {
        (Direction::Above, true) => "at or above",
        (Direction::Above, false) => "above",
        (Direction::Below, true) => "at or below",
        (Direction::Below, false) => "below",
    };
    format!(
        "{name} {} is {side} the {} bound {}",
        value_text(metric, value),
        level.color,
        value_text(metric, level.bound)
    )
}

/// A value with its unit: `99.50 %`, `120 ms`, `12 days`.
pub fn value_text(metric: Metric, v: f64) -> String {
    match metric {
        Metric::UptimePct => format!("{v:.2} %"),
        Metric::ErrorRatePct => format!("{v:.2} %"),
        Metric::MemoryPct | Metric::CpuPct | Metric::DiskPct | Metric::ConnectionsPct => {
            format!("{v:.1} %")
        }
        Metric::LatencyMs | Metric::QueryMs => format!("{v:.0} ms"),
        Metric::CertDaysLeft => format!("{v:.1} days"),
        Metric::AuthFailuresPerMin => format!("{v:.1}/min"),
        Metric::Value => format!("{v}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::health::fixture::facts;

    #[test]
    fn every_yellow_or_red_indicator_is_an_action_naming_value_and_band() {
        let got = actions(&facts());
        let lines: Vec<String> = got
            .iter()
            .map(|a| format!("{} {}: {}", a.color, a.check, a.what))
            .collect();
        assert_eq!(
            lines,
            [
                "red api: status is red now: expected status 200, got 503",
                "red api: uptime 90.00 % is below the red bound 95.00 %",
                "red api-host: peak memory_pct 91.0 % is above the red bound 85.0 %",
                "red nightly-backup: overdue (last success 2026-11-28 02:00:00)",
                "red api: incident 4 (critical) is still open: expected status 200, got 503",
                "yellow web: p95 latency 620 ms is at or above the yellow bound 500 ms",
                "yellow api-host: peak cpu_pct 65.0 % is at or above the yellow bound 60.0 %",
                "yellow web-cert: cert_days_left 12.0 days is below the yellow bound 30.0 days",
                "yellow app-log: peak error_rate_pct 0.50 % is at or above the yellow bound 0.10 %",
            ]
        );
    }

    #[test]
    fn a_check_s_own_thresholds_decide_its_bands() {
        let mut f = facts();
        let web = f.checks.iter_mut().find(|c| c.name == "web").unwrap();
        let own = crate::classify::Thresholds(
            [(
                Metric::LatencyMs,
                crate::classify::Levels::short(Metric::LatencyMs, 700.0, 900.0),
            )]
            .into(),
        );
        web.thresholds = std::sync::Arc::new(web.thresholds.layered(&own));
        assert!(actions(&f).iter().all(|a| a.check != "web"));
    }

    #[test]
    fn all_green_calls_for_nothing() {
        let mut f = facts();
        f.checks.retain(|c| c.name == "db");
        f.incidents.clear();
        assert_eq!(actions(&f), []);
    }
}
