//! Sending one channel's due rows and recording what became of each: rows
//! sharing a grouping window go out as one message, every try is paced,
//! time-bounded and judged by [`crate::notify::retry`], and its disposition is
//! written to the store, the counter, the channel's health and the log.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::{Outbox, StepReport};
use crate::core::{Notification, OutboxEntry};
use crate::notify::retry::{Disposition, Limits, backoff, decide};
use crate::notify::{Channel, SendError, policy};
use crate::store::{BadRow, Marked, StoreError};

/// A channel's due rows as units of delivery, in order: rows sharing a
/// `batch_at` (a route's `group_wait` window) go out as one message; the
/// others one by one.
fn batches(entries: &[OutboxEntry]) -> Vec<Vec<&OutboxEntry>> {
    let mut units: Vec<Vec<&OutboxEntry>> = Vec::new();
    for entry in entries {
        let joins = entry
            .batch_at
            .and_then(|at| units.iter().position(|u| u[0].batch_at == Some(at)));
        match joins {
            Some(i) => units[i].push(entry),
            None => units.push(vec![entry]),
        }
    }
    units
}

/// What is being sent, as [`Outbox::attempt`] needs it.
pub(super) struct Unit<'a> {
    pub(super) notifications: &'a [Notification],
    /// The idempotency key: the (first) notification's id.
    pub(super) key: &'a str,
    /// Failed attempts so far.
    pub(super) attempts: u32,
    /// When it was queued (its age is counted against `max_age`).
    pub(super) created_at: DateTime<Utc>,
}

/// This worker's claim on the rows of one channel's group, as it goes.
struct Held {
    /// When the claim was last made or renewed: taken just before asking, so
    /// never later than the database's own stamp.
    since: Instant,
    /// Rows whose claim lapsed and went to another instance: not sent here.
    lost: HashSet<i64>,
}

impl Outbox {
    /// Sends one channel's rows in order, then releases the channel.
    /// `claimed` is when the rows were claimed.
    pub(super) async fn deliver_group(
        &self,
        channel: String,
        entries: Vec<OutboxEntry>,
        claimed: Instant,
    ) -> (StepReport, Option<StoreError>) {
        let result = self.deliver_in_order(&channel, &entries, claimed).await;
        self.busy.lock().await.remove(&channel);
        result
    }

    async fn deliver_in_order(
        &self,
        name: &str,
        entries: &[OutboxEntry],
        claimed: Instant,
    ) -> (StepReport, Option<StoreError>) {
        let mut report = StepReport::default();
        let Some(channel) = self.channels.get(name) else {
            let error = format!("channel {name:?} is not configured");
            for entry in entries {
                let failed = Disposition::Failed {
                    attempts: entry.attempts,
                    error: error.clone(),
                };
                if let Err(e) = self.mark(entry, failed, &mut report).await {
                    return (report, Some(e));
                }
            }
            return (report, None);
        };
        let units = batches(entries);
        let mut held = Held {
            since: claimed,
            lost: HashSet::new(),
        };
        for (i, unit) in units.iter().enumerate() {
            // A channel keeps its pace; only its own rows wait.
            self.pace(name).await;
            if let Err(e) = self.renew(&mut held, &units[i..]).await {
                return (report, Some(e));
            }
            let unit: Vec<&OutboxEntry> = unit
                .iter()
                .filter(|e| !held.lost.contains(&e.id))
                .copied()
                .collect();
            if unit.is_empty() {
                continue;
            }
            let disposition = self.send_unit(channel, &unit).await;
            let retry = match &disposition {
                Disposition::Retry { delay, error, .. } => Some((*delay, error.clone())),
                _ => None,
            };
            for entry in &unit {
                if let Err(e) = self.mark(entry, disposition.clone(), &mut report).await {
                    return (report, Some(e));
                }
            }
            // The channel is failing: the rest of its rows wait with this one.
            if let Some((delay, error)) = retry {
                let rest: Vec<OutboxEntry> = units[i + 1..]
                    .iter()
                    .flat_map(|u| u.iter().map(|e| (*e).clone()))
                    .filter(|e| !held.lost.contains(&e.id))
                    .collect();
                if let Err(e) = self.defer(&rest, delay, &error).await {
                    return (report, Some(e));
                }
                report.deferred += rest.len();
                break;
            }
        }
        (report, None)
    }

    /// Once half the claim's lease has passed, extends the claim on the rows
    /// still to send (`units`), so that it outlasts the next send; rows whose
    /// claim lapsed and was taken meanwhile are given up to their new claimer.
    async fn renew(&self, held: &mut Held, units: &[Vec<&OutboxEntry>]) -> Result<(), StoreError> {
        let lease = self.claim_lease();
        if held.since.elapsed() < lease / 2 {
            return Ok(());
        }
        let ids: Vec<i64> = units
            .iter()
            .flatten()
            .map(|e| e.id)
            .filter(|id| !held.lost.contains(id))
            .collect();
        let renewing = Instant::now();
        let kept: HashSet<i64> = self
            .store
            .renew_claim(&self.instance, &ids, lease)
            .await?
            .into_iter()
            .collect();
        held.since = renewing;
        for id in ids.into_iter().filter(|id| !kept.contains(id)) {
            tracing::warn!(
                id,
                "the claim on a notification lapsed and another instance took it: left to that instance"
            );
            held.lost.insert(id);
        }
        Ok(())
    }

    /// One try at sending `unit` (one row, or rows sharing a grouping window)
    /// through `channel`, not paced here.
    async fn send_unit(&self, channel: &Channel, unit: &[&OutboxEntry]) -> Disposition {
        let notifications: Vec<Notification> = unit
            .iter()
            .map(|entry| {
                let mut n = entry.notification.clone();
                if n.url.is_none() {
                    n.url = policy::incident_url(self.public_url.as_deref(), n.incident);
                }
                n
            })
            .collect();
        // A batch went out together, so it was tried as often as its first
        // row, and carries that row's id as its key.
        let key = unit[0].id.to_string();
        let sending = Unit {
            notifications: &notifications,
            key: &key,
            attempts: unit[0].attempts,
            created_at: unit
                .iter()
                .map(|e| e.created_at)
                .min()
                .unwrap_or_else(Utc::now),
        };
        self.try_send(channel, &sending).await
    }

    /// Records a disposition in the store, the counter and the log. The
    /// store takes it only while this instance's claim on the row holds: a
    /// worker whose claim lapsed (it was slower than its lease, or away from
    /// the database) and was taken by another instance leaves the outcome to
    /// that instance, which sends the row again, with the same idempotency key,
    /// unless it already has.
    async fn mark(
        &self,
        entry: &OutboxEntry,
        disposition: Disposition,
        report: &mut StepReport,
    ) -> Result<(), StoreError> {
        let channel = entry.channel.as_str();
        let incident = entry.notification.incident;
        let by = &*self.instance;
        self.tally(channel, &disposition);
        let marked = match disposition {
            Disposition::Sent => {
                let marked = self
                    .store
                    .notification_sent(entry.id, Utc::now(), by)
                    .await?;
                if marked == Marked::Recorded {
                    report.sent += 1;
                }
                tracing::debug!(channel, incident, state = %entry.notification.state, "notification sent");
                marked
            }
            Disposition::Retry {
                attempts,
                delay,
                error,
            } => {
                let next_at = Utc::now() + delay;
                let marked = self
                    .store
                    .notification_retry(entry.id, attempts, next_at, &error, by)
                    .await?;
                if marked == Marked::Recorded {
                    report.retried += 1;
                }
                tracing::warn!(channel, incident, attempts, retry_in = ?delay, %error, "notification failed, will retry");
                marked
            }
            Disposition::Failed { attempts, error } => {
                let marked = self
                    .store
                    .notification_failed(entry.id, attempts, &error, by)
                    .await?;
                if marked == Marked::Recorded {
                    report.failed += 1;
                }
                tracing::error!(channel, incident, attempts, %error, "notification given up");
                marked
            }
        };
        if marked == Marked::ClaimLost {
            report.lost += 1;
            tracing::warn!(
                id = entry.id,
                channel,
                incident,
                "the claim on this notification lapsed and another instance took it: its outcome is left to that instance"
            );
        }
        Ok(())
    }

    /// Fails a row the store could not decode, with the reason: it can never
    /// be sent, and must not hold up the others.
    pub(super) async fn fail_bad_row(&self, row: BadRow) -> Result<(), StoreError> {
        let error = format!("undecodable outbox row: {}", row.reason);
        self.store
            .notification_failed(row.id, row.attempts, &error, &self.instance)
            .await?;
        self.count(&row.channel, "failed");
        tracing::error!(id = row.id, channel = %row.channel, %error, "notification failed");
        Ok(())
    }

    /// Pushes untried rows back by `delay`, their attempt counts unchanged.
    async fn defer(
        &self,
        entries: &[OutboxEntry],
        delay: Duration,
        error: &str,
    ) -> Result<(), StoreError> {
        let next_at = Utc::now() + delay;
        let why = format!("not tried: an earlier notification to this channel failed: {error}");
        for entry in entries {
            // A row whose claim lapsed is its new claimer's to schedule.
            self.store
                .notification_retry(entry.id, entry.attempts, next_at, &why, &self.instance)
                .await?;
        }
        Ok(())
    }

    /// One paced, time-bounded try at sending `unit` through `channel` (one
    /// message, or one grouped message), judged after its earlier tries and by
    /// its age.
    pub(super) async fn attempt(
        &self,
        name: &str,
        channel: &Channel,
        unit: &Unit<'_>,
    ) -> Disposition {
        // A channel keeps its pace; only its own rows wait.
        self.pace(name).await;
        self.try_send(channel, unit).await
    }

    /// [`Outbox::attempt`] without the pacing.
    async fn try_send(&self, channel: &Channel, unit: &Unit<'_>) -> Disposition {
        let send = async {
            match unit.notifications {
                [one] => channel.send(one, unit.key).await,
                many => channel.send_group(many, unit.key).await,
            }
        };
        let result = tokio::time::timeout(self.send_timeout, send)
            .await
            .unwrap_or_else(|_| {
                Err(SendError::transient(format!(
                    "no answer within {:?}",
                    self.send_timeout
                )))
            });
        let jitter = rand::random::<f64>();
        let delay = backoff(unit.attempts + 1, self.backoff_base, self.backoff_cap);
        let age = (Utc::now() - unit.created_at).to_std().unwrap_or_default();
        let limits = Limits {
            age,
            max_age: self.max_age,
            delay,
            jitter,
        };
        decide(unit.attempts, result, &limits)
    }

    /// Waits until channel `name` may send again, then books the send.
    async fn pace(&self, name: &str) {
        let Some(interval) = self.pacing.get(name).filter(|i| !i.is_zero()) else {
            return;
        };
        let next = {
            let mut last = self
                .last_sent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = tokio::time::Instant::now();
            let next = last.get(name).map_or(now, |at| (*at + *interval).max(now));
            last.insert(name.to_string(), next);
            next
        };
        tokio::time::sleep_until(next).await;
    }

    /// Counts an attempt's outcome in `keeper_notifications_total` and, for a
    /// configured channel, in its health.
    pub(super) fn tally(&self, channel: &str, disposition: &Disposition) {
        match disposition {
            Disposition::Sent => {
                self.health.succeeded(channel);
                self.count(channel, "sent");
            }
            Disposition::Retry { error, .. } => {
                self.health.failed(channel, error, Utc::now());
                self.count(channel, "retry");
            }
            Disposition::Failed { error, .. } => {
                if self.channels.contains_key(channel) {
                    self.health.failed(channel, error, Utc::now());
                }
                self.count(channel, "failed");
            }
        }
    }

    fn count(&self, channel: &str, outcome: &str) {
        self.sent.with_label_values(&[channel, outcome]).inc();
    }
}
