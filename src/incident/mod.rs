//! The incident state machine, pure: from a check's state and its open
//! incident (if any), decide whether to open, escalate or resolve. Level-based,
//! so a change the database could not take is simply decided again on the next
//! sample. MTTA and MTTR are derived here too.

use std::time::Duration;

use chrono::{DateTime, Utc};

pub mod record;
pub mod silence;

pub use record::{Incident, IncidentChange, IncidentEvent, event_of};
pub use silence::{NewSilence, Silence};

use crate::core::{Color, Severity};
use crate::state::CheckState;

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

/// What the engine remembers of a check's incident once `change` took
/// effect: `open` is what it remembered before, `hold` what holds the check's
/// notifications back now. An opening's id is 0 until the store gives one.
pub fn after(
    open: Option<&OpenIncident>,
    change: &IncidentChange,
    hold: Option<String>,
) -> Option<OpenIncident> {
    match change {
        IncidentChange::Open {
            severity,
            color,
            message,
            at,
            notify,
            ..
        } => Some(OpenIncident {
            id: 0,
            severity: *severity,
            color: *color,
            message: message.clone(),
            started_at: *at,
            acknowledged_at: None,
            last_notified_at: *at,
            notified: *notify,
            held_by: if *notify { None } else { hold },
        }),
        IncidentChange::Escalate {
            severity,
            color,
            message,
            at,
            ..
        } => open.map(|before| {
            let mut next = before.clone();
            next.severity = *severity;
            next.color = *color;
            next.message.clone_from(message);
            // People hear of an escalation unless the check is held back.
            if next.notified && hold.is_none() {
                next.last_notified_at = *at;
            }
            next.held_by = if next.notified { None } else { hold };
            next
        }),
        IncidentChange::Resolve { .. } => None,
        IncidentChange::Acknowledge { at, .. } => open.map(|before| OpenIncident {
            acknowledged_at: Some(*at),
            ..before.clone()
        }),
        IncidentChange::Remind { .. } | IncidentChange::Notify { .. } => open.cloned(),
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

    #[test]
    fn after_an_opening_the_incident_is_open_and_held_as_the_policy_says() {
        let at = Utc::now();
        let opening = |notify| IncidentChange::Open {
            check: "web".into(),
            severity: Severity::High,
            color: Color::Red,
            message: "503".into(),
            at,
            notify,
        };
        let paged = after(None, &opening(true), None).unwrap();
        assert_eq!((paged.id, paged.notified, paged.started_at), (0, true, at));
        assert_eq!(paged.held_by, None);
        let held = after(None, &opening(false), Some("db is red".into())).unwrap();
        assert!(!held.notified);
        assert_eq!(held.held_by.as_deref(), Some("db is red"));
    }

    #[test]
    fn after_an_escalation_people_heard_of_it_unless_held() {
        let before = open(Severity::Medium);
        let at = before.last_notified_at + chrono::Duration::minutes(3);
        let escalate = IncidentChange::Escalate {
            id: 7,
            severity: Severity::Critical,
            color: Color::Red,
            message: "down".into(),
            at,
        };
        let heard = after(Some(&before), &escalate, None).unwrap();
        assert_eq!((heard.id, heard.severity), (7, Severity::Critical));
        assert_eq!(heard.last_notified_at, at);
        assert_eq!(heard.message, "down");
        let held = after(Some(&before), &escalate, Some("silenced".into())).unwrap();
        assert_eq!(held.last_notified_at, before.last_notified_at);
    }

    #[test]
    fn after_a_resolve_nothing_is_open_and_an_ack_stops_repeats() {
        let before = open(Severity::High);
        let at = Utc::now();
        let resolve = IncidentChange::Resolve {
            id: 7,
            message: "ok".into(),
            at,
        };
        assert_eq!(after(Some(&before), &resolve, None), None);
        let ack = IncidentChange::Acknowledge {
            id: 7,
            by: None,
            at,
        };
        let acked = after(Some(&before), &ack, None).unwrap();
        assert_eq!(acked.acknowledged_at, Some(at));
        assert!(!reminder_due(&acked, Duration::ZERO, at));
    }
}
