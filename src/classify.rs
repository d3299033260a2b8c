//! Pure classification: a [`Sample`] plus thresholds gives a [`Verdict`]
//! (color, severity, reason). No I/O, no clock: DESIGN.md §3 lives here.

use std::collections::BTreeMap;

use crate::core::{Color, Direction, Metric, Outcome, Sample, Severity};

/// The severities a short-form `{ yellow, red }` threshold gives (DESIGN.md §3).
fn default_severities(metric: Metric) -> (Severity, Severity) {
    match metric {
        Metric::ErrorRatePct => (Severity::Low, Severity::Medium),
        Metric::CertDaysLeft => (Severity::Low, Severity::High),
        _ => (Severity::Medium, Severity::High),
    }
}

/// The built-in threshold levels of DESIGN.md §3.
pub fn default_levels(metric: Metric) -> Levels {
    let (yellow, red) = match metric {
        Metric::UptimePct => (99.0, 95.0),
        Metric::LatencyMs => (500.0, 1000.0),
        Metric::ErrorRatePct => (0.1, 1.0),
        Metric::MemoryPct => (70.0, 85.0),
        Metric::CpuPct => (60.0, 80.0),
        Metric::QueryMs => (100.0, 500.0),
        Metric::DiskPct => (80.0, 90.0),
        Metric::CertDaysLeft => (30.0, 7.0),
        Metric::ConnectionsPct => (80.0, 95.0),
        // A few mistyped passwords a minute is normal; one a second is an attack.
        Metric::AuthFailuresPerMin => (10.0, 60.0),
        Metric::Value => return Levels(Vec::new()),
    };
    let mut levels = Levels::short(metric, yellow, red);
    match metric {
        Metric::ErrorRatePct => levels.0.push(Level {
            direction: Direction::Above,
            bound: 5.0,
            inclusive: false,
            color: Color::Red,
            severity: Severity::High,
        }),
        // An expired certificate (no days left) is critical.
        Metric::CertDaysLeft => levels.0.push(Level {
            direction: Direction::Below,
            bound: 0.0,
            inclusive: true,
            color: Color::Red,
            severity: Severity::Critical,
        }),
        _ => {}
    }
    levels
}

/// One threshold level: when the value is past `bound`, the sample is `color` at `severity`.
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    pub direction: Direction,
    pub bound: f64,
    /// Whether a value equal to the bound already matches.
    pub inclusive: bool,
    pub color: Color,
    pub severity: Severity,
}

impl Level {
    fn matches(&self, value: f64) -> bool {
        match (self.direction, self.inclusive) {
            (Direction::Above, true) => value >= self.bound,
            (Direction::Above, false) => value > self.bound,
            (Direction::Below, true) => value <= self.bound,
            (Direction::Below, false) => value < self.bound,
        }
    }
}

/// The levels of one metric; of those that match, the worst wins.
#[derive(Clone, Debug, PartialEq)]
pub struct Levels(pub Vec<Level>);

impl Levels {
    /// The short form `{ yellow = Y, red = R }`: yellow from Y on, red past R,
    /// with the metric's default severities.
    pub fn short(metric: Metric, yellow: f64, red: f64) -> Levels {
        let direction = metric.direction();
        let (yellow_severity, red_severity) = default_severities(metric);
        Levels(vec![
            Level {
                direction,
                bound: yellow,
                inclusive: direction == Direction::Above,
                color: Color::Yellow,
                severity: yellow_severity,
            },
            Level {
                direction,
                bound: red,
                inclusive: false,
                color: Color::Red,
                severity: red_severity,
            },
        ])
    }

    /// The worst matching level for `value`, if any.
    pub fn evaluate(&self, value: f64) -> Option<&Level> {
        self.0
            .iter()
            .filter(|level| level.matches(value))
            .max_by_key(|level| (level.color, level.severity))
    }
}

/// Thresholds per metric. Lookup order: the check's own, then `[defaults.thresholds]`,
/// then the built-in table; [`Thresholds::layered`] resolves that once at load.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Thresholds(pub BTreeMap<Metric, Levels>);

impl Thresholds {
    /// The built-in table of DESIGN.md §3.
    pub fn builtin() -> Thresholds {
        Thresholds(
            Metric::ALL
                .into_iter()
                .map(|m| (m, default_levels(m)))
                .collect(),
        )
    }

    /// `self` with every metric of `over` replacing its entry.
    pub fn layered(&self, over: &Thresholds) -> Thresholds {
        let mut merged = self.clone();
        for (metric, levels) in &over.0 {
            merged.0.insert(*metric, levels.clone());
        }
        merged
    }

    pub fn get(&self, metric: Metric) -> Option<&Levels> {
        self.0.get(&metric)
    }
}

/// What a sample means: its color, how urgent, and why, in words.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub color: Color,
    /// `None` when green.
    pub severity: Option<Severity>,
    pub reason: String,
}

impl Verdict {
    /// Red with `severity`, or green with `None`: a verdict for step tests.
    #[cfg(test)]
    pub(crate) fn of(severity: Option<Severity>, reason: impl Into<String>) -> Verdict {
        Verdict {
            color: if severity.is_some() {
                Color::Red
            } else {
                Color::Green
            },
            severity,
            reason: reason.into(),
        }
    }

    pub fn green(reason: impl Into<String>) -> Verdict {
        Verdict {
            color: Color::Green,
            severity: None,
            reason: reason.into(),
        }
    }
}

/// Classifies one sample: a failed probe is red at `down_severity`; otherwise the
/// worst metric decides.
pub fn classify(sample: &Sample, thresholds: &Thresholds, down_severity: Severity) -> Verdict {
    match &sample.outcome {
        Outcome::Down(reason) => {
            return Verdict {
                color: Color::Red,
                severity: Some(down_severity),
                reason: reason.clone(),
            };
        }
        // The probe's own judgement of a partial failure (a machine stopped,
        // a plugin's WARNING): yellow, and the metrics may still make it worse.
        Outcome::Warn(reason) => {
            let by_metrics = classify_metrics(sample, thresholds);
            let warned = Verdict {
                color: Color::Yellow,
                severity: Some(Severity::Medium),
                reason: reason.clone(),
            };
            return match by_metrics {
                Some(v) if (v.color, v.severity) > (warned.color, warned.severity) => v,
                _ => warned,
            };
        }
        Outcome::Up => {}
    }
    classify_metrics(sample, thresholds).unwrap_or_else(|| Verdict::green(sample.message.clone()))
}

/// The worst level any of the sample's metrics reaches, if any.
fn classify_metrics(sample: &Sample, thresholds: &Thresholds) -> Option<Verdict> {
    let worst = sample
        .metrics
        .iter()
        .filter_map(|(metric, value)| {
            let level = thresholds.get(*metric)?.evaluate(*value)?;
            Some((level, *metric, *value))
        })
        .max_by_key(|(level, _, _)| (level.color, level.severity));
    worst.map(|(level, metric, value)| Verdict {
        color: level.color,
        severity: Some(level.severity),
        reason: format!(
            "{} ({metric} {} {})",
            sample.message,
            format_value(value),
            match level.direction {
                Direction::Above => format!("past {}", format_value(level.bound)),
                Direction::Below => format!("below {}", format_value(level.bound)),
            }
        ),
    })
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Sample;

    fn up_with(metric: Metric, value: f64) -> Sample {
        let mut s = Sample::up("ok");
        s.metrics.push((metric, value));
        s
    }

    fn verdict(metric: Metric, value: f64) -> (Color, Option<Severity>) {
        let v = classify(
            &up_with(metric, value),
            &Thresholds::builtin(),
            Severity::Critical,
        );
        (v.color, v.severity)
    }

    #[test]
    fn default_table_matches_design() {
        use Color::*;
        use Severity::*;
        let cases = [
            (Metric::LatencyMs, 499.0, (Green, None)),
            (Metric::LatencyMs, 500.0, (Yellow, Some(Medium))),
            (Metric::LatencyMs, 1000.0, (Yellow, Some(Medium))),
            (Metric::LatencyMs, 1000.5, (Red, Some(High))),
            (Metric::ErrorRatePct, 0.05, (Green, None)),
            (Metric::ErrorRatePct, 0.5, (Yellow, Some(Low))),
            (Metric::ErrorRatePct, 3.0, (Red, Some(Medium))),
            (Metric::ErrorRatePct, 8.0, (Red, Some(High))),
            (Metric::UptimePct, 99.5, (Green, None)),
            (Metric::UptimePct, 97.0, (Yellow, Some(Medium))),
            (Metric::UptimePct, 90.0, (Red, Some(High))),
            (Metric::CertDaysLeft, 45.0, (Green, None)),
            (Metric::CertDaysLeft, 20.0, (Yellow, Some(Low))),
            (Metric::CertDaysLeft, 5.0, (Red, Some(High))),
            (Metric::CertDaysLeft, -1.0, (Red, Some(Critical))),
            (Metric::MemoryPct, 86.0, (Red, Some(High))),
            (Metric::CpuPct, 65.0, (Yellow, Some(Medium))),
            (Metric::QueryMs, 50.0, (Green, None)),
            (Metric::DiskPct, 95.0, (Red, Some(High))),
            (Metric::AuthFailuresPerMin, 9.9, (Green, None)),
            (Metric::AuthFailuresPerMin, 10.0, (Yellow, Some(Medium))),
            (Metric::AuthFailuresPerMin, 60.0, (Yellow, Some(Medium))),
            (Metric::AuthFailuresPerMin, 61.0, (Red, Some(High))),
        ];
        for (metric, value, want) in cases {
            assert_eq!(verdict(metric, value), want, "{metric} = {value}");
        }
    }

    #[test]
    fn down_is_red_at_down_severity() {
        let v = classify(
            &Sample::down("connection refused"),
            &Thresholds::builtin(),
            Severity::High,
        );
        assert_eq!(v.color, Color::Red);
        assert_eq!(v.severity, Some(Severity::High));
        assert_eq!(v.reason, "connection refused");
    }

    #[test]
    fn worst_metric_wins_and_reason_names_it() {
        let mut s = up_with(Metric::LatencyMs, 700.0);
        s.metrics.push((Metric::CertDaysLeft, 3.0));
        let v = classify(&s, &Thresholds::builtin(), Severity::Critical);
        assert_eq!((v.color, v.severity), (Color::Red, Some(Severity::High)));
        assert!(
            v.reason.contains("cert_days_left 3 below 7"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn layered_thresholds_replace_per_metric() {
        let over = Thresholds(
            [(
                Metric::LatencyMs,
                Levels::short(Metric::LatencyMs, 300.0, 800.0),
            )]
            .into(),
        );
        let t = Thresholds::builtin().layered(&over);
        let v = classify(&up_with(Metric::LatencyMs, 400.0), &t, Severity::Critical);
        assert_eq!(v.color, Color::Yellow);
        // other metrics keep the built-in table
        let v = classify(&up_with(Metric::CertDaysLeft, 5.0), &t, Severity::Critical);
        assert_eq!(v.color, Color::Red);
    }
}
