//! The SQLite backend of the store: one embedded file (`sqlite://keeper.db`,
//! created on first use, WAL) or `sqlite::memory:`. Owns connecting (pragmas,
//! pools), migrating and the bulk sample insert; every other query is in
//! `store/sql/`, shared with PostgreSQL. Timestamps are INTEGER unix
//! milliseconds (UTC).
//!
//! A file database's read-only pool for API reads is a second pool on the
//! same file (WAL: readers never block the writer).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::sql::Doing;
use super::{Pools, SampleRow, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Samples per multi-row INSERT: 8 parameters each, far below SQLite's 32,766,
/// and large enough that the per-statement round trip no longer matters.
const ROWS_PER_INSERT: usize = 500;

/// How long a writer waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read-only connections for API reads (a file database only).
const READ_CONNECTIONS: u32 = 2;

/// The store's pools on SQLite. For a memory database, which lives in one
/// connection, both are that connection's pool.
pub type SqliteStore = Pools<Sqlite>;

impl Pools<Sqlite> {
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
        Ok(Pools { pool, reads })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }
}

/// Multi-row INSERTs of [`ROWS_PER_INSERT`] rows, all in `tx`, which it commits.
pub(super) async fn insert_samples(
    mut tx: Transaction<'static, Sqlite>,
    rows: &[SampleRow],
) -> Result<(), StoreError> {
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
