//! What the engine does as time passes, once a tick: held-back openings whose
//! hold ended go out, reminders fall due, resends, deployments whose watch
//! ended are judged, and the daily digest of low incidents. The policy says what is due; the engine commits it.

use chrono::{DateTime, Utc};

use super::Engine;
use crate::core::ownership::Duty;
use crate::core::{EventKind, Severity};
use crate::incident::OpenIncident;
use crate::notify::policy::{self, Notice, changes};
use crate::store::IncidentFilter;

impl Engine {
    /// One step of the clock: changes made while storage was away are written
    /// down once it is back, held-back openings whose hold ended go out, then
    /// reminders; ended silences are forgotten.
    pub async fn tick(&mut self, now: DateTime<Utc>) {
        self.catch_up().await;
        self.policy.forget_ended(now);
        self.release_held(now).await;
        self.remind(now).await;
        self.resend_open(now).await;
        self.judge_deployments(now).await;
        // Due everywhere, sent by the one instance holding the duty.
        if let Some(since) = self.policy.digest_due(now)
            && self.ownership.does(Duty::Digest)
        {
            self.send_digest(since, now).await;
        }
    }

    /// The checks this instance acts on as time passes (all of them alone).
    fn owned(&self) -> impl Iterator<Item = usize> + use<'_> {
        (0..self.checks.len()).filter(|&i| self.ownership.owns(i))
    }

    /// The daily digest: every open low incident, and every low incident that
    /// came and went unseen since `since`, in one message per channel
    /// (its notifications share a batch, see [`crate::core::Outgoing::batch_at`]).
    async fn send_digest(&mut self, since: DateTime<Utc>, now: DateTime<Utc>) {
        self.digest_resolved(since, now).await;
        for (i, open) in self.open_low(now).await {
            self.settle(i, changes::in_digest(&open, now)).await;
        }
    }

    /// Every open low incident of the cluster (the digest's sender speaks
    /// for every instance): as stored, else as this instance remembers them.
    async fn open_low(&mut self, now: DateTime<Utc>) -> Vec<(usize, OpenIncident)> {
        let store = self.store.clone();
        let Ok(stored) = self.guarded(store.open_incidents()).await else {
            let remembered = self.checks.iter().enumerate().filter_map(|(i, rt)| {
                let open = rt.open.clone()?;
                (open.severity == Severity::Low).then_some((i, open))
            });
            return remembered.collect();
        };
        let low = stored.iter().filter(|inc| inc.severity == Severity::Low);
        low.filter_map(|inc| {
            let i = (self.checks.iter()).position(|rt| *rt.config.name == inc.check)?;
            let remembered = self.checks[i].open.clone().filter(|o| o.id == inc.id);
            Some((i, remembered.unwrap_or_else(|| OpenIncident::new(inc, now))))
        })
        .collect()
    }

    /// The digest's part about low incidents that opened and resolved since
    /// the previous digest without anyone hearing of them: each listed once,
    /// as resolved (the store marks it notified).
    async fn digest_resolved(&mut self, since: DateTime<Utc>, now: DateTime<Utc>) {
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
            // Not `settle`: the check's open incident, if any, is another one.
            let (change, notice) = changes::resolved_in_digest(&inc, now);
            self.commit(i, change, Some(notice)).await;
        }
    }

    /// Tells each forgetful channel (Alertmanager) again about every open
    /// incident it heard of, once per its `resend`: directly, without a row
    /// in the outbox or the timeline, since it repeats what was said.
    async fn resend_open(&mut self, now: DateTime<Utc>) {
        let due = self.policy.resends_due(now);
        if due.is_empty() {
            return;
        }
        let owned: Vec<usize> = self.owned().collect();
        for i in owned {
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
            let notice = Notice::of(&open, EventKind::Reminder, now);
            let config = &self.checks[i].config;
            let event = notice.event(&config.name, &config.labels);
            let rows = policy::route_with(&[], &event, &channels);
            self.direct.send(rows);
        }
    }

    /// Notifies the opening of every held-back incident whose hold has ended.
    pub(super) async fn release_held(&mut self, now: DateTime<Utc>) {
        let due: Vec<usize> = self
            .owned()
            .filter(|&i| {
                self.checks[i].open.as_ref().is_some_and(|o| {
                    changes::held_back(o) && self.hold(i, o.severity, now).is_none()
                })
            })
            .collect();
        for i in due {
            let Some(open) = self.checks[i].open.clone() else {
                continue;
            };
            self.settle(i, changes::released(&open, now)).await;
        }
    }

    /// One step: sends a reminder for every open, unacknowledged incident
    /// whose response window has passed since it was last notified.
    async fn remind(&mut self, now: DateTime<Utc>) {
        let due: Vec<usize> = self
            .owned()
            .filter(|&i| {
                self.checks[i].open.as_ref().is_some_and(|o| {
                    self.policy.reminder_due(o, now) && self.hold(i, o.severity, now).is_none()
                })
            })
            .collect();
        for i in due {
            let Some(open) = self.checks[i].open.clone() else {
                continue;
            };
            let planned = changes::reminded(&open, now);
            if !self
                .policy
                .routed(open.severity, &self.checks[i].config.labels)
            {
                // No route wants it: nothing to remind anyone of.
                self.checks[i].open = planned.next;
                continue;
            }
            self.settle(i, planned).await;
        }
    }
}
