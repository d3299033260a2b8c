//! The incident state machine, pure: from a check's state and its open
//! incident (if any), decide whether to open, escalate or resolve. Level-based,
//! so a change the database could not take is simply decided again on the next
//! sample. MTTA and MTTR are derived here too.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::classify::{Color, Severity};
use crate::state::CheckState;
use crate::store::Incident;

/// What the engine remembers of a check's open incident.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenIncident {
    pub id: i64,
    pub severity: Severity,
    pub color: Color,
    pub message: String,
    pub started_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// When people last heard of it (opened, escalated, reminded).
    pub last_notified_at: DateTime<Utc>,
    /// Whether its opening was notified; false while held back.
    pub notified: bool,
    /// What held its opening back, for the timeline when it goes out.
    pub held_by: Option<String>,
}

impl OpenIncident {
    /// The engine's view of a stored incident last notified at `notified_at`.
    pub fn new(i: &Incident, notified_at: DateTime<Utc>) -> Self {
        OpenIncident {
            id: i.id,
            severity: i.severity,
            color: i.color,
            message: i.message.clone(),
            started_at: i.started_at,
            acknowledged_at: i.acknowledged_at,
            last_notified_at: notified_at,
            notified: i.notified_at.is_some(),
            held_by: None,
        }
    }
}

/// Whether an open incident is due to be sent again: notified, unacknowledged,
/// and its severity's response window has passed since people last heard of it.
pub fn reminder_due(open: &OpenIncident, window: Duration, now: DateTime<Utc>) -> bool {
    open.notified
        && open.acknowledged_at.is_none()
        && chrono::Duration::from_std(window)
            .is_ok_and(|window| now - open.last_notified_at >= window)
}

/// A change to make to the check's incident.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Open {
        severity: Severity,
        color: Color,
        message: String,
    },
    Escalate {
        id: i64,
        severity: Severity,
        color: Color,
        message: String,
    },
    Resolve {
        id: i64,
        message: String,
    },
}

/// Compares what the check is with what its incident says, and decides.
pub fn decide(state: &CheckState, open: Option<&OpenIncident>) -> Option<Decision> {
    match (state.severity, open) {
        (Some(severity), None) => Some(Decision::Open {
            severity,
            color: state.color,
            message: state.reason.clone(),
        }),
        (Some(severity), Some(open)) if severity > open.severity => Some(Decision::Escalate {
            id: open.id,
            severity,
            color: state.color,
            message: state.reason.clone(),
        }),
        (None, Some(open)) => Some(Decision::Resolve {
            id: open.id,
            message: state.reason.clone(),
        }),
        _ => None,
    }
}

/// Seconds from start to acknowledgement.
pub fn mtta_s(i: &Incident) -> Option<i64> {
    i.acknowledged_at.map(|a| (a - i.started_at).num_seconds())
}

/// Seconds from start to resolution.
pub fn mttr_s(i: &Incident) -> Option<i64> {
    i.resolved_at.map(|r| (r - i.started_at).num_seconds())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Verdict;

    fn state(color: Color, severity: Option<Severity>) -> CheckState {
        let mut s = CheckState::default();
        let v = Verdict {
            color,
            severity,
            reason: "why".into(),
        };
        s.observe(&v, Utc::now(), 1, 1);
        s
    }

    fn open(severity: Severity) -> OpenIncident {
        OpenIncident {
            id: 7,
            severity,
            color: Color::Red,
            message: "503".into(),
            started_at: Utc::now(),
            acknowledged_at: None,
            last_notified_at: Utc::now(),
            notified: true,
            held_by: None,
        }
    }

    #[test]
    fn reminders_fall_due_per_window_and_never_once_acknowledged() {
        let mut o = open(Severity::Critical);
        let window = Duration::from_secs(300);
        let at = |s: i64| o.last_notified_at + chrono::Duration::seconds(s);
        assert!(!reminder_due(&o, window, at(299)));
        assert!(reminder_due(&o, window, at(300)));
        o.acknowledged_at = Some(at(10));
        assert!(!reminder_due(&o, window, at(3_000)));
        o.acknowledged_at = None;
        o.notified = false;
        assert!(
            !reminder_due(&o, window, at(3_000)),
            "held back: nobody heard of it yet"
        );
    }

    #[test]
    fn opens_escalates_resolves_and_never_lowers() {
        let red_high = state(Color::Red, Some(Severity::High));
        assert!(matches!(
            decide(&red_high, None),
            Some(Decision::Open {
                severity: Severity::High,
                ..
            })
        ));
        assert_eq!(decide(&red_high, Some(&open(Severity::High))), None);
        assert!(matches!(
            decide(&red_high, Some(&open(Severity::Medium))),
            Some(Decision::Escalate {
                id: 7,
                severity: Severity::High,
                ..
            })
        ));
        // a lower severity keeps the incident as it is
        assert_eq!(decide(&red_high, Some(&open(Severity::Critical))), None);
        let green = state(Color::Green, None);
        assert!(matches!(
            decide(&green, Some(&open(Severity::High))),
            Some(Decision::Resolve { id: 7, .. })
        ));
        assert_eq!(decide(&green, None), None);
    }
}
