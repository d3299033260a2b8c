//! What people are told ([`Notification`], keeper's webhook JSON, which
//! every channel renders from) and how it waits in the outbox.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Color, Severity};

/// What happened to an incident, as `state` in the webhook JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Opened,
    Escalated,
    Reminder,
    Acknowledged,
    Resolved,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Opened => "opened",
            EventKind::Escalated => "escalated",
            EventKind::Reminder => "reminder",
            EventKind::Acknowledged => "acknowledged",
            EventKind::Resolved => "resolved",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One notification: keeper's webhook JSON, and what every channel renders from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub incident: i64,
    pub check: String,
    pub state: EventKind,
    pub severity: Severity,
    pub color: Color,
    pub message: String,
    pub labels: BTreeMap<String, String>,
    pub started_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
    /// Link to the incident, when `server.public_url` is set.
    pub url: Option<String>,
    /// How long the incident lasted, on `resolved`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<i64>,
}

/// A notification to put in the outbox with an incident change. For
/// an opening incident change the store fills in `notification.incident` with the new id.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    pub channel: String,
    pub notification: Notification,
    /// With a route's `group_wait`: when the channel's window closes. Every
    /// notification of a channel with the same `batch_at` goes out as one
    /// message then. `None`: on its own, at once.
    pub batch_at: Option<DateTime<Utc>>,
}

/// A notification waiting in the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxEntry {
    pub id: i64,
    pub channel: String,
    pub notification: Notification,
    /// Sends tried so far.
    pub attempts: u32,
    /// The batch it goes out in (see [`Outgoing::batch_at`]).
    pub batch_at: Option<DateTime<Utc>>,
    /// When it was queued: retries end `delivery.max_age` after it.
    pub created_at: DateTime<Utc>,
}
