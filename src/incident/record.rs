//! An incident as it is kept: the stored [`Incident`], its timeline
//! ([`IncidentEvent`]) and the changes the engine decides ([`IncidentChange`]),
//! which the store applies together with their timeline entry.

use chrono::{DateTime, Utc};

use crate::core::{Color, Severity};

/// An incident as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    pub id: i64,
    pub check: String,
    pub severity: Severity,
    pub color: Color,
    pub message: String,
    pub started_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// When its opening was notified; `None` while held back (a dependency
    /// down, a silence) or when it resolved before anyone needed to hear.
    pub notified_at: Option<DateTime<Utc>>,
}

/// One entry of an incident's timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentEvent {
    pub at: DateTime<Utc>,
    /// `opened`, `escalated`, `resolved`, …
    pub kind: String,
    pub detail: String,
}

/// A change to an incident, decided by the engine. The store applies it
/// and appends the matching timeline event in the same transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum IncidentChange {
    /// A new open incident. The store refuses it when the
    /// check already has one (enforced by a unique index, not by a read first).
    Open {
        check: String,
        severity: Severity,
        color: Color,
        message: String,
        at: DateTime<Utc>,
        /// Whether its opening is notified now (`notified_at = at`) or held back.
        notify: bool,
    },
    /// The open incident's severity rose.
    Escalate {
        id: i64,
        severity: Severity,
        color: Color,
        message: String,
        at: DateTime<Utc>,
    },
    /// The check is green again.
    Resolve {
        id: i64,
        message: String,
        at: DateTime<Utc>,
    },
    /// Someone took the incident on: repeats stop. `NotFound` unless it is
    /// open and not yet acknowledged.
    Acknowledge {
        id: i64,
        by: Option<String>,
        at: DateTime<Utc>,
    },
    /// The open incident was notified again (its response window passed).
    Remind { id: i64, at: DateTime<Utc> },
    /// A held-back opening is notified now (the hold ended). `NotFound`
    /// unless it is open and was not notified yet.
    Notify {
        id: i64,
        reason: String,
        at: DateTime<Utc>,
    },
}

/// The timeline entry an incident change appends: (kind, detail).
pub fn event_of(change: &IncidentChange) -> (&'static str, String) {
    match change {
        IncidentChange::Open { message, .. } => ("opened", message.clone()),
        IncidentChange::Escalate { message, .. } => ("escalated", message.clone()),
        IncidentChange::Resolve { message, .. } => ("resolved", message.clone()),
        IncidentChange::Acknowledge { by, .. } => (
            "acknowledged",
            by.as_ref()
                .map_or_else(String::new, |by| format!("by {by}")),
        ),
        IncidentChange::Remind { .. } => ("reminder", String::new()),
        IncidentChange::Notify { reason, .. } => ("notified", reason.clone()),
    }
}
