//! What an incident change is, pure: from a decision (or the clock), the
//! check's open incident, what holds its notifications back and `now`, the
//! change to commit ([`Planned::change`]), the notice people get (none while
//! held back or when nobody heard of the incident) and what the engine
//! remembers of the incident once the change took effect.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::digest::DIGEST_GATHER;
use super::routes::Event;
use crate::core::{Color, EventKind, Severity};
use crate::incident::{self, Decision, Incident, IncidentChange, OpenIncident};

/// The facts a notification is made from, owned.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub kind: EventKind,
    /// 0 for a new incident: the store fills in its id.
    pub incident: i64,
    pub severity: Severity,
    pub color: Color,
    pub message: String,
    pub started_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
    /// Goes out in this batch rather than by the routes' grouping windows.
    pub batch_at: Option<DateTime<Utc>>,
    /// Channels that heard of the incident before: they hear this too.
    pub heard: Vec<String>,
}

impl Notice {
    /// The policy's view of these facts about check `check`.
    pub fn event<'a>(&'a self, check: &'a str, labels: &'a BTreeMap<String, String>) -> Event<'a> {
        Event {
            check,
            labels,
            kind: self.kind,
            incident: self.incident,
            severity: self.severity,
            color: self.color,
            message: &self.message,
            started_at: self.started_at,
            at: self.at,
        }
    }

    /// A notice about an open incident as it stands.
    pub fn of(open: &OpenIncident, kind: EventKind, at: DateTime<Utc>) -> Notice {
        Notice {
            kind,
            incident: open.id,
            severity: open.severity,
            color: open.color,
            message: open.message.clone(),
            started_at: open.started_at,
            at,
            batch_at: None,
            heard: Vec::new(),
        }
    }

    /// Whether whoever heard of the incident before hears this too, routes
    /// or not: its acknowledgement and its resolve ([`Notice::heard`] is
    /// for the engine to fill from the store).
    pub fn tells_who_heard(&self) -> bool {
        matches!(self.kind, EventKind::Acknowledged | EventKind::Resolved)
    }
}

/// An incident change to commit, with its notice and the incident after it.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    pub change: IncidentChange,
    /// What people are told; `None`: nobody.
    pub notice: Option<Notice>,
    /// What the engine remembers of the check's incident once the change
    /// took effect; an opening's id is 0 until the store gives one.
    pub next: Option<OpenIncident>,
}

/// The severity whose notifications a decision is about: the new one of an
/// opening or escalation, the incident's own for a resolve.
pub fn severity_of(decision: &Decision, open: Option<&OpenIncident>) -> Severity {
    match decision {
        Decision::Open { severity, .. } | Decision::Escalate { severity, .. } => *severity,
        Decision::Resolve { .. } => open.map_or(Severity::Low, |o| o.severity),
    }
}

/// The change a decision about check `check` makes at `now`. People hear of
/// an opening unless `hold` holds it back, of an escalation when they heard
/// of the opening and nothing holds it back, and of a resolve whenever they
/// heard of the opening.
pub fn decided(
    check: &str,
    decision: Decision,
    open: Option<&OpenIncident>,
    hold: Option<String>,
    now: DateTime<Utc>,
) -> Planned {
    let notified = open.is_some_and(|o| o.notified);
    let started_at = open.map_or(now, |o| o.started_at);
    let notice = |kind, incident, severity, color, message, started_at| Notice {
        kind,
        incident,
        severity,
        color,
        message,
        started_at,
        at: now,
        batch_at: None,
        heard: Vec::new(),
    };
    let severity = severity_of(&decision, open);
    let (change, notice) = match decision {
        Decision::Open {
            severity,
            color,
            message,
        } => (
            IncidentChange::Open {
                check: check.to_string(),
                severity,
                color,
                message: message.clone(),
                at: now,
                notify: hold.is_none(),
            },
            hold.is_none()
                .then(|| notice(EventKind::Opened, 0, severity, color, message, now)),
        ),
        Decision::Escalate {
            id,
            severity,
            color,
            message,
        } => (
            IncidentChange::Escalate {
                id,
                severity,
                color,
                message: message.clone(),
                at: now,
            },
            (notified && hold.is_none()).then(|| {
                let kind = EventKind::Escalated;
                notice(kind, id, severity, color, message, started_at)
            }),
        ),
        Decision::Resolve { id, message } => (
            IncidentChange::Resolve {
                id,
                message: message.clone(),
                at: now,
            },
            notified.then(|| {
                let kind = EventKind::Resolved;
                notice(kind, id, severity, Color::Green, message, started_at)
            }),
        ),
    };
    let next = incident::after(open, &change, hold);
    Planned {
        change,
        notice,
        next,
    }
}

/// Whether an open incident's opening is held back still: nobody heard of it
/// and nobody took it on. It goes out ([`released`]) once nothing holds it.
pub fn held_back(open: &OpenIncident) -> bool {
    !open.notified && open.acknowledged_at.is_none()
}

/// `open` was notified at `now`: people heard of it, nothing holds it back.
fn heard_at(open: &OpenIncident, now: DateTime<Utc>) -> OpenIncident {
    OpenIncident {
        notified: true,
        held_by: None,
        last_notified_at: now,
        ..open.clone()
    }
}

/// A held-back opening goes out at `now`, its hold having ended; the
/// timeline says what held it.
pub fn released(open: &OpenIncident, now: DateTime<Utc>) -> Planned {
    let reason = open.held_by.as_ref().map_or_else(
        || "held back until now".to_string(),
        |h| format!("held back while {h}"),
    );
    Planned {
        change: IncidentChange::Notify {
            id: open.id,
            reason,
            at: now,
        },
        notice: Some(Notice::of(open, EventKind::Opened, now)),
        next: Some(heard_at(open, now)),
    }
}

/// `open` is sent again at `now`: its response window passed unacknowledged.
pub fn reminded(open: &OpenIncident, now: DateTime<Utc>) -> Planned {
    Planned {
        change: IncidentChange::Remind {
            id: open.id,
            at: now,
        },
        notice: Some(Notice::of(open, EventKind::Reminder, now)),
        next: Some(OpenIncident {
            last_notified_at: now,
            ..open.clone()
        }),
    }
}

/// An open low incident in the digest at `now`: a reminder when people heard
/// of it, its opening when it waited for the digest. The digest's notices
/// share one batch, due a moment later so the outbox finds it whole.
pub fn in_digest(open: &OpenIncident, now: DateTime<Utc>) -> Planned {
    let (kind, change) = if open.notified {
        let change = IncidentChange::Remind {
            id: open.id,
            at: now,
        };
        (EventKind::Reminder, change)
    } else {
        let change = IncidentChange::Notify {
            id: open.id,
            reason: "in the daily digest of low incidents".to_string(),
            at: now,
        };
        (EventKind::Opened, change)
    };
    let mut notice = Notice::of(open, kind, now);
    notice.batch_at = Some(now + DIGEST_GATHER);
    Planned {
        change,
        notice: Some(notice),
        next: Some(heard_at(open, now)),
    }
}

/// A low incident that opened and resolved unseen since the last digest, in
/// the digest at `now`: listed as resolved, and marked notified.
pub fn resolved_in_digest(inc: &Incident, now: DateTime<Utc>) -> (IncidentChange, Notice) {
    let notice = Notice {
        kind: EventKind::Resolved,
        incident: inc.id,
        severity: inc.severity,
        color: Color::Green,
        message: inc.message.clone(),
        started_at: inc.started_at,
        at: inc.resolved_at.unwrap_or(now),
        batch_at: Some(now + DIGEST_GATHER),
        heard: Vec::new(),
    };
    let change = IncidentChange::Notify {
        id: inc.id,
        reason: "in the daily digest of low incidents (already resolved)".into(),
        at: now,
    };
    (change, notice)
}

/// Someone takes `open` on at `now`: repeats stop; whoever heard of it hears
/// who took it (who never heard needs no word).
pub fn acknowledged(open: &OpenIncident, by: Option<String>, now: DateTime<Utc>) -> Planned {
    let change = IncidentChange::Acknowledge {
        id: open.id,
        by,
        at: now,
    };
    Planned {
        notice: open
            .notified
            .then(|| Notice::of(open, EventKind::Acknowledged, now)),
        next: incident::after(Some(open), &change, None),
        change,
    }
}
