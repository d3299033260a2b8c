//! The regression rule, pure: a check's raw samples in the hour before a
//! deployment against those of its watch after it. Past the band the hour
//! before sets, it is a regression the check carries as its verdict until
//! its recent samples are back within that band:
//!
//! - p95 latency (of the successful probes): at least 1.5 × and 100 ms above
//!   the hour before; red at high severity from 2 × up, else yellow at medium.
//! - error rate (the mean of the samples' `error_rate_pct`, else the share of
//!   failed probes, in %): at least 1 point above and twice the hour before;
//!   red at high severity above 5 %, else yellow at medium.
//!
//! Windows of fewer than [`MIN_SAMPLES`] samples say nothing.

use chrono::{DateTime, Utc};

use crate::classify::Verdict;
use crate::core::deployment::Deployment;
use crate::core::{Color, Severity};

/// The fewest samples a window needs to be compared.
pub const MIN_SAMPLES: usize = 5;
/// How far back the baseline reaches before a deployment.
pub const BASELINE: chrono::Duration = chrono::Duration::hours(1);

/// One stored sample, as the rule reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub at: DateTime<Utc>,
    pub up: bool,
    pub latency_ms: f64,
    /// The sample's own `error_rate_pct` (log and Prometheus checks).
    pub error_rate_pct: Option<f64>,
}

/// What a window of samples says.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub count: usize,
    /// Of the successful probes; `None` without any.
    pub p95_ms: Option<f64>,
    pub error_rate_pct: f64,
}

/// The samples of `points` from `from` (included) to `to` (excluded), summed up.
pub fn window(points: &[Point], from: DateTime<Utc>, to: DateTime<Utc>) -> Window {
    let inside: Vec<&Point> = points
        .iter()
        .filter(|p| p.at >= from && p.at < to)
        .collect();
    let latencies: Vec<f64> = inside
        .iter()
        .filter(|p| p.up)
        .map(|p| p.latency_ms)
        .filter(|l| l.is_finite())
        .collect();
    // Nearest rank, as the rollups compute it.
    let p95_ms = crate::core::percentile::percentile(&latencies, 95);
    let rates: Vec<f64> = inside.iter().filter_map(|p| p.error_rate_pct).collect();
    let error_rate_pct = if !rates.is_empty() {
        rates.iter().sum::<f64>() / rates.len() as f64
    } else if inside.is_empty() {
        0.0
    } else {
        100.0 * inside.iter().filter(|p| !p.up).count() as f64 / inside.len() as f64
    };
    Window {
        count: inside.len(),
        p95_ms,
        error_rate_pct,
    }
}

/// A regression found: how bad, and in words (`p95 latency`, `820 ms`, `120 ms`).
#[derive(Clone, Debug, PartialEq)]
struct Finding {
    color: Color,
    severity: Severity,
    what: &'static str,
    after: String,
    before: String,
}

fn finding(high: bool, what: &'static str, after: String, before: String) -> Finding {
    let (color, severity) = if high {
        (Color::Red, Severity::High)
    } else {
        (Color::Yellow, Severity::Medium)
    };
    Finding {
        color,
        severity,
        what,
        after,
        before,
    }
}

/// Whether `after` is past the band `before` sets; the worst finding.
fn compare(before: &Window, after: &Window) -> Option<Finding> {
    if before.count < MIN_SAMPLES || after.count < MIN_SAMPLES {
        return None;
    }
    let ms = |v: f64| format!("{v:.0} ms");
    let latency = match (before.p95_ms, after.p95_ms) {
        (Some(b), Some(a)) if a >= 1.5 * b && a - b >= 100.0 => {
            Some(finding(a >= 2.0 * b, "p95 latency", ms(a), ms(b)))
        }
        _ => None,
    };
    let pct = |v: f64| format!("{v:.1} %");
    let (b, a) = (before.error_rate_pct, after.error_rate_pct);
    let errors =
        (a >= b + 1.0 && a >= 2.0 * b).then(|| finding(a > 5.0, "error rate", pct(a), pct(b)));
    [latency, errors]
        .into_iter()
        .flatten()
        .max_by_key(|f| (f.color, f.severity))
}

/// The verdict a check carries when its samples show a regression after
/// deployment `d`: `before` the hour before it, `recent` the samples since
/// (its watch, or later the last watch's worth); `rollback_hint` ends the reason.
pub fn judge_windows(
    before: &Window,
    recent: &Window,
    d: &Deployment,
    rollback_hint: Option<&str>,
) -> Option<Verdict> {
    let found = compare(before, recent)?;
    let by = if d.by.is_empty() {
        String::new()
    } else {
        format!(" (by {})", d.by)
    };
    let mut reason = format!(
        "{} rose to {} after deploy {} of {}{by}, from {} in the hour before",
        found.what, found.after, d.version, d.app, found.before
    );
    if let Some(hint) = rollback_hint {
        reason.push_str(&format!("\nto roll back: {hint}"));
    }
    Some(Verdict {
        color: found.color,
        severity: Some(found.severity),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 6, 0, 0).unwrap() + chrono::Duration::seconds(secs)
    }

    fn deploy() -> Deployment {
        Deployment {
            id: 1,
            app: "web".into(),
            version: "v42".into(),
            description: String::new(),
            by: "ci".into(),
            at: t(0),
        }
    }

    /// One sample a minute over the hour before the deployment at these
    /// latencies (cycled), then one every 30 s for ten minutes after.
    fn points(before: &[f64], after: &[f64], failed_after: usize) -> Vec<Point> {
        let p = |at, up, latency_ms| Point {
            at: t(at),
            up,
            latency_ms,
            error_rate_pct: None,
        };
        let mut out: Vec<Point> = (0..60)
            .map(|i| p(-3600 + i * 60, true, before[i as usize % before.len()]))
            .collect();
        out.extend((0..20).map(|i| {
            p(
                i * 30,
                i as usize >= failed_after,
                after[i as usize % after.len()],
            )
        }));
        out
    }

    /// The verdict a check carries when its samples `points` show a regression
    /// after deployment `d`: the window `after` (from, to) compared with the
    /// hour before the deployment; `rollback_hint` ends the reason.
    fn judge(
        points: &[Point],
        d: &Deployment,
        after: (DateTime<Utc>, DateTime<Utc>),
        rollback_hint: Option<&str>,
    ) -> Option<Verdict> {
        let before = window(points, d.at - BASELINE, d.at);
        judge_windows(&before, &window(points, after.0, after.1), d, rollback_hint)
    }

    const TEN_MIN: (i64, i64) = (0, 600);

    fn verdict(points: &[Point]) -> Option<Verdict> {
        judge(
            points,
            &deploy(),
            (t(TEN_MIN.0), t(TEN_MIN.1)),
            Some("flyctl releases rollback --app web"),
        )
    }

    #[test]
    fn windows_give_the_p95_of_successes_and_the_error_rate() {
        let pts = points(&[100.0], &[(1..=20).map(f64::from).sum::<f64>()], 20);
        let before = window(&pts, t(-3600), t(0));
        assert_eq!(
            (before.count, before.p95_ms, before.error_rate_pct),
            (60, Some(100.0), 0.0)
        );
        let latencies: Vec<f64> = (1..=20).map(|i| f64::from(i) * 10.0).collect();
        let pts = points(&[100.0], &latencies, 2);
        let after = window(&pts, t(0), t(600));
        assert_eq!(after.count, 20);
        assert_eq!(
            after.p95_ms,
            Some(200.0),
            "nearest rank over the 18 successes"
        );
        assert_eq!(after.error_rate_pct, 10.0);
        let empty = window(&pts, t(5000), t(6000));
        assert_eq!(
            (empty.count, empty.p95_ms, empty.error_rate_pct),
            (0, None, 0.0)
        );
    }

    #[test]
    fn a_slower_p95_past_the_band_is_a_regression_naming_the_deploy() {
        let v = verdict(&points(&[100.0, 120.0], &[250.0], 0)).expect("a regression");
        assert_eq!((v.color, v.severity), (Color::Red, Some(Severity::High)));
        assert_eq!(
            v.reason,
            "p95 latency rose to 250 ms after deploy v42 of web (by ci), from 120 ms in the hour before\n\
             to roll back: flyctl releases rollback --app web"
        );
        let v = verdict(&points(&[200.0], &[350.0], 0)).expect("a regression");
        assert_eq!(
            (v.color, v.severity),
            (Color::Yellow, Some(Severity::Medium))
        );
        assert!(
            v.reason.starts_with("p95 latency rose to 350 ms"),
            "{}",
            v.reason
        );
        // Within the band: not 1.5 ×, or not 100 ms more.
        assert_eq!(verdict(&points(&[100.0], &[140.0], 0)), None);
        assert_eq!(verdict(&points(&[10.0], &[90.0], 0)), None, "8 × but 80 ms");
    }

    #[test]
    fn more_failed_probes_than_before_is_a_regression() {
        let v = verdict(&points(&[100.0], &[100.0], 2)).expect("10 % failed");
        assert_eq!((v.color, v.severity), (Color::Red, Some(Severity::High)));
        assert!(v.reason.starts_with("error rate rose to 10.0 % after deploy v42 of web (by ci), from 0.0 % in the hour before"), "{}", v.reason);
        let mut pts = points(&[100.0], &[100.0], 0);
        pts.iter_mut()
            .for_each(|p| p.error_rate_pct = Some(if p.at < t(0) { 0.5 } else { 2.0 }));
        let v = verdict(&pts).expect("2 % from 0.5 %");
        assert_eq!(
            (v.color, v.severity),
            (Color::Yellow, Some(Severity::Medium))
        );
        pts.iter_mut()
            .for_each(|p| p.error_rate_pct = Some(if p.at < t(0) { 1.5 } else { 2.0 }));
        assert_eq!(verdict(&pts), None, "not twice the hour before");
    }

    #[test]
    fn too_few_samples_say_nothing() {
        let mut pts = points(&[100.0], &[500.0], 0);
        pts.retain(|p| p.at >= t(-240));
        assert_eq!(pts.iter().filter(|p| p.at < t(0)).count(), 4);
        assert_eq!(verdict(&pts), None);
    }
}
