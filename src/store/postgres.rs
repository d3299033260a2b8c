//! The PostgreSQL backend of the store, for production and for several keeper
//! instances sharing one database. Owns the SQL for PostgreSQL only; the
//! contract is in `store/mod.rs`. Samples go in with one
//! `INSERT … SELECT FROM UNNEST(arrays)` per batch.
//!
//! Two pools: the engine's, the writer's and the outbox's connections, and a
//! small read-only pool for API reads ([`PgStore::reader`]) with a shorter
//! `statement_timeout`. Every connection asks the server for a
//! `statement_timeout`, TCP keepalives and an idle-in-transaction timeout (see
//! [`PgLimits`]), so a statement or a transaction left behind by a stalled
//! client ends on the server.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{FromRow, Row};

use super::{
    BadRow, Doing, DueNotifications, HeartbeatRow, IncidentFilter, SampleRow, StoreError,
    decode_attempts, decode_color, decode_each, decode_labels, decode_notification,
    decode_severity, encode_labels, encode_notification, uptime_map,
};
use crate::core::{OutboxEntry, Outgoing};
use crate::incident::{Incident, IncidentChange, IncidentEvent, NewSilence, Silence, event_of};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Samples per chunk sent to `COPY`; a batch is one COPY in one transaction.
const ROWS_PER_CHUNK: usize = 10_000;

/// A slow or unreachable database fails callers after this, never hangs them.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections for API reads.
const READ_CONNECTIONS: u32 = 3;

/// TCP keepalive asked of the server (seconds): idle before the first probe,
/// between probes, probes lost before the server drops a dead client.
const KEEPALIVE: [(&str, &str); 3] = [
    ("tcp_keepalives_idle", "30"),
    ("tcp_keepalives_interval", "10"),
    ("tcp_keepalives_count", "3"),
];

/// Server-side time limits on keeper's PostgreSQL connections.
#[derive(Clone, Copy, Debug)]
pub struct PgLimits {
    /// `statement_timeout` of the engine's, the writer's and the outbox's connections.
    pub statement_timeout: Duration,
    /// `statement_timeout` of the API's read connections.
    pub read_statement_timeout: Duration,
}

impl Default for PgLimits {
    fn default() -> Self {
        PgLimits {
            statement_timeout: Duration::from_secs(30),
            read_statement_timeout: Duration::from_secs(10),
        }
    }
}

const INCIDENT_COLUMNS: &str = "id, check_name, severity, color, message, started_at, acknowledged_at, resolved_at, notified_at";

#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// Read-only connections for [`PgStore::reader`].
    reads: PgPool,
}

#[derive(sqlx::FromRow)]
struct SampleRecord {
    check_name: String,
    at: DateTime<Utc>,
    duration_ms: f64,
    up: bool,
    color: String,
    status_code: Option<i32>,
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
    started_at: DateTime<Utc>,
    acknowledged_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    notified_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct OutboxRecord {
    id: i64,
    channel: String,
    payload: String,
    attempts: i32,
    batch_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        PgStore::connect_with(url, PgLimits::default()).await
    }

    /// Connects with `limits`. A `statement_timeout` in the URL's `options`
    /// wins over the one of `limits`.
    pub async fn connect_with(url: &str, limits: PgLimits) -> Result<PgStore, StoreError> {
        let options: PgConnectOptions = url.parse().doing("parsing the postgres url")?;
        let options = options
            .options(KEEPALIVE)
            .options([("idle_in_transaction_session_timeout", "60s")]);
        let timeout = |t: Duration| format!("{}ms", t.as_millis().max(1));
        let with_timeout = |options: PgConnectOptions, t: Duration| {
            if url.contains("statement_timeout") {
                options
            } else {
                options.options([("statement_timeout", timeout(t))])
            }
        };
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(with_timeout(options.clone(), limits.statement_timeout))
            .await
            .doing("connecting to postgres")?;
        let reads = PgPoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(
                with_timeout(options, limits.read_statement_timeout)
                    .options([("default_transaction_read_only", "on")]),
            );
        Ok(PgStore { pool, reads })
    }

    /// The same database on the read-only pool: for API reads.
    pub fn reader(&self) -> PgStore {
        PgStore {
            pool: self.reads.clone(),
            reads: self.reads.clone(),
        }
    }

    /// On a connection of its own without `statement_timeout`: building an
    /// index on a large table may take longer. The connection is closed after.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .doing("connecting to postgres to migrate")?
            .detach();
        sqlx::query("SET statement_timeout = 0")
            .execute(&mut conn)
            .await
            .doing("lifting statement_timeout to migrate")?;
        MIGRATOR.run(&mut conn).await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .doing("pinging postgres")?;
        Ok(())
    }

    pub async fn delete_samples_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM samples WHERE at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await
            .doing("deleting samples past retention")?;
        Ok(done.rows_affected())
    }

    /// One `COPY … FROM STDIN` per batch (faster than UNNEST here: ~320k rows/s
    /// against ~190k in `bench`), sent in chunks of [`ROWS_PER_CHUNK`] rows.
    pub async fn insert_samples(&self, rows: &[SampleRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .doing("starting a transaction to insert samples")?;
        let mut copy = tx
            .copy_in_raw(
                "COPY samples (check_name, at, duration_ms, up, color, status_code, latency_ms, message, \
                               metrics) \
                 FROM STDIN (FORMAT text)",
            )
            .await
            .doing("starting to copy samples")?;
        let mut buf = String::with_capacity(rows.len().min(ROWS_PER_CHUNK) * 96);
        for chunk in rows.chunks(ROWS_PER_CHUNK) {
            buf.clear();
            for row in chunk {
                copy_row(&mut buf, row);
            }
            copy.send(buf.as_bytes()).await.doing("copying samples")?;
        }
        copy.finish().await.doing("finishing the sample copy")?;
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
             FROM samples WHERE check_name = $1 AND at >= $2 ORDER BY at LIMIT $3",
        )
        .bind(check)
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .doing("reading a check's samples")?;
        records.into_iter().map(SampleRecord::into_row).collect()
    }

    pub async fn incident_channels(&self, id: i64) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT DISTINCT channel FROM outbox WHERE incident_id = $1 ORDER BY channel",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .doing("reading the channels an incident went to")
    }

    pub async fn latest_samples(&self) -> Result<Vec<SampleRow>, StoreError> {
        let rows: Vec<PgRow> = sqlx::query(
            "SELECT DISTINCT ON (check_name) check_name, at, duration_ms, up, color, \
                    status_code, latency_ms, message, metrics \
             FROM samples ORDER BY check_name, at DESC",
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
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE up) FROM samples \
             WHERE check_name = $1 AND at >= $2",
        )
        .bind(check)
        .bind(since)
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
                    (CASE WHEN at >= $2 THEN floor(extract(epoch FROM at) / 3600) \
                          ELSE floor(extract(epoch FROM at) / 86400) * 24 END)::bigint AS hour, \
                    COUNT(*), COUNT(*) FILTER (WHERE up) \
             FROM samples WHERE at >= $1 GROUP BY 1, 2",
        )
        .bind(since)
        .bind(hourly_since)
        .fetch_all(&self.pool)
        .await
        .doing("counting samples per check and hour for uptime")
    }

    pub async fn uptime_by_check(
        &self,
        since: DateTime<Utc>,
    ) -> Result<HashMap<String, f64>, StoreError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT check_name, COUNT(*), COUNT(*) FILTER (WHERE up) FROM samples \
             WHERE at >= $1 GROUP BY check_name",
        )
        .bind(since)
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
            .begin()
            .await
            .doing("starting a transaction to record an incident change")?;
        let (record, at) = apply_change(&mut tx, change).await?;
        for out in outgoing {
            let mut notification = out.notification;
            notification.incident = record.id;
            sqlx::query(
                "INSERT INTO outbox \
                 (incident_id, channel, payload, next_attempt_at, created_at, batch_at) \
                 VALUES ($1, $2, $3, GREATEST($4, $5), $4, $5)",
            )
            .bind(record.id)
            .bind(out.channel)
            .bind(encode_notification(&notification)?)
            .bind(at)
            .bind(out.batch_at)
            .execute(&mut *tx)
            .await
            .doing("queueing a notification in the outbox")?;
        }
        tx.commit().await.doing("committing an incident change")?;
        record.into_incident()
    }

    pub async fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        let rows: Vec<PgRow> = sqlx::query(sqlx::AssertSqlSafe(format!(
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
             ORDER BY started_at DESC, id DESC LIMIT $1",
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
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {SILENCE_COLUMNS}"
        )))
        .bind(&new.check)
        .bind(encode_labels(&new.labels)?)
        .bind(new.starts_at)
        .bind(new.ends_at)
        .bind(&new.comment)
        .bind(&new.created_by)
        .fetch_one(&self.pool)
        .await
        .doing("creating a silence")?;
        record.into_silence()
    }

    pub async fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError> {
        let rows: Vec<PgRow> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SILENCE_COLUMNS} FROM silences WHERE ends_at > $1 ORDER BY ends_at, id"
        )))
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .doing("reading silences")?;
        Ok(decode_each("silences", rows, id_key, |row| {
            SilenceRecord::from_row(row)?.into_silence()
        }))
    }

    pub async fn expire_silence(&self, id: i64, at: DateTime<Utc>) -> Result<Silence, StoreError> {
        let record: Option<SilenceRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE silences SET ends_at = CASE WHEN ends_at > $1 THEN $1 ELSE ends_at END \
             WHERE id = $2 RETURNING {SILENCE_COLUMNS}"
        )))
        .bind(at)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .doing("ending a silence")?;
        record.ok_or(StoreError::NotFound(id))?.into_silence()
    }

    pub async fn incident(&self, id: i64) -> Result<Incident, StoreError> {
        let record: Option<IncidentRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1"
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
        let records: Vec<(i64, DateTime<Utc>, String, String)> = sqlx::query_as(
            "SELECT incident_id, at, kind, detail FROM incident_events \
             WHERE incident_id = ANY($1) ORDER BY incident_id, at, id",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .doing("reading the events of listed incidents")?;
        for (id, at, kind, detail) in records {
            out.entry(id)
                .or_default()
                .push(IncidentEvent { at, kind, detail });
        }
        Ok(out)
    }

    pub async fn incident_events(&self, id: i64) -> Result<Vec<IncidentEvent>, StoreError> {
        let records: Vec<(DateTime<Utc>, String, String)> = sqlx::query_as(
            "SELECT at, kind, detail FROM incident_events WHERE incident_id = $1 \
             ORDER BY at, id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .doing("reading an incident's events")?;
        Ok(records
            .into_iter()
            .map(|(at, kind, detail)| IncidentEvent { at, kind, detail })
            .collect())
    }

    pub async fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<DueNotifications, StoreError> {
        let rows: Vec<PgRow> = sqlx::query(
            "SELECT id, channel, payload, attempts, batch_at, created_at FROM outbox \
             WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(now)
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
                        .try_get::<i32, _>("attempts")
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
        let done = sqlx::query("UPDATE outbox SET status = 'sent', sent_at = $1 WHERE id = $2")
            .bind(at)
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
            "UPDATE outbox SET attempts = $1, next_attempt_at = $2, last_error = $3 WHERE id = $4",
        )
        .bind(attempts_column(attempts))
        .bind(next_at)
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
            "UPDATE outbox SET status = 'failed', attempts = $1, last_error = $2 WHERE id = $3",
        )
        .bind(attempts_column(attempts))
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await
        .doing("marking a notification failed")?;
        outbox_row_updated(id, done.rows_affected())
    }

    pub async fn heartbeats(&self) -> Result<Vec<HeartbeatRow>, StoreError> {
        let rows: Vec<PgRow> = sqlx::query(
            "SELECT check_name, token, first_seen, last_success, last_start, last_fail, last_run_s \
             FROM heartbeats",
        )
        .fetch_all(&self.pool)
        .await
        .doing("reading heartbeat states")?;
        Ok(decode_each("heartbeats", rows, check_key, |row| {
            Ok(HeartbeatRecord::from_row(row)?.into_row())
        }))
    }

    /// One upsert; GREATEST and LEAST ignore NULLs.
    pub async fn save_heartbeat(&self, row: &HeartbeatRow) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO heartbeats \
             (check_name, token, first_seen, last_success, last_start, last_fail, last_run_s) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (check_name) DO UPDATE SET \
             token = COALESCE(heartbeats.token, EXCLUDED.token), \
             first_seen = LEAST(heartbeats.first_seen, EXCLUDED.first_seen), \
             last_run_s = CASE WHEN EXCLUDED.last_success >= COALESCE(heartbeats.last_success, EXCLUDED.last_success) \
                 THEN EXCLUDED.last_run_s ELSE heartbeats.last_run_s END, \
             last_success = GREATEST(heartbeats.last_success, EXCLUDED.last_success), \
             last_start = GREATEST(heartbeats.last_start, EXCLUDED.last_start), \
             last_fail = GREATEST(heartbeats.last_fail, EXCLUDED.last_fail) \
             RETURNING token",
        )
        .bind(&row.check)
        .bind(&row.token)
        .bind(row.first_seen)
        .bind(row.last_success)
        .bind(row.last_start)
        .bind(row.last_fail)
        .bind(row.last_run_s)
        .fetch_one(&self.pool)
        .await
        .doing("saving a heartbeat state")
    }
}

/// Applies the incident part of a change and appends its event. Returns the
/// incident as it now is and the change's time.
async fn apply_change(
    tx: &mut PgConnection,
    change: IncidentChange,
) -> Result<(IncidentRecord, DateTime<Utc>), StoreError> {
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
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING {INCIDENT_COLUMNS}"
                )))
                .bind(&check)
                .bind(severity.as_str())
                .bind(color.as_str())
                .bind(&message)
                .bind(at)
                .bind(notify.then_some(at))
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
                "UPDATE incidents SET severity = $1, color = $2, message = $3 \
                 WHERE id = $4 AND resolved_at IS NULL RETURNING {INCIDENT_COLUMNS}"
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
                "UPDATE incidents SET resolved_at = $1 \
                 WHERE id = $2 AND resolved_at IS NULL RETURNING {INCIDENT_COLUMNS}"
            )))
            .bind(at)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .doing("resolving an incident")?;
            (record.ok_or(StoreError::NotFound(id))?, kind, detail, at)
        }
        IncidentChange::Acknowledge { id, at, .. } => {
            let record: Option<IncidentRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE incidents SET acknowledged_at = $1 \
                 WHERE id = $2 AND resolved_at IS NULL AND acknowledged_at IS NULL \
                 RETURNING {INCIDENT_COLUMNS}"
            )))
            .bind(at)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .doing("acknowledging an incident")?;
            (record.ok_or(StoreError::NotFound(id))?, kind, detail, at)
        }
        IncidentChange::Remind { id, at } => {
            let record: Option<IncidentRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1 AND resolved_at IS NULL"
            )))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .doing("reading an incident to remind of")?;
            (record.ok_or(StoreError::NotFound(id))?, kind, detail, at)
        }
        IncidentChange::Notify { id, at, .. } => {
            let record: Option<IncidentRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE incidents SET notified_at = $1 \
                 WHERE id = $2 AND notified_at IS NULL \
                 RETURNING {INCIDENT_COLUMNS}"
            )))
            .bind(at)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .doing("notifying a held-back incident")?;
            (record.ok_or(StoreError::NotFound(id))?, kind, detail, at)
        }
    };
    sqlx::query(
        "INSERT INTO incident_events (incident_id, at, kind, detail) VALUES ($1, $2, $3, $4)",
    )
    .bind(record.id)
    .bind(at)
    .bind(kind)
    .bind(detail)
    .execute(&mut *tx)
    .await
    .doing("appending an incident event")?;
    Ok((record, at))
}

/// `attempts` is an INTEGER column; a count past i32::MAX is clamped, not an error.
fn attempts_column(attempts: u32) -> i32 {
    i32::try_from(attempts).unwrap_or(i32::MAX)
}

/// A row's `id`, for logging a row that does not decode.
fn id_key(row: &PgRow) -> String {
    row.try_get::<i64, _>("id")
        .map_or_else(|e| format!("(unreadable id: {e})"), |id| id.to_string())
}

/// A row's `check_name`, for logging a row that does not decode.
fn check_key(row: &PgRow) -> String {
    row.try_get::<String, _>("check_name")
        .unwrap_or_else(|e| format!("(unreadable check_name: {e})"))
}

impl OutboxRecord {
    fn into_entry(self) -> Result<OutboxEntry, StoreError> {
        Ok(OutboxEntry {
            notification: decode_notification(&self.payload, self.id)?,
            attempts: decode_attempts(i64::from(self.attempts), self.id)?,
            batch_at: self.batch_at,
            created_at: self.created_at,
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

impl SampleRecord {
    fn into_row(self) -> Result<SampleRow, StoreError> {
        let status_code = match self.status_code {
            None => None,
            Some(code) => Some(u16::try_from(code).map_err(|_| {
                StoreError::Corrupt(format!("samples.status_code: {code} is not an HTTP status"))
            })?),
        };
        Ok(SampleRow {
            color: decode_color(&self.color, "samples.color")?,
            check: self.check_name.into(),
            at: self.at,
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
            check: self.check_name,
            message: self.message,
            started_at: self.started_at,
            acknowledged_at: self.acknowledged_at,
            resolved_at: self.resolved_at,
            notified_at: self.notified_at,
        })
    }
}

/// One sample as a line of `COPY … (FORMAT text)`.
fn copy_row(buf: &mut String, row: &SampleRow) {
    use std::fmt::Write;
    copy_text(buf, &row.check);
    let _ = write!(
        buf,
        "\t{}\t{}\t{}\t{}\t",
        row.at.format("%Y-%m-%d %H:%M:%S%.6f+00"),
        row.duration_ms,
        if row.up { 't' } else { 'f' },
        row.color.as_str()
    );
    match row.status_code {
        Some(code) => {
            let _ = write!(buf, "{code}");
        }
        None => buf.push_str("\\N"),
    }
    let _ = write!(buf, "\t{}\t", row.latency_ms);
    copy_text(buf, &row.message);
    buf.push('\t');
    match &row.metrics {
        Some(json) => copy_text(buf, json),
        None => buf.push_str("\\N"),
    }
    buf.push('\n');
}

/// Escapes a value for COPY's text format.
fn copy_text(buf: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => buf.push_str("\\\\"),
            '\t' => buf.push_str("\\t"),
            '\n' => buf.push_str("\\n"),
            '\r' => buf.push_str("\\r"),
            c => buf.push(c),
        }
    }
}

#[derive(sqlx::FromRow)]
struct SilenceRecord {
    id: i64,
    check_name: Option<String>,
    labels: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
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
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            comment: self.comment,
            created_by: self.created_by,
        })
    }
}

#[derive(sqlx::FromRow)]
struct HeartbeatRecord {
    check_name: String,
    token: Option<String>,
    first_seen: DateTime<Utc>,
    last_success: Option<DateTime<Utc>>,
    last_start: Option<DateTime<Utc>>,
    last_fail: Option<DateTime<Utc>>,
    last_run_s: Option<f64>,
}

impl HeartbeatRecord {
    fn into_row(self) -> HeartbeatRow {
        HeartbeatRow {
            check: self.check_name,
            token: self.token,
            first_seen: self.first_seen,
            last_success: self.last_success,
            last_start: self.last_start,
            last_fail: self.last_fail,
            last_run_s: self.last_run_s,
        }
    }
}
