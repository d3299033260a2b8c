//! Storage: samples, incidents with their timelines, and the notification
//! outbox, on embedded SQLite (`sqlite://…`, the default) or PostgreSQL
//! (`postgres://…`). This file owns the store's types and errors and the one
//! place that tells the backends apart; every query is written once in
//! `sql/`, over both; [`sqlite`] and [`postgres`] keep only connecting,
//! migrating and the bulk sample insert. The same integration tests run
//! against both backends.
//!
//! Samples are written only by [`writer`] (batched); incident changes are
//! committed together with their outbox rows in one transaction by [`Store::record`].

pub mod events;
pub mod postgres;
pub mod retention;
pub mod rollup;
mod sql;
pub mod sqlite;
pub mod uptime;
pub mod writer;

pub use sql::cluster::{Beat, Lease, LeaseClaim, LeaseViews, Member};

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::core::{Color, OutboxEntry};

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
    /// The region it was taken from: a check with regions only.
    pub region: Option<Arc<str>>,
}

impl SampleRow {
    /// The `samples` columns a row fills, in the order both backends' bulk
    /// inserts write them.
    pub(crate) const COLUMNS: [&str; 10] = [
        "check_name",
        "at",
        "duration_ms",
        "up",
        "color",
        "status_code",
        "latency_ms",
        "message",
        "metrics",
        "region",
    ];
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

/// An outbox worker's claim on the due rows it is about to send
/// ([`Store::claim_notifications`]): while it holds, no other worker sends
/// them, nor any other row of their channels (a channel's rows go in order).
#[derive(Clone, Copy, Debug)]
pub struct Claim<'a> {
    /// The instance's name, written in `claimed_by`.
    pub by: &'a str,
    /// How long it holds, by the database's clock; past it another instance
    /// may take the rows (their claimer died mid-send).
    pub lease: std::time::Duration,
    /// Channels this worker is sending to now: their rows are not claimed again.
    pub busy: &'a [String],
}

/// What became of recording a send's outcome in the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marked {
    /// Recorded, and the claim released.
    Recorded,
    /// The row is no longer claimed by this worker (its claim expired and
    /// another took it, or the row was settled since): nothing was written.
    ClaimLost,
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
    /// Another keeper, newer, migrated the database past what this one knows.
    #[error(
        "the database is at migration {database}, this keeper knows up to {known}: \
         upgrade keeper (every instance on one database must run a version that knows its migrations)"
    )]
    NewerDatabase { database: i64, known: i64 },
    /// Another keeper process holds the SQLite database.
    #[error(
        "{file} is in use by another keeper process (it holds the lock {lock}): SQLite is for \
         one instance; stop the other keeper, or run several instances on PostgreSQL"
    )]
    SqliteInUse { file: String, lock: String },
    #[error("locking the SQLite database {lock}: {source}")]
    SqliteLock {
        lock: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the database did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The caller treats storage as away for now and did not ask it.
    #[error("storage is unreachable for now; trying again shortly")]
    Away,
    /// [`Store::insert_samples`] stored its batch, then failed to move
    /// SQLite's recent samples into `samples`: the batch must not be
    /// written again. The rows stay where they are, still read, and the
    /// next batch tries the move again.
    #[error("samples stored, but moving the recent ones into the samples table failed: {0}")]
    NotMoved(Box<StoreError>),
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
            StoreError::NotMoved(e) => e.is_unavailable(),
            StoreError::UnsupportedUrl(_)
            | StoreError::AlreadyOpen(_)
            | StoreError::NotFound(_)
            | StoreError::Migrate(_)
            | StoreError::NewerDatabase { .. }
            | StoreError::SqliteInUse { .. }
            | StoreError::SqliteLock { .. }
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

/// One backend's connections: the engine's and the outbox's, the sample
/// writer's, and a small read-only pool for API reads ([`Store::reader`]),
/// so requests cannot take the connections commits wait for.
#[derive(Debug)]
pub struct Pools<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
    /// Where [`Store::insert_samples`] writes. On a SQLite file, one
    /// connection of its own: its page cache keeps the samples' index pages
    /// from one batch to the next (from a shared pool each batch took
    /// another connection, whose cache another's write had made stale).
    samples: sqlx::Pool<DB>,
    reads: sqlx::Pool<DB>,
}

impl<DB: sqlx::Database> Clone for Pools<DB> {
    fn clone(&self) -> Self {
        Pools {
            pool: self.pool.clone(),
            samples: self.samples.clone(),
            reads: self.reads.clone(),
        }
    }
}

impl<DB: sqlx::Database> Pools<DB> {
    /// The same database on the read-only pool: for API reads.
    fn reader(&self) -> Pools<DB> {
        Pools {
            pool: self.reads.clone(),
            samples: self.reads.clone(),
            reads: self.reads.clone(),
        }
    }
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

    /// Applies the migrations under `migrations/<backend>/`. Refuses a
    /// database migrated past them by a newer keeper
    /// ([`StoreError::NewerDatabase`]): an older keeper must not run on tables
    /// it does not know.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let (migrated, known) = match self {
            Store::Sqlite(s) => (s.migrate().await, sqlite::SqliteStore::known_migration()),
            Store::Postgres(s) => (s.migrate().await, postgres::PgStore::known_migration()),
        };
        // sqlx refuses a database with a migration it does not know; when that
        // is newer than every one this keeper knows, a newer keeper migrated it.
        let Err(StoreError::Migrate(sqlx::migrate::MigrateError::VersionMissing(_))) = migrated
        else {
            return migrated;
        };
        let latest = self
            .query("SELECT MAX(version) AS latest FROM _sqlx_migrations")
            .one("reading the database's latest migration")
            .await?
            .get::<Option<i64>>("latest")?;
        match latest {
            Some(database) if database > known => {
                Err(StoreError::NewerDatabase { database, known })
            }
            _ => migrated,
        }
    }

    /// Writes a batch of samples in one transaction, in as few round trips
    /// as the backend allows: its own bulk insert, the hot path. On SQLite,
    /// then moves the recent samples when due; if that fails the error is
    /// [`StoreError::NotMoved`] and the batch is stored all the same.
    pub async fn insert_samples(&self, rows: &[SampleRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        match self
            .begin_samples("starting a transaction to insert samples")
            .await?
        {
            sql::Tx::Sqlite(tx) => {
                if sqlite::insert_samples(tx, rows).await? {
                    (self.move_recent_samples().await)
                        .map_err(|e| StoreError::NotMoved(Box::new(e)))?;
                }
                Ok(())
            }
            sql::Tx::Postgres(tx) => postgres::insert_samples(tx, rows).await,
        }
    }

    /// SQLite: moves the samples gathered in `samples_recent` into
    /// `samples` (which [`Store::insert_samples`] does every few minutes);
    /// returns how many moved. PostgreSQL writes into `samples` directly: 0.
    pub async fn move_recent_samples(&self) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.move_recent_samples().await,
            Store::Postgres(_) => Ok(0),
        }
    }
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
