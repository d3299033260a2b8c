//! What the engine does as time passes, once a tick: held-back openings whose
//! hold ended go out, reminders fall due, and the daily digest of low incidents.

use chrono::{DateTime, Utc};

use super::{Engine, EventFacts};
use crate::core::EventKind;
use crate::core::{Color, Severity};
use crate::incident;
use crate::incident::IncidentChange;
use crate::store::IncidentFilter;

/// How long a digest's notifications gather before the outbox sends them as one.
const DIGEST_GATHER: chrono::Duration = chrono::Duration::seconds(2);

impl Engine {
    /// One step of the clock: changes made while storage was away are written
    /// down once it is back, held-back openings whose hold ended go out, then
    /// reminders; ended silences are forgotten.
    pub async fn tick(&mut self, now: DateTime<Utc>) {
        self.catch_up().await;
        self.silences.retain(|s| s.ends_at > now);
        self.release_held(now).await;
        self.remind(now).await;
        self.resend_open(now).await;
        if self.next_digest.is_some_and(|at| now >= at) {
            self.send_digest(now).await;
            self.next_digest = self.digest.as_ref().and_then(|d| d.next_after(now));
        }
    }

    /// The daily digest: every open low incident, and every low incident that
    /// came and went since the last digest unseen, in one message per channel
    /// (its notifications share a batch, see [`crate::core::Outgoing::batch_at`]).
    async fn send_digest(&mut self, now: DateTime<Utc>) {
        self.digest_resolved(now).await;
        let low: Vec<usize> = (0..self.checks.len())
            .filter(|&i| {
                self.checks[i]
                    .open
                    .as_ref()
                    .is_some_and(|o| o.severity == Severity::Low)
            })
            .collect();
        for i in low {
            let Some(open) = self.checks[i].open.clone() else {
                continue;
            };
            let (kind, change) = if open.notified {
                (
                    EventKind::Reminder,
                    IncidentChange::Remind {
                        id: open.id,
                        at: now,
                    },
                )
            } else {
                let reason = "in the daily digest of low incidents".to_string();
                (
                    EventKind::Opened,
                    IncidentChange::Notify {
                        id: open.id,
                        reason,
                        at: now,
                    },
                )
            };
            let mut event = EventFacts::of(&open, kind, now);
            // Due a moment later, so the outbox finds the whole digest in place.
            event.batch_at = Some(now + DIGEST_GATHER);
            if self.commit(i, change, Some(event)).await.took()
                && let Some(open) = &mut self.checks[i].open
            {
                open.notified = true;
                open.held_by = None;
                open.last_notified_at = now;
            }
        }
    }

    /// The digest's part about low incidents that opened and resolved since
    /// the previous digest without anyone hearing of them: each listed once,
    /// as resolved (the store marks it notified).
    async fn digest_resolved(&mut self, now: DateTime<Utc>) {
        let since = self
            .digest
            .as_ref()
            .and_then(|d| d.last_at_or_before(now - chrono::Duration::seconds(1)))
            .map_or(now, |previous| previous.min(now))
            .min(now - chrono::Duration::days(1));
        let store = self.store.clone();
        let resolved = match self
            .guarded(store.incidents(IncidentFilter::Resolved, 1000))
            .await
        {
            Ok(resolved) => resolved,
            Err(e) => {
                tracing::warn!(error = %e, "digest: could not list resolved incidents");
                return;
            }
        };
        let unseen = resolved.into_iter().filter(|inc| {
            inc.severity == Severity::Low
                && inc.notified_at.is_none()
                && inc.resolved_at.is_some_and(|at| at >= since)
        });
        for inc in unseen {
            let Some(i) = self
                .checks
                .iter()
                .position(|rt| *rt.config.name == inc.check)
            else {
                continue;
            };
            let resolved_at = inc.resolved_at.unwrap_or(now);
            let event = EventFacts {
                kind: EventKind::Resolved,
                incident: inc.id,
                severity: inc.severity,
                color: Color::Green,
                message: inc.message.clone(),
                started_at: inc.started_at,
                at: resolved_at,
                batch_at: Some(now + DIGEST_GATHER),
                heard: Vec::new(),
            };
            let change = IncidentChange::Notify {
                id: inc.id,
                reason: "in the daily digest of low incidents (already resolved)".into(),
                at: now,
            };
            self.commit(i, change, Some(event)).await;
        }
    }

    /// Tells each forgetful channel (Alertmanager) again about every open
    /// incident it heard of, once per its `resend`: directly, without a row
    /// in the outbox or the timeline, since it repeats what was said.
    async fn resend_open(&mut self, now: DateTime<Utc>) {
        let due: Vec<String> = self
            .resend
            .iter_mut()
            .filter(|(_, _, next)| now >= *next)
            .map(|(channel, every, next)| {
                *next = now + chrono::Duration::from_std(*every).unwrap_or_default();
                channel.clone()
            })
            .collect();
        if due.is_empty() {
            return;
        }
        for i in 0..self.checks.len() {
            let Some(open) = self.checks[i].open.clone() else {
                continue;
            };
            if !open.notified || open.id == super::offline::OFFLINE {
                continue;
            }
            let heard = self.heard_of(open.id).await;
            let channels: Vec<String> = due.iter().filter(|c| heard.contains(c)).cloned().collect();
            if channels.is_empty() {
                continue;
            }
            let event = EventFacts::of(&open, EventKind::Reminder, now);
            let config = &self.checks[i].config;
            let facts = event.event(&config.name, &config.labels);
            let rows = crate::notify::policy::route_with(&[], &facts, &channels);
            self.direct.send(rows);
        }
    }

    /// Notifies the opening of every held-back incident whose hold has ended.
    pub(super) async fn release_held(&mut self, now: DateTime<Utc>) {
        let due: Vec<usize> = (0..self.checks.len())
            .filter(|&i| {
                self.checks[i].open.as_ref().is_some_and(|o| {
                    !o.notified
                        && o.acknowledged_at.is_none()
                        && self.hold(i, o.severity, now).is_none()
                })
            })
            .collect();
        for i in due {
            let Some(open) = self.checks[i].open.clone() else {
                continue;
            };
            let reason = open.held_by.as_ref().map_or_else(
                || "held back until now".to_string(),
                |h| format!("held back while {h}"),
            );
            let event = EventFacts::of(&open, EventKind::Opened, now);
            let change = IncidentChange::Notify {
                id: open.id,
                reason,
                at: now,
            };
            if self.commit(i, change, Some(event)).await.took()
                && let Some(open) = &mut self.checks[i].open
            {
                open.notified = true;
                open.held_by = None;
                open.last_notified_at = now;
            }
        }
    }

    /// One step: sends a reminder for every open, unacknowledged incident
    /// whose response window has passed since it was last notified.
    async fn remind(&mut self, now: DateTime<Utc>) {
        let due: Vec<usize> = self
            .checks
            .iter()
            .enumerate()
            .filter_map(|(i, rt)| {
                let open = rt.open.as_ref()?;
                let window = self.repeat.get(&open.severity)?;
                incident::reminder_due(open, *window, now).then_some(i)
            })
            .filter(|&i| {
                self.checks[i]
                    .open
                    .as_ref()
                    .is_some_and(|o| self.hold(i, o.severity, now).is_none())
            })
            .collect();
        for i in due {
            let Some(open) = self.checks[i].open.clone() else {
                continue;
            };
            let event = EventFacts::of(&open, EventKind::Reminder, now);
            if !self.routed(i, open.severity) {
                // No route wants it: nothing to remind anyone of.
                if let Some(open) = &mut self.checks[i].open {
                    open.last_notified_at = now;
                }
                continue;
            }
            let change = IncidentChange::Remind {
                id: open.id,
                at: now,
            };
            if self.commit(i, change, Some(event)).await.took()
                && let Some(open) = &mut self.checks[i].open
            {
                open.last_notified_at = now;
            }
        }
    }
}
