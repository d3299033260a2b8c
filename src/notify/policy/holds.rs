//! Whether a check's notifications are held back right now ([`hold`]): a
//! dependency failing, a silence, a maintenance window ([`Maintenance`]).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Matchers;
use crate::core::value::Crontab;
use crate::incident::Silence;
use crate::state::CheckState;

/// `[[maintenance]]`: a recurring window (crontab start + duration) during
/// which matching checks' notifications are held back.
#[derive(Clone, Debug, PartialEq)]
pub struct Maintenance {
    pub schedule: Crontab,
    pub duration: Duration,
    /// Label matchers a check must all satisfy (with `checks` empty: every check when empty too).
    pub matches: Matchers,
    /// Checks it covers by name; empty: by labels only.
    pub checks: Vec<String>,
    pub comment: String,
}

impl Maintenance {
    /// When the window around `now` ends, if `now` is inside one.
    pub fn active_until(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let started = self.schedule.last_at_or_before(now)?;
        let ends = started + chrono::Duration::from_std(self.duration).ok()?;
        (now < ends).then_some(ends)
    }

    /// Whether it covers the check `name` with `labels`.
    pub fn covers(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        (self.checks.is_empty() || self.checks.iter().any(|c| c == name))
            && self.matches.matches(labels)
    }
}

/// A check's dependency as the policy sees it.
pub struct Dependency<'a> {
    pub name: &'a str,
    pub state: &'a CheckState,
}

/// Why notifications about `check` are held back at `now`, if they are:
/// - a dependency (`depends_on`) is failing: one page for one root cause;
/// - a dependency recovered but `check` has not failed since: its failures
///   were the dependency's, so wait for a failure of its own;
/// - an active silence matches it (by name, or all its labels);
/// - a maintenance window covering it is open.
pub fn hold(
    check: &str,
    labels: &BTreeMap<String, String>,
    state: &CheckState,
    dependencies: &[Dependency<'_>],
    silences: &[Silence],
    maintenance: &[Maintenance],
    now: DateTime<Utc>,
) -> Option<String> {
    for dep in dependencies {
        if dep.state.is_failing() {
            return Some(format!("dependency {} is failing", dep.name));
        }
        if let (Some(recovered), Some(failed)) = (dep.state.since, state.last_failure_at)
            && failed <= recovered
        {
            return Some(format!(
                "dependency {} recovered; {check} has not failed since",
                dep.name
            ));
        }
    }
    if let Some(s) = silences
        .iter()
        .find(|s| s.starts_at <= now && now < s.ends_at && silences_check(s, check, labels))
    {
        return Some(format!("silence {} until {}", s.id, rfc3339(s.ends_at)));
    }
    maintenance
        .iter()
        .filter(|m| m.covers(check, labels))
        .find_map(|m| m.active_until(now))
        .map(|until| format!("maintenance window until {}", rfc3339(until)))
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Whether a silence covers a check: its name when it names one, and every label it lists.
pub fn silences_check(silence: &Silence, check: &str, labels: &BTreeMap<String, String>) -> bool {
    silence.check.as_deref().is_none_or(|c| c == check)
        && silence
            .labels
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Verdict;
    use crate::core::{Color, Severity};
    use std::time::Duration;

    fn observed(verdicts: &[(Color, i64)]) -> CheckState {
        let mut s = CheckState::default();
        let t0 = Utc::now();
        for (color, at) in verdicts {
            let v = Verdict {
                color: *color,
                severity: (*color != Color::Green).then_some(Severity::Critical),
                reason: String::new(),
            };
            s.observe(&v, t0 + chrono::Duration::seconds(*at), 2, 2);
        }
        s
    }

    #[test]
    fn a_failing_dependency_holds_and_a_recovered_one_waits_for_a_failure_of_our_own() {
        let labels = BTreeMap::new();
        let now = Utc::now();
        let web = observed(&[(Color::Red, 1), (Color::Red, 2)]);
        let db_failing = observed(&[(Color::Green, 0), (Color::Red, 1)]);
        let deps = [Dependency {
            name: "db",
            state: &db_failing,
        }];
        let why = hold("web", &labels, &web, &deps, &[], &[], now).expect("held");
        assert!(why.contains("db is failing"), "{why}");

        // db green again at t=4 (two successes); web's last failure was at t=2.
        let db_back = observed(&[
            (Color::Red, 0),
            (Color::Red, 1),
            (Color::Green, 3),
            (Color::Green, 4),
        ]);
        let deps = [Dependency {
            name: "db",
            state: &db_back,
        }];
        assert!(hold("web", &labels, &web, &deps, &[], &[], now).is_some());
        // web fails again at t=5, on its own: no longer held.
        let web_again = observed(&[(Color::Red, 1), (Color::Red, 2), (Color::Red, 5)]);
        assert_eq!(hold("web", &labels, &web_again, &deps, &[], &[], now), None);
    }

    #[test]
    fn silences_match_by_name_or_labels_while_active() {
        let now = Utc::now();
        let labels: BTreeMap<String, String> = [("team".to_string(), "ops".to_string())].into();
        let silence = |check: Option<&str>, labels: &[(&str, &str)], from: i64, to: i64| Silence {
            id: 1,
            check: check.map(str::to_string),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            starts_at: now + chrono::Duration::seconds(from),
            ends_at: now + chrono::Duration::seconds(to),
            comment: String::new(),
            created_by: None,
        };
        let state = CheckState::default();
        let held = |s: Silence| hold("web", &labels, &state, &[], &[s], &[], now).is_some();
        assert!(held(silence(Some("web"), &[], -10, 10)));
        assert!(!held(silence(Some("db"), &[], -10, 10)));
        assert!(held(silence(None, &[("team", "ops")], -10, 10)));
        assert!(!held(silence(None, &[("team", "dev")], -10, 10)));
        assert!(!held(silence(Some("web"), &[], -10, 0)), "ended");
        assert!(!held(silence(Some("web"), &[], 5, 10)), "not started");
    }

    #[test]
    fn maintenance_windows_hold_covered_checks_while_open() {
        use chrono::TimeZone;
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let window = Maintenance {
            schedule: "0 3 * * SUN".parse().unwrap(),
            duration: Duration::from_secs(3600),
            matches: Matchers::equal(&[("app", "web")]),
            checks: vec![],
            comment: String::new(),
        };
        let state = CheckState::default();
        // 2026-11-29 is a Sunday.
        let at = |h, m| Utc.with_ymd_and_hms(2026, 11, 29, h, m, 0).unwrap();
        let held = |labels: &BTreeMap<String, String>, now| {
            hold(
                "web",
                labels,
                &state,
                &[],
                &[],
                std::slice::from_ref(&window),
                now,
            )
        };
        assert_eq!(held(&labels, at(2, 59)), None);
        let why = held(&labels, at(3, 30)).expect("inside the window");
        assert!(
            why.contains("maintenance window until 2026-11-29T04:00:00Z"),
            "{why}"
        );
        assert_eq!(held(&labels, at(4, 0)), None, "the window ended");
        assert_eq!(held(&BTreeMap::new(), at(3, 30)), None, "labels must match");
    }
}
