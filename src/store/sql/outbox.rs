//! The notification outbox: rows queued with an incident change, claimed when
//! due by one instance's delivery worker, and marked sent, retried or failed
//! by it (which releases the claim). On PostgreSQL several instances share the
//! outbox; the claim makes exactly one of them send each row.

use chrono::{DateTime, Utc};

use super::{Result, Row, Stmt, Tx};
use crate::core::{OutboxEntry, Outgoing};
use crate::store::{BadRow, Claim, DueNotifications, Marked, Store, StoreError};

/// The columns a due row is read with (as [`entry`] decodes them).
const DUE_COLUMNS: &str = "id, channel, payload, attempts, batch_at, created_at";

impl Store {
    /// Pending notifications due at `now` and claimed by no one (or whose
    /// claim has expired), oldest first, at most `limit`: a look at the
    /// outbox that claims nothing. Workers claim with [`Store::claim_notifications`].
    pub async fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<DueNotifications> {
        let sql = format!(
            "SELECT {DUE_COLUMNS} FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1 \
             AND (claimed_until IS NULL OR claimed_until <= {clock}) ORDER BY id LIMIT {limit}",
            clock = self.clock(),
        );
        let rows = self
            .query(sqlx::AssertSqlSafe(sql))
            .time(now)
            .rows("reading due notifications")
            .await?;
        Ok(due(rows))
    }

    /// Claims the notifications due at `now` for `claim.by`, oldest first, at
    /// most `limit`, and returns them: each decoded on its own, so one bad row
    /// stays there.
    ///
    /// A row is claimable when pending, due, and no other instance holds an
    /// unexpired claim on any pending row of its channel (a channel's rows go
    /// out in order, through one instance at a time). Rows claimed earlier by
    /// this very instance are claimable again unless their channel is busy here
    /// (`claim.busy`): such a claim outlived the send that made it (a store
    /// error while marking, or a restart under the same name), and instance
    /// names are unique among live instances. Claim expiry is measured by the
    /// database's clock, so instances' clocks need not agree.
    ///
    /// On PostgreSQL, claims are taken one at a time for the whole cluster (a
    /// transaction-scoped advisory lock): a claimer sees the claims committed
    /// before it, so two instances never split one channel's rows. The rows
    /// themselves are locked `FOR UPDATE SKIP LOCKED`: a row being marked by
    /// its sender is passed over, not waited for.
    pub async fn claim_notifications(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        claim: Claim<'_>,
    ) -> Result<DueNotifications> {
        let busy: Vec<String> = (0..claim.busy.len())
            .map(|n| format!("${}", n + 4))
            .collect();
        let not_busy = match busy.is_empty() {
            true => String::new(),
            false => format!("AND c.channel NOT IN ({}) ", busy.join(", ")),
        };
        let sql = format!(
            "UPDATE outbox SET claimed_by = $2, claimed_until = {until} WHERE id IN (\
             SELECT c.id FROM outbox c \
             WHERE c.status = 'pending' AND c.next_attempt_at <= $1 {not_busy}\
             AND (c.claimed_by IS NULL OR c.claimed_by = $2 OR c.claimed_until <= {clock}) \
             AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.status = 'pending' \
             AND o.channel = c.channel AND o.claimed_by <> $2 AND o.claimed_until > {clock}) \
             ORDER BY c.id LIMIT {limit}{lock}) RETURNING {DUE_COLUMNS}",
            until = self.clock_plus("$3"),
            clock = self.clock(),
            lock = self.pick("", " FOR UPDATE OF c SKIP LOCKED"),
        );
        let rows = match self {
            Store::Sqlite(_) => {
                bind_claim(self.query(sqlx::AssertSqlSafe(sql)), now, &claim)
                    .rows("claiming due notifications")
                    .await?
            }
            Store::Postgres(_) => {
                let mut tx = self.begin("starting to claim due notifications").await?;
                tx.query("SELECT pg_advisory_xact_lock(hashtext('keeper outbox claims'))")
                    .execute("waiting for the outbox's claim lock")
                    .await?;
                let rows = bind_claim(tx.query(sqlx::AssertSqlSafe(sql)), now, &claim)
                    .rows("claiming due notifications")
                    .await?;
                tx.commit("committing a claim on notifications").await?;
                rows
            }
        };
        let mut due = due(rows);
        // RETURNING follows no order.
        due.entries.sort_by_key(|e| e.id);
        due.bad.sort_by_key(|b| b.id);
        Ok(due)
    }

    /// Extends `by`'s claim on rows `ids` by `lease` from now; returns the
    /// ids it still held (the others were taken after their claim expired,
    /// or settled: they are not this worker's to send any more).
    pub async fn renew_claim(
        &self,
        by: &str,
        ids: &[i64],
        lease: std::time::Duration,
    ) -> Result<Vec<i64>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = (0..ids.len()).map(|n| format!("${}", n + 3)).collect();
        let sql = format!(
            "UPDATE outbox SET claimed_until = {until} \
             WHERE claimed_by = $1 AND status = 'pending' AND id IN ({}) RETURNING id",
            list.join(", "),
            until = self.clock_plus("$2"),
        );
        let stmt = self
            .query(sqlx::AssertSqlSafe(sql))
            .bind(by)
            .bind(millis(lease));
        ids.iter()
            .fold(stmt, |stmt, id| stmt.bind(*id))
            .all(
                |row| Ok(row.get("id")?),
                "renewing a claim on notifications",
            )
            .await
    }

    /// Marks a notification delivered by `by`, releasing its claim; it is
    /// never sent again. Written only while the claim is `by`'s.
    pub async fn notification_sent(&self, id: i64, at: DateTime<Utc>, by: &str) -> Result<Marked> {
        let sent = self.query(
            "UPDATE outbox SET status = 'sent', sent_at = $2, claimed_by = NULL, \
             claimed_until = NULL WHERE id = $1 AND claimed_by = $3",
        );
        let done = sent
            .bind(id)
            .time(at)
            .bind(by)
            .execute("marking a notification sent")
            .await?;
        self.marked(id, done).await
    }

    /// Records `by`'s failed attempt and when to try again, releasing its
    /// claim. Written only while the claim is `by`'s.
    pub async fn notification_retry(
        &self,
        id: i64,
        attempts: u32,
        next_at: DateTime<Utc>,
        error: &str,
        by: &str,
    ) -> Result<Marked> {
        let done = self
            .query(
                "UPDATE outbox SET attempts = $2, last_error = $3, next_attempt_at = $4, \
                 claimed_by = NULL, claimed_until = NULL WHERE id = $1 AND claimed_by = $5",
            )
            .bind(id)
            .bind(attempts_column(attempts))
            .bind(error)
            .time(next_at)
            .bind(by)
            .execute("scheduling a notification retry")
            .await?;
        self.marked(id, done).await
    }

    /// Gives up on a notification: it stays in the outbox marked failed, its
    /// claim released. Written only while the claim is `by`'s.
    pub async fn notification_failed(
        &self,
        id: i64,
        attempts: u32,
        error: &str,
        by: &str,
    ) -> Result<Marked> {
        let done = self
            .query(
                "UPDATE outbox SET status = 'failed', attempts = $2, last_error = $3, \
                 claimed_by = NULL, claimed_until = NULL WHERE id = $1 AND claimed_by = $4",
            )
            .bind(id)
            .bind(attempts_column(attempts))
            .bind(error)
            .bind(by)
            .execute("marking a notification failed")
            .await?;
        self.marked(id, done).await
    }

    /// What marking row `id` did, `rows` being the rows it changed: none
    /// means the claim was lost, or the row does not exist (an error).
    async fn marked(&self, id: i64, rows: u64) -> Result<Marked> {
        if rows > 0 {
            return Ok(Marked::Recorded);
        }
        let exists = self
            .query("SELECT id FROM outbox WHERE id = $1")
            .bind(id)
            .row("reading an outbox row whose claim was lost")
            .await?;
        match exists {
            Some(_) => Ok(Marked::ClaimLost),
            None => Err(StoreError::Corrupt(format!(
                "outbox row {id} does not exist"
            ))),
        }
    }

    /// The database's clock, as the backend stores a timestamp: claims
    /// expire by it, whichever instance's clock is off.
    fn clock(&self) -> &'static str {
        self.pick(
            "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
            "now()",
        )
    }

    /// The database's clock plus the milliseconds in parameter `param`.
    fn clock_plus(&self, param: &str) -> String {
        match self {
            Store::Sqlite(_) => format!("({} + {param})", self.clock()),
            Store::Postgres(_) => format!("(now() + {param} * interval '1 millisecond')"),
        }
    }
}

/// Binds a claim's arguments: `$1` now, `$2` the claimer, `$3` the lease
/// (ms), `$4…` the busy channels. The limit is written into the statement:
/// SQLite prepares a statement with `LIMIT ?` anew each time it is bound,
/// which was most of the cost of the outbox's poll every second (callgrind).
fn bind_claim<'c>(stmt: Stmt<'c>, now: DateTime<Utc>, claim: &Claim<'_>) -> Stmt<'c> {
    let stmt = stmt.time(now).bind(claim.by).bind(millis(claim.lease));
    claim
        .busy
        .iter()
        .fold(stmt, |stmt, c| stmt.bind(c.as_str()))
}

/// A claim's lease in whole milliseconds (a BIGINT).
fn millis(lease: std::time::Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

/// Due rows, each decoded on its own.
fn due(rows: Vec<Row>) -> DueNotifications {
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
    due
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
