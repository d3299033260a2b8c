//! The store-less path: notifications about keeper's own storage handed
//! straight to the worker ([`Direct`]) and sent with the same retries, kept
//! in memory meanwhile.

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::Outbox;
use super::send::Unit;
use crate::core::Outgoing;
use crate::notify::retry::Disposition;

/// Hands notifications to the outbox worker to send at once, without the
/// store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Direct(pub(super) mpsc::UnboundedSender<DirectRow>);

/// A notification sent without the store, with what an outbox row would
/// hold: its id (the idempotency key, made once here) and when it was made.
#[derive(Debug)]
pub(super) struct DirectRow {
    key: String,
    created_at: DateTime<Utc>,
    row: Outgoing,
}

impl Direct {
    /// Queues `rows` for sending, each with an id of its own that every
    /// attempt carries; dropped (and logged) when the worker has stopped.
    pub fn send(&self, rows: Vec<Outgoing>) {
        for row in rows {
            let direct = DirectRow {
                key: format!("direct-{:032x}", rand::random::<u128>()),
                created_at: Utc::now(),
                row,
            };
            if self.0.send(direct).is_err() {
                tracing::warn!("outbox stopped; a direct notification is dropped");
            }
        }
    }
}

impl Outbox {
    /// Sends one notification without the store: tried like an outbox row
    /// (backoff, `Retry-After`, `max_age`, one key), kept in memory meanwhile.
    pub(super) async fn deliver_direct(&self, direct: DirectRow) {
        let DirectRow {
            key,
            created_at,
            row,
        } = direct;
        let name = row.channel.as_str();
        let Some(channel) = self.channels.get(name) else {
            tracing::error!(channel = name, "direct notification for an unknown channel");
            return;
        };
        let incident = row.notification.incident;
        let mut attempts = 0;
        loop {
            let sending = Unit {
                notifications: std::slice::from_ref(&row.notification),
                key: &key,
                attempts,
                created_at,
            };
            let disposition = self.attempt(name, channel, &sending).await;
            self.tally(name, &disposition);
            match disposition {
                Disposition::Sent => {
                    tracing::info!(channel = name, check = %row.notification.check, state = %row.notification.state, "direct notification sent");
                    return;
                }
                Disposition::Retry {
                    attempts: tried,
                    delay,
                    error,
                } => {
                    tracing::warn!(channel = name, incident, attempts = tried, retry_in = ?delay, %error, "direct notification failed, will retry");
                    attempts = tried;
                    tokio::time::sleep(delay).await;
                }
                Disposition::Failed {
                    attempts: tried,
                    error,
                } => {
                    tracing::error!(channel = name, incident, attempts = tried, %error, "direct notification given up");
                    return;
                }
            }
        }
    }
}
