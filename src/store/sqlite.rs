//! The SQLite backend of the store: one embedded file (`sqlite://keeper.db`,
//! created on first use, WAL) or `sqlite::memory:`. Owns the SQL for SQLite
//! only; the contract is in `store/mod.rs`. Timestamps are INTEGER unix
//! milliseconds (UTC), enums their lowercase names, notifications JSON text.
//!
//! A file database has two pools: the engine's, the writer's and the outbox's
//! connections, and a small read-only pool for API reads ([`SqliteStore::reader`]),
//! so requests cannot take the connections commits wait for (WAL: readers
//! never block the writer).

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{FromRow, QueryBuilder, Row, Sqlite, SqliteConnection};

use super::{
    BadRow, Doing, DueNotifications, HeartbeatRow, IncidentFilter, SampleRow, StoreError,
    decode_attempts, decode_color, decode_each, decode_labels, decode_notification,
    decode_severity, encode_labels, encode_notification, uptime_map,
};
use crate::core::{OutboxEntry, Outgoing};
use crate::incident::{Incident, IncidentChange, IncidentEvent, NewSilence, Silence, event_of};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Samples per multi-row INSERT: 8 parameters each, far below SQLite's 32,766,
/// and large enough that the per-statement round trip no longer matters.
const ROWS_PER_INSERT: usize = 500;

/// How long a writer waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read-only connections for API reads (a file database only).
const READ_CONNECTIONS: u32 = 2;

const INCIDENT_COLUMNS: &str = "id, check_name, severity, color, message, started_at, acknowledged_at, resolved_at, notified_at";

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Read-only connections for [`SqliteStore::reader`]; the same pool as
    /// `pool` for a memory database, which lives in one connection.
    reads: SqlitePool,
}

#[derive(sqlx::FromRow)]
struct SampleRecord {
    check_name: String,
    at: i64,
    duration_ms: f64,
    up: bool,
    color: String,
    status_code: Option<i64>,
    latency_ms: f64,
    message: String,
    metrics: Option<String>,
}

#[derive(sqlx::FromRow)]
struct IncidentRecord {
    id: i64,
    check_name: String,
    severity: String,
    color: String,
    message: String,
    started_at: i64,
    acknowledged_at: Option<i64>,
    resolved_at: Option<i64>,
    notified_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct EventRecord {
    at: i64,
    kind: String,
    detail: String,
}

#[derive(sqlx::FromRow)]
struct OutboxRecord {
    id: i64,
    channel: String,
    payload: String,
    attempts: i64,
    batch_at: Option<i64>,
    created_at: i64,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut options = SqliteConnectOptions::from_str(url)
            .doing("parsing the sqlite url")?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        if !in_memory {
            options = options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
        }
        // A memory database lives as long as its connection: keep exactly one, forever.
        let pool = if in_memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(4)
        };
        let pool = pool
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .doing("opening the sqlite database")?;
        let reads = if in_memory {
            pool.clone()
        } else {
            // Lazily: the file exists now, but its tables only after migrating.
            SqlitePoolOptions::new()
                .max_connections(READ_CONNECTIONS)
                .acquire_timeout(Duration::from_secs(5))
                .connect_lazy_with(options.read_only(true))
        };
        Ok(SqliteStore { pool, reads })
    }

    /// The same database on the read-only pool: for API reads.
    pub fn reader(&self) -> SqliteStore {
        SqliteStore {
            pool: self.reads.clone(),
            reads: self.reads.clone(),
        }
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .doing("pinging the sqlite database")?;
        Ok(())
    }

    pub async fn delete_samples_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM samples WHERE at < ?")
            .bind(cutoff.timestamp_millis())
            .execute(&self.pool)
            .await
            .doing("deleting samples past retention")?;
        Ok(done.rows_affected())
    }

    /// Multi-row INSERTs of [`ROWS_PER_INSERT`] rows, all in one transaction.
    pub async fn insert_samples(&self, rows: &[SampleRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .doing("starting a transaction to insert samples")?;
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO samples \
                 (check_name, at, duration_ms, up, color, status_code, latency_ms, message, \
                  metrics) ",
            );
            insert.push_values(chunk, |mut row, s| {
                row.push_bind(s.check.clone())
                    .push_bind(s.at.timestamp_millis())
                    .push_bind(s.duration_ms)
                    .push_bind(s.up)
                    .push_bind(s.color.as_str())
                    .push_bind(s.status_code.map(i64::from))
                    .push_bind(s.latency_ms)
                    .push_bind(s.message.clone())
                    .push_bind(s.metrics.clone());
            });
            insert
                .build()
                .execute(&mut *tx)
                .await
                .doing("inserting samples")?;
        }
        tx.commit().await.doing("committing samples")?;
        Ok(())
    }

    pub async fn samples(
        &self,
        check: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<SampleRow>, StoreError> {
        let records: Vec<SampleRecord> = sqlx::query_as(
            "SELECT check_name, at, duration_ms, up, color, status_code, latency_ms, message, \
                    metrics \
             FROM samples WHERE check_name = ? AND at >= ? ORDER BY at LIMIT ?",
        )
        .bind(check)
        .bind(since.timestamp_millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .doing("reading a check's samples")?;
        records.into_iter().map(SampleRecord::into_row).collect()
    }

    pub async fn incident_channels(&self, id: i64) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT DISTINCT channel FROM outbox WHERE incident_id = ? ORDER BY channel",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .doing("reading the channels an incident went to")
    }

    pub async fn latest_samples(&self) -> Result<Vec<SampleRow>, StoreError> {
        let rows: Vec<SqliteRow> = sqlx::query(
            "SELECT s.check_name, s.at, s.duration_ms, s.up, s.color, s.status_code, \
                    s.latency_ms, s.message, s.metrics \
             FROM (SELECT DISTINCT check_name FROM samples) c \
             JOIN samples s ON s.rowid = ( \
                 SELECT rowid FROM samples \
                 WHERE check_name = c.check_name ORDER BY at DESC LIMIT 1) \
             ORDER BY s.check_name",
        )
        .fetch_all(&self.pool)
        .await
        .doing("reading the latest sample of each check")?;
        Ok(decode_each("samples", rows, check_key, |row| {
            SampleRecord::from_row(row)?.into_row()
        }))
    }

    pub async fn uptime_pct(
        &self,
        check: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<f64>, StoreError> {
        let (total, up): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(up), 0) FROM samples \
             WHERE check_name = ? AND at >= ?",
        )
        .bind(check)
        .bind(since.timestamp_millis())
        .fetch_one(&self.pool)
        .await
        .doing("computing uptime")?;
        Ok((total > 0).then(|| 100.0 * up as f64 / total as f64))
    }

    pub async fn uptime_buckets(
        &self,
        since: DateTime<Utc>,
        hourly_since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64, i64, i64)>, StoreError> {
        sqlx::query_as(
            "SELECT check_name, \
                    CASE WHEN at >= ?2 THEN at / 3600000 ELSE (at / 86400000) * 24 END AS hour, \
                    COUNT(*), COALESCE(SUM(up), 0) \
             FROM samples WHERE at >= ?1 GROUP BY check_name, hour",
        )
        .bind(since.timestamp_millis())
        .bind(hourly_since.timestamp_millis())
        .fetch_all(&self.pool)
        .await
        .doing("counting samples per check and hour for uptime")
    }

    pub async fn uptime_by_check(
        &self,
        since: DateTime<Utc>,
    ) -> Result<HashMap<String, f64>, StoreError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT check_name, COUNT(*), COALESCE(SUM(up), 0) FROM samples \
             WHERE at >= ? GROUP BY check_name",
        )
        .bind(since.timestamp_millis())
        .fetch_all(&self.pool)
        .await
        .doing("computing uptime per check")?;
        Ok(uptime_map(rows))
    }

    pub async fn record(
        &self,
        change: IncidentChange,
        outgoing: Vec<Outgoing>,
    ) -> Result<Incident, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .doing("starting a transaction to record an incident change")?;
        let (record, at) = apply_change(&mut tx, change).await?;
        for out in outgoing {
            let mut notification = out.notification;
            notification.incident = record.id;
            sqlx::query(
                "INSERT INTO outbox \
                 (incident_id, channel, payload, next_attempt_at, created_at, batch_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(record.id)
            .bind(out.channel)
            .bind(encode_notification(&notification)?)
            .bind(out.batch_at.map_or(at, |b| b.timestamp_millis().max(at)))
            .bind(at)
            .bind(out.batch_at.map(|b| b.timestamp_millis()))
            .execute(&mut *tx)
            .await
            .doing("queueing a notification in the outbox")?;
        }
        tx.commit().await.doing("committing an incident change")?;
        record.into_incident()
    }

    pub async fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        let rows: Vec<SqliteRow> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE resolved_at IS NULL \
             ORDER BY started_at, id"
        )))
        .fetch_all(&self.pool)
        .await
        .doing("reading open incidents")?;
        Ok(decode_each("incidents", rows, id_key, |row| {
            IncidentRecord::from_row(row)?.into_incident()
        }))
    }

    pub async fn incidents(
        &self,
        filter: IncidentFilter,
        limit: u32,
    ) -> Result<Vec<Incident>, StoreError> {
        let records: Vec<IncidentRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE {} \
             ORDER BY started_at DESC, id DESC LIMIT ?",
            filter.condition()
        )))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .doing("listing incidents")?;
        records
            .into_iter()
            .map(IncidentRecord::into_incident)
            .collect()
    }

    pub async fn create_silence(&self, new: &NewSilence) -> Result<Silence, StoreError> {
        let record: SilenceRecord = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO silences (check_name, labels, starts_at, ends_at, comment, created_by) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING {SILENCE_COLUMNS}"
        )))
        .bind(&new.check)
        .bind(encode_labels(&new.labels)?)
        .bind(new.starts_at.timestamp_millis())
        .bind(new.ends_at.timestamp_millis())
        .bind(&new.comment)
        .bind(&new.created_by)
        .fetch_one(&self.pool)
        .await
        .doing("creating a silence")?;
        record.into_silence()
    }

    pub async fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError> {
        let rows: Vec<SqliteRow> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SILENCE_COLUMNS} FROM silences WHERE ends_at > ? ORDER BY ends_at, id"
        )))
        .bind(now.timestamp_millis())
        .fetch_all(&self.pool)
        .await
        .doing("reading silences")?;
        Ok(decode_each("silences", rows, id_key, |row| {
            SilenceRecord::from_row(row)?.into_silence()
        }))
    }

    pub async fn expire_silence(&self, id: i64, at: DateTime<Utc>) -> Result<Silence, StoreError> {
        let record: Option<SilenceRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE silences SET ends_at = CASE WHEN ends_at > ?1 THEN ?1 ELSE ends_at END \
             WHERE id = ?2 RETURNING {SILENCE_COLUMNS}"
        )))
        .bind(at.timestamp_millis())
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .doing("ending a silence")?;
        record.ok_or(StoreError::NotFound(id))?.into_silence()
    }

    pub async fn incident(&self, id: i64) -> Result<Incident, StoreError> {
        let record: Option<IncidentRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .doing("reading an incident")?;
        record.ok_or(StoreError::NotFound(id))?.into_incident()
    }

    pub async fn events_of(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, Vec<IncidentEvent>>, StoreError> {
        let mut out: HashMap<i64, Vec<IncidentEvent>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT incident_id, at, kind, detail FROM incident_events WHERE incident_id IN (",
        );
        let mut list = query.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        query.push(") ORDER BY incident_id, at, id");
        let records: Vec<(i64, i64, String, String)> = query
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .doing("reading the events of listed incidents")?;
        for (id, at, kind, detail) in records {
            out.entry(id).or_default().push(IncidentEvent {
                at: from_millis(at, "incident_events.at")?,
                kind,
                detail,
            });
        }
        Ok(out)
    }

    pub async fn incident_events(&self, id: i64) -> Result<Vec<IncidentEvent>, StoreError> {
        let records: Vec<EventRecord> = sqlx::query_as(
            "SELECT at, kind, detail FROM incident_events WHERE incident_id = ? \
             ORDER BY at, id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .doing("reading an incident's events")?;
        records
            .into_iter()
            .map(|r| {
                Ok(IncidentEvent {
                    at: from_millis(r.at, "incident_events.at")?,
                    kind: r.kind,
                    detail: r.detail,
                })
            })
            .collect()
    }

    pub async fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<DueNotifications, StoreError> {
        let rows: Vec<SqliteRow> = sqlx::query(
            "SELECT id, channel, payload, attempts, batch_at, created_at FROM outbox \
             WHERE status = 'pending' AND next_attempt_at <= ? \
             ORDER BY id LIMIT ?",
        )
        .bind(now.timestamp_millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .doing("reading due notifications")?;
        let mut due = DueNotifications::default();
        for row in rows {
            match OutboxRecord::from_row(&row)
                .map_err(StoreError::from)
                .and_then(OutboxRecord::into_entry)
            {
                Ok(entry) => due.entries.push(entry),
                Err(e) => due.bad.push(BadRow {
                    id: row.try_get("id").unwrap_or_default(),
                    channel: row.try_get("channel").unwrap_or_default(),
                    attempts: row
                        .try_get::<i64, _>("attempts")
                        .ok()
                        .and_then(|a| u32::try_from(a).ok())
                        .unwrap_or(0),
                    reason: e.to_string(),
                }),
            }
        }
        Ok(due)
    }

    pub async fn notification_sent(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE outbox SET status = 'sent', sent_at = ? WHERE id = ?")
            .bind(at.timestamp_millis())
            .bind(id)
            .execute(&self.pool)
            .await
            .doing("marking a notification sent")?;
        outbox_row_updated(id, done.rows_affected())
    }

    pub async fn notification_retry(
        &self,
        id: i64,
        attempts: u32,
        next_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
        )
        .bind(i64::from(attempts))
        .bind(next_at.timestamp_millis())
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await
        .doing("scheduling a notification retry")?;
        outbox_row_updated(id, done.rows_affected())
    }

    pub async fn notification_failed(
        &self,
        id: i64,
        attempts: u32,
        error: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE outbox SET status = 'failed', attempts = ?, last_error = ? WHERE id = ?",
        )
        .bind(i64::from(attempts))
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await
        .doing("marking a notification failed")?;
        outbox_row_updated(id, done.rows_affected())
    }

    pub async fn heartbeats(&self) -> Result<Vec<HeartbeatRow>, StoreError> {
        let rows: Vec<SqliteRow> = sqlx::query(
            "SELECT check_name, token, first_seen, last_success, last_start, last_fail, last_run_s \
             FROM heartbeats",
        )
        .fetch_all(&self.pool)
        .await
        .doing("reading heartbeat states")?;
        Ok(decode_each("heartbeats", rows, check_key, |row| {
            HeartbeatRecord::from_row(row)?.into_row()
        }))
    }

    /// One upsert; `later(a, b)` is the later of two nullable timestamps.
    pub async fn save_heartbeat(&self, row: &HeartbeatRow) -> Result<Option<String>, StoreError> {
        let ms = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_millis());
        sqlx::query_scalar(
            "INSERT INTO heartbeats \
             (check_name, token, first_seen, last_success, last_start, last_fail, last_run_s) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (check_name) DO UPDATE SET \
             token = COALESCE(heartbeats.token, excluded.token), \
             first_seen = MIN(heartbeats.first_seen, excluded.first_seen), \
             last_run_s = CASE WHEN excluded.last_success >= COALESCE(heartbeats.last_success, excluded.last_success) \
                 THEN excluded.last_run_s ELSE heartbeats.last_run_s END, \
             last_success = MAX(COALESCE(heartbeats.last_success, excluded.last_success), COALESCE(excluded.last_success, heartbeats.last_success)), \
             last_start = MAX(COALESCE(heartbeats.last_start, excluded.last_start), COALESCE(excluded.last_start, heartbeats.last_start)), \
             last_fail = MAX(COALESCE(heartbeats.last_fail, excluded.last_fail), COALESCE(excluded.last_fail, heartbeats.last_fail)) \
             RETURNING token",
        )
        .bind(&row.check)
        .bind(&row.token)
        .bind(row.first_seen.timestamp_millis())
        .bind(ms(row.last_success))
        .bind(ms(row.last_start))
        .bind(ms(row.last_fail))
        .bind(row.last_run_s)
        .fetch_one(&self.pool)
        .await
        .doing("saving a heartbeat state")
    }
}

/// Applies the incident part of a change and appends its event. Returns the
/// incident as it now is and the change's time.
async fn apply_change(
    tx: &mut SqliteConnection,
    change: IncidentChange,
) -> Result<(IncidentRecord, i64), StoreError> {
    let (kind, detail) = event_of(&change);
    let (record, kind, detail, at) = match change {
        IncidentChange::Open {
            check,
            severity,
            color,
            message,
            at,
            notify,
        } => {
            let inserted: Result<IncidentRecord, sqlx::Error> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO incidents \
                     (check_name, severity, color, message, started_at, notified_at) \
                     VALUES (?, ?, ?, ?, ?, ?) RETURNING {INCIDENT_COLUMNS}"
                )))
                .bind(&check)
                .bind(severity.as_str())
                .bind(color.as_str())
                .bind(&message)
                .bind(at.timestamp_millis())
                .bind(notify.then_some(at.timestamp_millis()))
                .fetch_one(&mut *tx)
                .await;
            let record = match inserted {
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Err(StoreError::AlreadyOpen(check));
                }
                other => other.doing("opening an incident")?,
            };
            (record, kind, detail, at)
        }
        IncidentChange::Escalate {
            id,
            severity,
            color,
            message,
            at,
        } => {
            let record: Option<IncidentRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE incidents SET severity = ?, color = ?, message = ? \
                 WHERE id = ? AND resolved_at IS NULL RETURNING {INCIDENT_COLUMNS}"
            )))
            .bind(severity.as_str())
            .bind(color.as_str())
            .bind(&message)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .doing("escalating an incident")?;
            (record.ok_or(StoreError::NotFound(id))?, kind, detail, at)
        }
        IncidentChange::Resolve { id, at, .. } => {
            let record: Option<IncidentRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE incidents SET resolved_at = ? \
                 WHERE id = ? AND resolved_at IS NULL RETURNING {INCIDENT_COLUMNS}"
            )))
            .bind(at.timestamp_millis())
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .doing("resolving an incident")?;
            (record.ok_or(StoreError::NotFound(id))?, kind, detail, at)
        }
        IncidentChange::Acknowledge { id, at, .. } => {
            let record: Option<IncidentRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE incidents SET acknowledged_at = ? \
                 WHERE id = ? AND resolved_at IS NULL AND acknowledged_at IS NULL \
                 RETURNING {INCIDENT_COLUMNS}"
            )))
            .bind(at.timestamp_millis())
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .doing("acknowledging an incident")?;
            (record.ok_or(StoreError::NotFound(id))?, kind, detail, at)
        }
        IncidentChange::Remind { id, at } => {
            let record: Option<IncidentRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ? AND resolved_at IS NULL"
            )))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .doing("reading an incident to remind of")?;
            (record.ok_or(StoreError::NotFound(id))?, kind, detail, at)
        }
        IncidentChange::Notify { id, at, .. } => {
            let record: Option<IncidentRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE incidents SET notified_at = ? \
                 WHERE id = ? AND notified_at IS NULL \
                 RETURNING {INCIDENT_COLUMNS}"
            )))
            .bind(at.timestamp_millis())
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .doing("notifying a held-back incident")?;
            (record.ok_or(StoreError::NotFound(id))?, kind, detail, at)
        }
    };
    let at = at.timestamp_millis();
    sqlx::query("INSERT INTO incident_events (incident_id, at, kind, detail) VALUES (?, ?, ?, ?)")
        .bind(record.id)
        .bind(at)
        .bind(kind)
        .bind(detail)
        .execute(&mut *tx)
        .await
        .doing("appending an incident event")?;
    Ok((record, at))
}

/// A row's `id`, for logging a row that does not decode.
fn id_key(row: &SqliteRow) -> String {
    row.try_get::<i64, _>("id")
        .map_or_else(|e| format!("(unreadable id: {e})"), |id| id.to_string())
}

/// A row's `check_name`, for logging a row that does not decode.
fn check_key(row: &SqliteRow) -> String {
    row.try_get::<String, _>("check_name")
        .unwrap_or_else(|e| format!("(unreadable check_name: {e})"))
}

impl OutboxRecord {
    fn into_entry(self) -> Result<OutboxEntry, StoreError> {
        Ok(OutboxEntry {
            notification: decode_notification(&self.payload, self.id)?,
            attempts: decode_attempts(self.attempts, self.id)?,
            batch_at: self
                .batch_at
                .map(|b| from_millis(b, "outbox.batch_at"))
                .transpose()?,
            created_at: from_millis(self.created_at, "outbox.created_at")?,
            id: self.id,
            channel: self.channel,
        })
    }
}

fn outbox_row_updated(id: i64, rows: u64) -> Result<(), StoreError> {
    if rows == 0 {
        return Err(StoreError::Corrupt(format!(
            "outbox row {id} does not exist"
        )));
    }
    Ok(())
}

fn from_millis(ms: i64, what: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: timestamp {ms} out of range")))
}

impl SampleRecord {
    fn into_row(self) -> Result<SampleRow, StoreError> {
        let status_code = match self.status_code {
            None => None,
            Some(code) => Some(u16::try_from(code).map_err(|_| {
                StoreError::Corrupt(format!("samples.status_code: {code} is not an HTTP status"))
            })?),
        };
        Ok(SampleRow {
            at: from_millis(self.at, "samples.at")?,
            color: decode_color(&self.color, "samples.color")?,
            check: self.check_name.into(),
            duration_ms: self.duration_ms,
            up: self.up,
            status_code,
            latency_ms: self.latency_ms,
            message: self.message,
            metrics: self.metrics,
        })
    }
}

impl IncidentRecord {
    fn into_incident(self) -> Result<Incident, StoreError> {
        Ok(Incident {
            id: self.id,
            severity: decode_severity(&self.severity, "incidents.severity")?,
            color: decode_color(&self.color, "incidents.color")?,
            started_at: from_millis(self.started_at, "incidents.started_at")?,
            acknowledged_at: self
                .acknowledged_at
                .map(|t| from_millis(t, "incidents.acknowledged_at"))
                .transpose()?,
            resolved_at: self
                .resolved_at
                .map(|t| from_millis(t, "incidents.resolved_at"))
                .transpose()?,
            notified_at: self
                .notified_at
                .map(|t| from_millis(t, "incidents.notified_at"))
                .transpose()?,
            check: self.check_name,
            message: self.message,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SilenceRecord {
    id: i64,
    check_name: Option<String>,
    labels: String,
    starts_at: i64,
    ends_at: i64,
    comment: String,
    created_by: Option<String>,
}

const SILENCE_COLUMNS: &str = "id, check_name, labels, starts_at, ends_at, comment, created_by";

impl SilenceRecord {
    fn into_silence(self) -> Result<Silence, StoreError> {
        Ok(Silence {
            id: self.id,
            check: self.check_name,
            labels: decode_labels(&self.labels)?,
            starts_at: from_millis(self.starts_at, "silences.starts_at")?,
            ends_at: from_millis(self.ends_at, "silences.ends_at")?,
            comment: self.comment,
            created_by: self.created_by,
        })
    }
}

#[derive(sqlx::FromRow)]
struct HeartbeatRecord {
    check_name: String,
    token: Option<String>,
    first_seen: i64,
    last_success: Option<i64>,
    last_start: Option<i64>,
    last_fail: Option<i64>,
    last_run_s: Option<f64>,
}

impl HeartbeatRecord {
    fn into_row(self) -> Result<HeartbeatRow, StoreError> {
        let at = |ms: Option<i64>, what| ms.map(|ms| from_millis(ms, what)).transpose();
        Ok(HeartbeatRow {
            first_seen: from_millis(self.first_seen, "heartbeats.first_seen")?,
            last_success: at(self.last_success, "heartbeats.last_success")?,
            last_start: at(self.last_start, "heartbeats.last_start")?,
            last_fail: at(self.last_fail, "heartbeats.last_fail")?,
            check: self.check_name,
            token: self.token,
            last_run_s: self.last_run_s,
        })
    }
}
