//! The incident that cannot be stored: `keeper:storage` turning red means the
//! database that holds incidents and the outbox is away. The engine then keeps
//! that incident in memory (id [`OFFLINE`]), sends its notifications straight
//! to the outbox worker ([`crate::notify::outbox::Direct`]), and once the
//! database is back and the check green, writes it down as it happened.

use chrono::{DateTime, Utc};

use super::{Engine, EventFacts};
use crate::classify::{Color, Severity};
use crate::incident::{Decision, OpenIncident};
use crate::notify::EventKind;
use crate::probe;
use crate::store::IncidentChange;

/// The id of an incident held in memory only.
pub const OFFLINE: i64 = 0;

impl Engine {
    /// Whether check `i` is keeper's check of its own storage.
    pub(super) fn watches_storage(&self, i: usize) -> bool {
        matches!(
            self.checks[i].config.probe,
            probe::Spec::Keeper(probe::keeper::Spec::Storage)
        )
    }

    /// Whether check `i`'s open incident lives in memory only.
    pub(super) fn is_offline(&self, i: usize) -> bool {
        self.checks[i]
            .open
            .as_ref()
            .is_some_and(|o| o.id == OFFLINE)
    }

    /// The store could not take the opening of `keeper:storage`: the incident
    /// is kept in memory and, unless held back, sent directly.
    pub(super) fn open_offline(
        &mut self,
        check: usize,
        severity: Severity,
        color: Color,
        message: String,
        hold: Option<String>,
        now: DateTime<Utc>,
    ) {
        let open = OpenIncident {
            id: OFFLINE,
            severity,
            color,
            message,
            started_at: now,
            acknowledged_at: None,
            last_notified_at: now,
            notified: hold.is_none(),
            held_by: hold,
        };
        tracing::error!(check = %self.checks[check].config.name, message = %open.message, "incident opened while storage is away; notifying directly");
        if open.notified {
            self.send_offline(check, &EventFacts::of(&open, EventKind::Opened, now));
        }
        self.checks[check].open = Some(open);
        self.publish_open_counts();
    }

    /// A decision about an incident held in memory: escalations and the
    /// resolve are sent directly; the resolve also writes the incident down.
    pub(super) async fn decided_offline(&mut self, check: usize, decision: Decision) {
        let now = Utc::now();
        let Some(mut open) = self.checks[check].open.clone() else {
            return;
        };
        match decision {
            Decision::Open { .. } => {}
            Decision::Escalate {
                severity,
                color,
                message,
                ..
            } => {
                open.severity = severity;
                open.color = color;
                open.message = message;
                if open.notified && self.hold(check, severity, now).is_none() {
                    open.last_notified_at = now;
                    self.send_offline(check, &EventFacts::of(&open, EventKind::Escalated, now));
                }
                self.checks[check].open = Some(open);
            }
            Decision::Resolve { message, .. } => {
                if open.notified {
                    let mut event = EventFacts::of(&open, EventKind::Resolved, now);
                    event.color = Color::Green;
                    event.message.clone_from(&message);
                    self.send_offline(check, &event);
                }
                self.record_offline(check, &open, message, now).await;
                self.checks[check].open = None;
                self.publish_open_counts();
            }
        }
    }

    /// Sends one event of an in-memory incident to its channels, now.
    pub(super) fn send_offline(&self, check: usize, facts: &EventFacts) {
        self.direct.send(self.recipients(check, facts));
    }

    /// Writes an in-memory incident down once the store is back: opened when
    /// it began (notified then, or not), resolved now. Nothing is queued: its
    /// notifications went out directly.
    async fn record_offline(
        &mut self,
        check: usize,
        open: &OpenIncident,
        message: String,
        now: DateTime<Utc>,
    ) {
        let opened = IncidentChange::Open {
            check: self.checks[check].config.name.to_string(),
            severity: open.severity,
            color: open.color,
            message: open.message.clone(),
            at: open.started_at,
            notify: open.notified,
        };
        let recorded = match self.store.record(opened, Vec::new()).await {
            Ok(incident) => {
                let resolved = IncidentChange::Resolve {
                    id: incident.id,
                    message,
                    at: now,
                };
                self.store.record(resolved, Vec::new()).await
            }
            Err(e) => Err(e),
        };
        match recorded {
            Ok(incident) => tracing::info!(
                check = %self.checks[check].config.name,
                incident = incident.id,
                "incident held in memory while storage was away is now recorded"
            ),
            Err(e) => tracing::error!(
                check = %self.checks[check].config.name,
                error = %e,
                "could not record the incident held while storage was away"
            ),
        }
    }
}
