//! Per-check state after hysteresis: a check turns non-green only after
//! `failures_before_alert` non-green samples in a row, and green again only
//! after `successes_before_resolve` green ones, so a blip neither pages nor flaps.
//! Pure: the engine owns one [`CheckState`] per check and feeds it verdicts.

pub mod quorum;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::classify::Verdict;
use crate::core::{Color, Severity};

#[derive(Clone, Debug, PartialEq)]
pub struct CheckState {
    /// The color people see (after hysteresis).
    pub color: Color,
    /// `None` while green.
    pub severity: Option<Severity>,
    /// The latest verdict's reason.
    pub reason: String,
    /// When `color` last changed.
    pub since: Option<DateTime<Utc>>,
    /// When the latest non-green sample was taken.
    pub last_failure_at: Option<DateTime<Utc>>,
    fail_streak: u32,
    ok_streak: u32,
}

/// How many failing and green samples in a row a check has seen: what its
/// next owner carries on from, so a check changing hands keeps its
/// hysteresis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Streaks {
    pub failing: u32,
    pub green: u32,
}

impl Streaks {
    pub fn is_empty(&self) -> bool {
        *self == Streaks::default()
    }
}

/// What an observation did to the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing people need to hear about.
    None,
    /// Green → non-green after enough failures.
    Unhealthy,
    /// Still non-green; color or severity may have moved.
    StillUnhealthy,
    /// Non-green → green after enough successes.
    Recovered,
}

impl Default for CheckState {
    fn default() -> Self {
        CheckState {
            color: Color::Green,
            severity: None,
            reason: String::new(),
            since: None,
            last_failure_at: None,
            fail_streak: 0,
            ok_streak: 0,
        }
    }
}

impl CheckState {
    /// The state of a check that had an open incident when keeper stopped: it
    /// stays non-green until enough green samples arrive.
    pub fn restored(
        color: Color,
        severity: Severity,
        reason: String,
        since: DateTime<Utc>,
    ) -> Self {
        CheckState {
            color,
            severity: Some(severity),
            reason,
            since: Some(since),
            last_failure_at: None,
            fail_streak: 0,
            ok_streak: 0,
        }
    }

    pub fn streaks(&self) -> Streaks {
        Streaks {
            failing: self.fail_streak,
            green: self.ok_streak,
        }
    }

    /// Carries on the streaks another instance counted (a check taken over).
    pub fn carry_on(&mut self, streaks: Streaks) {
        self.fail_streak = streaks.failing;
        self.ok_streak = streaks.green;
    }

    pub fn is_healthy(&self) -> bool {
        self.color == Color::Green
    }

    /// Non-green, or green but its latest sample failed: what a dependent
    /// looks at, so that a dependency's first failure already holds its
    /// dependents' pages back.
    pub fn is_failing(&self) -> bool {
        !self.is_healthy() || self.fail_streak > 0
    }

    /// Takes one verdict into account.
    pub fn observe(
        &mut self,
        verdict: &Verdict,
        at: DateTime<Utc>,
        failures_before_alert: u32,
        successes_before_resolve: u32,
    ) -> Change {
        self.reason.clone_from(&verdict.reason);
        if verdict.color == Color::Green {
            self.fail_streak = 0;
            self.ok_streak = self.ok_streak.saturating_add(1);
            if !self.is_healthy() && self.ok_streak >= successes_before_resolve {
                self.color = Color::Green;
                self.severity = None;
                self.since = Some(at);
                return Change::Recovered;
            }
            if self.since.is_none() {
                self.since = Some(at);
            }
            return if self.is_healthy() {
                Change::None
            } else {
                Change::StillUnhealthy
            };
        }
        self.ok_streak = 0;
        self.fail_streak = self.fail_streak.saturating_add(1);
        self.last_failure_at = Some(at);
        if self.is_healthy() {
            if self.fail_streak < failures_before_alert {
                return Change::None;
            }
            self.color = verdict.color;
            self.severity = verdict.severity;
            self.since = Some(at);
            return Change::Unhealthy;
        }
        if self.color != verdict.color {
            self.since = Some(at);
        }
        self.color = verdict.color;
        self.severity = verdict.severity;
        Change::StillUnhealthy
    }
}

/// What the API and status page show of a check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckStatus {
    pub name: String,
    pub kind: &'static str,
    pub target: String,
    pub description: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub color: Color,
    pub severity: Option<Severity>,
    pub message: String,
    pub since: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub latency_ms: Option<f64>,
    pub incident: Option<i64>,
    /// The hysteresis counts behind `color`: published to the other
    /// instances, not shown.
    #[serde(skip)]
    pub streaks: Streaks,
}

impl CheckStatus {
    /// What changes of the check as it runs (not its config).
    pub fn seen(&self) -> Seen {
        Seen {
            color: self.color,
            severity: self.severity,
            message: self.message.clone(),
            since: self.since,
            last_run_at: self.last_run_at,
            latency_ms: self.latency_ms,
            incident: self.incident,
            streaks: self.streaks,
        }
    }

    /// Shows what another instance saw of the check.
    pub fn show(&mut self, seen: Seen) {
        self.color = seen.color;
        self.severity = seen.severity;
        self.message = seen.message;
        self.since = seen.since;
        self.last_run_at = seen.last_run_at;
        self.latency_ms = seen.latency_ms;
        self.incident = seen.incident;
        self.streaks = seen.streaks;
    }
}

/// The running part of a [`CheckStatus`]: what the instance owning a check
/// shows the others of it (through its lease, see `crate::cluster`), so every
/// instance shows the cluster's view, and what the next owner starts from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    pub color: Color,
    pub severity: Option<Severity>,
    pub message: String,
    pub since: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub latency_ms: Option<f64>,
    pub incident: Option<i64>,
    /// Absent from views of older versions: no count carried on.
    #[serde(default, skip_serializing_if = "Streaks::is_empty")]
    pub streaks: Streaks,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red() -> Verdict {
        Verdict {
            color: Color::Red,
            severity: Some(Severity::Critical),
            reason: "503".into(),
        }
    }

    fn green() -> Verdict {
        Verdict::green("200 OK")
    }

    fn run(state: &mut CheckState, verdicts: &[Verdict]) -> Vec<Change> {
        verdicts
            .iter()
            .map(|v| state.observe(v, Utc::now(), 2, 2))
            .collect()
    }

    #[test]
    fn one_blip_changes_nothing() {
        let mut s = CheckState::default();
        let changes = run(&mut s, &[green(), red(), green(), red(), green()]);
        assert!(changes.iter().all(|c| *c == Change::None), "{changes:?}");
        assert!(s.is_healthy());
    }

    #[test]
    fn turns_red_after_failures_and_green_after_successes() {
        let mut s = CheckState::default();
        let changes = run(
            &mut s,
            &[red(), red(), red(), green(), red(), green(), green()],
        );
        use Change::*;
        assert_eq!(
            changes,
            vec![
                None,
                Unhealthy,
                StillUnhealthy,
                StillUnhealthy,
                StillUnhealthy,
                StillUnhealthy,
                Recovered
            ]
        );
        assert!(s.is_healthy());
        assert_eq!(s.severity, Option::None);
    }

    #[test]
    fn restored_state_recovers_without_reopening() {
        let mut s = CheckState::restored(Color::Red, Severity::Critical, "503".into(), Utc::now());
        assert_eq!(s.observe(&red(), Utc::now(), 2, 2), Change::StillUnhealthy);
        assert_eq!(
            s.observe(&green(), Utc::now(), 2, 2),
            Change::StillUnhealthy
        );
        assert_eq!(s.observe(&green(), Utc::now(), 2, 2), Change::Recovered);
    }
}
