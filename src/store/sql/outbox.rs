//! The notification outbox: rows queued with an incident change, read when
//! due, and marked sent, retried or failed by the delivery worker.

use chrono::{DateTime, Utc};

use super::{Result, Row, Tx};
use crate::core::{OutboxEntry, Outgoing};
use crate::store::{BadRow, DueNotifications, Store, StoreError};

impl Store {
    /// Pending notifications due at `now`, oldest first, at most `limit`
    /// together: each decoded on its own, so one bad row stays there.
    pub async fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<DueNotifications> {
        let rows = self
            .query(
                "SELECT id, channel, payload, attempts, batch_at, created_at FROM outbox \
                 WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT $2",
            )
            .time(now)
            .bind(i64::from(limit))
            .rows("reading due notifications")
            .await?;
        let mut due = DueNotifications::default();
        for row in rows {
            match entry(&row) {
                Ok(entry) => due.entries.push(entry),
                Err(e) => due.bad.push(BadRow {
                    id: row.get("id").unwrap_or_default(),
                    channel: row.get("channel").unwrap_or_default(),
                    attempts: row
                        .get::<i32>("attempts")
                        .map_or(0, |a| a.try_into().unwrap_or(0)),
                    reason: e.to_string(),
                }),
            }
        }
        Ok(due)
    }

    /// Marks a notification delivered; it is never sent again.
    pub async fn notification_sent(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        let sent = self.query("UPDATE outbox SET status = 'sent', sent_at = $2 WHERE id = $1");
        let done = sent
            .bind(id)
            .time(at)
            .execute("marking a notification sent")
            .await?;
        updated(id, done)
    }

    /// Records a failed attempt and when to try again.
    pub async fn notification_retry(
        &self,
        id: i64,
        attempts: u32,
        next_at: DateTime<Utc>,
        error: &str,
    ) -> Result<()> {
        let done = self
            .query("UPDATE outbox SET attempts = $2, last_error = $3, next_attempt_at = $4 WHERE id = $1")
            .bind(id)
            .bind(attempts_column(attempts))
            .bind(error)
            .time(next_at)
            .execute("scheduling a notification retry")
            .await?;
        updated(id, done)
    }

    /// Gives up on a notification: it stays in the outbox marked failed.
    pub async fn notification_failed(&self, id: i64, attempts: u32, error: &str) -> Result<()> {
        let done = self
            .query(
                "UPDATE outbox SET status = 'failed', attempts = $2, last_error = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(attempts_column(attempts))
            .bind(error)
            .execute("marking a notification failed")
            .await?;
        updated(id, done)
    }
}

/// Queues `out` for incident `incident`, changed at `at`: due at once, or
/// when its batch closes (never before it was queued).
pub(super) async fn queue(
    tx: &mut Tx,
    incident: i64,
    at: DateTime<Utc>,
    out: Outgoing,
) -> Result<()> {
    let mut notification = out.notification;
    notification.incident = incident;
    let payload = serde_json::to_string(&notification)
        .map_err(|e| StoreError::Corrupt(format!("encoding a notification as JSON: {e}")))?;
    tx.query(
        "INSERT INTO outbox (incident_id, channel, payload, next_attempt_at, created_at, batch_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(incident)
    .bind(out.channel)
    .bind(payload)
    .time(out.batch_at.map_or(at, |batch| batch.max(at)))
    .time(at)
    .time(out.batch_at)
    .execute("queueing a notification in the outbox")
    .await?;
    Ok(())
}

/// `attempts` is an INTEGER column; a count past i32::MAX is clamped, not an error.
fn attempts_column(attempts: u32) -> i32 {
    i32::try_from(attempts).unwrap_or(i32::MAX)
}

fn updated(id: i64, rows: u64) -> Result<()> {
    match rows {
        0 => Err(StoreError::Corrupt(format!(
            "outbox row {id} does not exist"
        ))),
        _ => Ok(()),
    }
}

fn entry(row: &Row) -> Result<OutboxEntry> {
    let id = row.get("id")?;
    let attempts: i32 = row.get("attempts")?;
    Ok(OutboxEntry {
        notification: row.text("outbox.payload", |text| serde_json::from_str(text))?,
        attempts: u32::try_from(attempts)
            .map_err(|_| StoreError::Corrupt(format!("outbox row {id}: attempts {attempts}")))?,
        batch_at: row.time("outbox.batch_at")?,
        created_at: row.time("outbox.created_at")?,
        channel: row.get("channel")?,
        id,
    })
}
