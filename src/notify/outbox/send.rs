//! Sending one channel's due rows and recording what became of each: rows
//! sharing a grouping window go out as one message, every try is paced,
//! time-bounded and judged by [`crate::notify::retry`], and its disposition is
//! written to the store, the counter, the channel's health and the log.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Outbox, StepReport};
use crate::core::{Notification, OutboxEntry};
use crate::notify::retry::{Disposition, Limits, backoff, decide};
use crate::notify::{Channel, SendError, policy};
use crate::store::{BadRow, StoreError};

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

impl Outbox {
    /// Sends one channel's rows in order, then releases the channel.
    pub(super) async fn deliver_group(
        &self,
        channel: String,
        entries: Vec<OutboxEntry>,
    ) -> (StepReport, Option<StoreError>) {
        let result = self.deliver_in_order(&channel, &entries).await;
        self.busy.lock().await.remove(&channel);
        result
    }

    async fn deliver_in_order(
        &self,
        name: &str,
        entries: &[OutboxEntry],
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
        for (i, unit) in units.iter().enumerate() {
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
            let disposition = self.attempt(name, channel, &sending).await;
            let retry = match &disposition {
                Disposition::Retry { delay, error, .. } => Some((*delay, error.clone())),
                _ => None,
            };
            for entry in unit {
                if let Err(e) = self.mark(entry, disposition.clone(), &mut report).await {
                    return (report, Some(e));
                }
            }
            // The channel is failing: the rest of its rows wait with this one.
            if let Some((delay, error)) = retry {
                let rest: Vec<OutboxEntry> = units[i + 1..]
                    .iter()
                    .flat_map(|u| u.iter().map(|e| (*e).clone()))
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

    /// Records a disposition in the store, the counter and the log.
    async fn mark(
        &self,
        entry: &OutboxEntry,
        disposition: Disposition,
        report: &mut StepReport,
    ) -> Result<(), StoreError> {
        let channel = entry.channel.as_str();
        let incident = entry.notification.incident;
        self.tally(channel, &disposition);
        match disposition {
            Disposition::Sent => {
                self.store.notification_sent(entry.id, Utc::now()).await?;
                report.sent += 1;
                tracing::debug!(channel, incident, state = %entry.notification.state, "notification sent");
            }
            Disposition::Retry {
                attempts,
                delay,
                error,
            } => {
                let next_at = Utc::now() + delay;
                self.store
                    .notification_retry(entry.id, attempts, next_at, &error)
                    .await?;
                report.retried += 1;
                tracing::warn!(channel, incident, attempts, retry_in = ?delay, %error, "notification failed, will retry");
            }
            Disposition::Failed { attempts, error } => {
                self.store
                    .notification_failed(entry.id, attempts, &error)
                    .await?;
                report.failed += 1;
                tracing::error!(channel, incident, attempts, %error, "notification given up");
            }
        }
        Ok(())
    }

    /// Fails a row the store could not decode, with the reason: it can never
    /// be sent, and must not hold up the others.
    pub(super) async fn fail_bad_row(&self, row: BadRow) -> Result<(), StoreError> {
        let error = format!("undecodable outbox row: {}", row.reason);
        self.store
            .notification_failed(row.id, row.attempts, &error)
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
            self.store
                .notification_retry(entry.id, entry.attempts, next_at, &why)
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
