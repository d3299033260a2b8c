//! Storage: samples, incidents with their timelines, and the notification
//! outbox, on embedded SQLite (`sqlite://…`, the default) or PostgreSQL
//! (`postgres://…`). One file per backend; this file is the contract both keep,
//! and the same integration tests run against both.
//!
//! Samples are written only by [`writer`] (batched); incident changes are
//! committed together with their outbox rows in one transaction by [`Store::record`].

pub mod postgres;
pub mod retention;
pub mod sqlite;
pub mod uptime;
pub mod writer;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::core::{Color, Notification, OutboxEntry, Outgoing, Severity};
use crate::incident::{Incident, IncidentChange, IncidentEvent, NewSilence, Silence};

/// One stored sample.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleRow {
    pub check: Arc<str>,
    pub at: DateTime<Utc>,
    pub duration_ms: f64,
    pub up: bool,
    pub color: Color,
    /// HTTP status of the final response, when there was one.
    pub status_code: Option<u16>,
    pub latency_ms: f64,
    pub message: String,
    /// What else the sample measured, as a JSON object (see [`metrics_json`]).
    pub metrics: Option<String>,
}

/// Which incidents a listing wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncidentFilter {
    Open,
    Resolved,
    All,
}

impl IncidentFilter {
    /// The SQL condition, the same on both backends.
    pub(crate) fn condition(self) -> &'static str {
        match self {
            IncidentFilter::Open => "resolved_at IS NULL",
            IncidentFilter::Resolved => "resolved_at IS NOT NULL",
            IncidentFilter::All => "TRUE",
        }
    }
}

impl std::str::FromStr for IncidentFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(IncidentFilter::Open),
            "resolved" => Ok(IncidentFilter::Resolved),
            "all" => Ok(IncidentFilter::All),
            other => Err(format!(
                "state must be open, resolved or all, not {other:?}"
            )),
        }
    }
}

/// A stored row that does not decode (a value keeper does not know, JSON
/// that does not parse, a value of the wrong type).
#[derive(Clone, Debug, PartialEq)]
pub struct BadRow {
    pub id: i64,
    /// The outbox row's channel, as far as it could be read.
    pub channel: String,
    /// Attempts recorded in the row (0 when unreadable).
    pub attempts: u32,
    /// Why it does not decode.
    pub reason: String,
}

/// The outbox rows due now: those that decode, and those that do not (to be
/// failed with the reason, never to stop the others).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DueNotifications {
    pub entries: Vec<OutboxEntry>,
    pub bad: Vec<BadRow>,
}

/// A heartbeat check's state as stored: the latest of each signal, so a
/// restart does not forget yesterday's ping.
#[derive(Clone, Debug, PartialEq)]
pub struct HeartbeatRow {
    pub check: String,
    /// The token keeper generated for the check; `None` when the config sets it.
    pub token: Option<String>,
    /// When keeper first saw the check (lateness before any ping counts from it).
    pub first_seen: DateTime<Utc>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_start: Option<DateTime<Utc>>,
    pub last_fail: Option<DateTime<Utc>>,
    /// Duration of the run that ended with `last_success` (its `/start` to it).
    pub last_run_s: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported storage url {0:?}: expected sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("check {0:?} already has an open incident")]
    AlreadyOpen(String),
    #[error("incident {0} not found")]
    NotFound(i64),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A database error with what was being done when it happened.
    #[error("{doing}: {source}")]
    Query {
        doing: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the database did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The caller treats storage as away for now and did not ask it.
    #[error("storage is unreachable for now; trying again shortly")]
    Away,
}

impl StoreError {
    /// Whether the database itself is away or overwhelmed (connection lost,
    /// no answer in time, pool exhausted, server shutting down, locked): the
    /// same change may well succeed later. Otherwise the fault is about the
    /// data of one change (a constraint, a row not found, a value it refused)
    /// and retrying the same change will not help.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Timeout(_) | StoreError::Away => true,
            StoreError::Database(e) | StoreError::Query { source: e, .. } => sqlx_unavailable(e),
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => sqlx_unavailable(e),
            StoreError::UnsupportedUrl(_)
            | StoreError::AlreadyOpen(_)
            | StoreError::NotFound(_)
            | StoreError::Migrate(_)
            | StoreError::Corrupt(_) => false,
        }
    }
}

/// See [`StoreError::is_unavailable`]. PostgreSQL's SQLSTATE classes 08
/// (connection exception), 53 (insufficient resources), 57 (operator
/// intervention: shutdown, statement timeout) and 40 (rollback: serialization,
/// deadlock); SQLite's BUSY, LOCKED, READONLY (a file system remounted
/// read-only), IOERR, FULL and CANTOPEN.
fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation
                | sqlx::error::ErrorKind::ForeignKeyViolation
                | sqlx::error::ErrorKind::NotNullViolation
                | sqlx::error::ErrorKind::CheckViolation => false,
                _ if code.len() == 5 => ["08", "53", "57", "40"].contains(&&code[..2]),
                // SQLite's primary result codes (extended codes keep them in the low byte).
                _ => code
                    .parse::<u32>()
                    .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 8 | 10 | 13 | 14)),
            }
        }
        _ => false,
    }
}

/// The database, whichever backend the URL names.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// Dispatches a method to the backend.
macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

impl Store {
    /// Connects (creating the SQLite file if missing). Does not migrate.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(sqlite::SqliteStore::connect(url).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(postgres::PgStore::connect(url).await?))
        } else {
            Err(StoreError::UnsupportedUrl(crate::core::redact::dsn(url)))
        }
    }

    /// The same database on connections of its own, for API reads: requests
    /// cannot take the connections the engine, the sample writer and the
    /// outbox commit on. Read-only on a file or PostgreSQL database; a SQLite
    /// memory database has one connection, shared.
    pub fn reader(&self) -> Store {
        match self {
            Store::Sqlite(s) => Store::Sqlite(s.reader()),
            Store::Postgres(s) => Store::Postgres(s.reader()),
        }
    }

    /// Applies the migrations under `migrations/<backend>/`.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        each!(self, s => s.migrate().await)
    }

    /// Whether the database answers (`/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        each!(self, s => s.ping().await)
    }

    /// Writes a batch of samples in as few round trips as the backend allows.
    pub async fn insert_samples(&self, rows: &[SampleRow]) -> Result<(), StoreError> {
        each!(self, s => s.insert_samples(rows).await)
    }

    /// Deletes samples taken before `cutoff` (`storage.retention`); returns how many.
    pub async fn delete_samples_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        each!(self, s => s.delete_samples_before(cutoff).await)
    }

    /// `check`'s samples taken at or after `since`, oldest first, at most `limit`.
    pub async fn samples(
        &self,
        check: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<SampleRow>, StoreError> {
        each!(self, s => s.samples(check, since, limit).await)
    }

    /// The channels incident `id`'s notifications were queued for, whatever became of them.
    pub async fn incident_channels(&self, id: i64) -> Result<Vec<String>, StoreError> {
        each!(self, s => s.incident_channels(id).await)
    }

    /// The newest sample of each check.
    pub async fn latest_samples(&self) -> Result<Vec<SampleRow>, StoreError> {
        each!(self, s => s.latest_samples().await)
    }

    /// Percentage of up samples of `check` since `since`; `None` without samples.
    pub async fn uptime_pct(
        &self,
        check: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<f64>, StoreError> {
        each!(self, s => s.uptime_pct(check, since).await)
    }

    /// Percentage of up samples since `since`, for every check that has samples.
    pub async fn uptime_by_check(
        &self,
        since: DateTime<Utc>,
    ) -> Result<HashMap<String, f64>, StoreError> {
        each!(self, s => s.uptime_by_check(since).await)
    }

    /// Samples since `since` counted per check and hour as
    /// `(check, hour since the epoch, total, up)`; those before
    /// `hourly_since` per day instead (the hour is the day's first).
    pub async fn uptime_buckets(
        &self,
        since: DateTime<Utc>,
        hourly_since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64, i64, i64)>, StoreError> {
        each!(self, s => s.uptime_buckets(since, hourly_since).await)
    }

    /// Fills `book` with the stored samples its windows can count, in one
    /// aggregate query. Before the sample writer starts, so no batch counts twice.
    pub async fn seed_uptime(
        &self,
        book: &uptime::UptimeBook,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // On an hour's start, so no hour is split between an hourly and a daily row.
        let hour = uptime::HOUR_MS;
        let hourly_since = (now - chrono::Duration::hours(25)).timestamp_millis();
        let hourly_since =
            DateTime::from_timestamp_millis(hourly_since.div_euclid(hour) * hour).unwrap_or(now);
        let rows = self
            .uptime_buckets(uptime::UptimeBook::seed_since(now), hourly_since)
            .await?;
        for (check, hour, total, up) in rows {
            let count = |n: i64| u64::try_from(n).unwrap_or(0);
            book.add_hour(&check, hour, count(total), count(up));
        }
        Ok(())
    }

    /// Applies an incident change, appends its timeline event and queues its
    /// notifications, all in one transaction. Returns the incident as it now is.
    pub async fn record(
        &self,
        change: IncidentChange,
        outgoing: Vec<Outgoing>,
    ) -> Result<Incident, StoreError> {
        each!(self, s => s.record(change, outgoing).await)
    }

    /// Every incident not yet resolved (to restore state after a restart).
    pub async fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        each!(self, s => s.open_incidents().await)
    }

    /// Incidents matching `filter`, newest first, at most `limit`.
    pub async fn incidents(
        &self,
        filter: IncidentFilter,
        limit: u32,
    ) -> Result<Vec<Incident>, StoreError> {
        each!(self, s => s.incidents(filter, limit).await)
    }

    pub async fn create_silence(&self, silence: &NewSilence) -> Result<Silence, StoreError> {
        each!(self, s => s.create_silence(silence).await)
    }

    /// Silences not yet ended at `now` (active or starting later), soonest end first.
    pub async fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError> {
        each!(self, s => s.silences(now).await)
    }

    /// Ends a silence at `at` (if it ends later); `NotFound` if there is no such silence.
    pub async fn expire_silence(&self, id: i64, at: DateTime<Utc>) -> Result<Silence, StoreError> {
        each!(self, s => s.expire_silence(id, at).await)
    }

    pub async fn incident(&self, id: i64) -> Result<Incident, StoreError> {
        each!(self, s => s.incident(id).await)
    }

    /// An incident's timeline, oldest first.
    pub async fn incident_events(&self, id: i64) -> Result<Vec<IncidentEvent>, StoreError> {
        each!(self, s => s.incident_events(id).await)
    }

    /// The timelines of incidents `ids` in one query, each oldest first.
    /// Incidents without events are missing from the map.
    pub async fn events_of(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, Vec<IncidentEvent>>, StoreError> {
        each!(self, s => s.events_of(ids).await)
    }

    /// Pending notifications due at `now`, oldest first, at most `limit`
    /// together: each decoded on its own, so one bad row stays there.
    pub async fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<DueNotifications, StoreError> {
        each!(self, s => s.due_notifications(now, limit).await)
    }

    /// Marks a notification delivered; it is never sent again.
    pub async fn notification_sent(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        each!(self, s => s.notification_sent(id, at).await)
    }

    /// Records a failed attempt and when to try again.
    pub async fn notification_retry(
        &self,
        id: i64,
        attempts: u32,
        next_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        each!(self, s => s.notification_retry(id, attempts, next_at, error).await)
    }

    /// Gives up on a notification: it stays in the outbox marked failed.
    pub async fn notification_failed(
        &self,
        id: i64,
        attempts: u32,
        error: &str,
    ) -> Result<(), StoreError> {
        each!(self, s => s.notification_failed(id, attempts, error).await)
    }

    /// Every stored heartbeat state (to restore them at start).
    pub async fn heartbeats(&self) -> Result<Vec<HeartbeatRow>, StoreError> {
        each!(self, s => s.heartbeats().await)
    }

    /// Stores a heartbeat's state in one upsert that never moves it backwards:
    /// each timestamp keeps the later of the stored and the given one (writes
    /// may land out of order, or come from several instances), `first_seen`
    /// the earlier, and a stored token is never replaced. Returns the token
    /// stored afterwards.
    pub async fn save_heartbeat(&self, row: &HeartbeatRow) -> Result<Option<String>, StoreError> {
        each!(self, s => s.save_heartbeat(row).await)
    }
}

/// `(check, total, up)` counts → uptime percentage per check.
pub(crate) fn uptime_map(rows: Vec<(String, i64, i64)>) -> HashMap<String, f64> {
    rows.into_iter()
        .filter(|(_, total, _)| *total > 0)
        .map(|(check, total, up)| (check, 100.0 * up as f64 / total as f64))
        .collect()
}

/// Labels of a silence as stored (JSON text).
pub(crate) fn encode_labels(
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<String, StoreError> {
    serde_json::to_string(labels)
        .map_err(|e| StoreError::Corrupt(format!("encoding silence labels: {e}")))
}

pub(crate) fn decode_labels(
    text: &str,
) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("silences.labels: {e}")))
}

/// Attaches what was being done to a database error.
pub(crate) trait Doing<T> {
    fn doing(self, doing: &'static str) -> Result<T, StoreError>;
}

impl<T> Doing<T> for Result<T, sqlx::Error> {
    fn doing(self, doing: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Query { doing, source })
    }
}

// Column decoding shared by both backends: enums are stored as their
// lowercase names, notifications as JSON text.

pub(crate) fn decode_color(s: &str, what: &str) -> Result<Color, StoreError> {
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(crate) fn decode_severity(s: &str, what: &str) -> Result<Severity, StoreError> {
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(crate) fn encode_notification(n: &Notification) -> Result<String, StoreError> {
    serde_json::to_string(n)
        .map_err(|e| StoreError::Corrupt(format!("encoding a notification as JSON: {e}")))
}

pub(crate) fn decode_notification(json: &str, outbox_id: i64) -> Result<Notification, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("outbox row {outbox_id}: payload: {e}")))
}

pub(crate) fn decode_attempts(attempts: i64, outbox_id: i64) -> Result<u32, StoreError> {
    u32::try_from(attempts)
        .map_err(|_| StoreError::Corrupt(format!("outbox row {outbox_id}: attempts {attempts}")))
}

/// Decodes rows read at start-up one by one: a row that does not decode is
/// skipped with a warning naming `table`, its `key` and why, and a total is
/// logged, so one bad row never stops keeper from starting.
pub(crate) fn decode_each<R, T>(
    table: &'static str,
    rows: Vec<R>,
    key: impl Fn(&R) -> String,
    decode: impl Fn(&R) -> Result<T, StoreError>,
) -> Vec<T> {
    let mut good = Vec::with_capacity(rows.len());
    let mut bad = 0usize;
    for row in &rows {
        match decode(row) {
            Ok(value) => good.push(value),
            Err(error) => {
                bad += 1;
                tracing::warn!(table, row = %key(row), %error, "skipping a stored row that does not decode");
            }
        }
    }
    if bad > 0 {
        tracing::warn!(
            table,
            skipped = bad,
            kept = good.len(),
            "skipped rows that do not decode"
        );
    }
    good
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_away_is_told_from_a_refused_change() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(StoreError::Database(sqlx::Error::Io(io)).is_unavailable());
        assert!(StoreError::Database(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(StoreError::Timeout(std::time::Duration::from_secs(5)).is_unavailable());
        assert!(StoreError::Away.is_unavailable());
        assert!(!StoreError::NotFound(7).is_unavailable());
        assert!(!StoreError::AlreadyOpen("web".into()).is_unavailable());
        assert!(!StoreError::Corrupt("bad".into()).is_unavailable());
        assert!(!StoreError::Database(sqlx::Error::RowNotFound).is_unavailable());
    }
}
