//! The SQLite backend of the store: one embedded file (`sqlite://keeper.db`,
//! created on first use, WAL) or `sqlite::memory:`. Owns connecting (pragmas,
//! pools), migrating and the bulk sample insert; every other query is in
//! `store/sql/`, shared with PostgreSQL. Timestamps are INTEGER unix
//! milliseconds (UTC).
//!
//! A file database's read-only pool for API reads is a second pool on the
//! same file (WAL: readers never block the writer).
//!
//! SQLite is for one keeper: a running keeper holds [`InstanceLock`] on its
//! file, and a second one refuses to start (several instances share
//! PostgreSQL instead).

use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Sqlite, Transaction};

use super::sql::Doing;
use super::{Pools, SampleRow, StoreError};
use crate::core::text::without_nul;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Rows per multi-row INSERT, largest first: a batch is cut into statements
/// of these sizes only. Each size is one SQL text, prepared once per
/// connection and kept in its statement cache; a statement per batch length
/// (a batch is however many samples came in a second) would be prepared
/// anew for most batches and fill the cache with dozens of large programs
/// (megabytes per connection). 500 rows of [`SampleRow::COLUMNS`]
/// parameters stay far below SQLite's 32,766, and are large enough that the
/// per-statement round trip no longer matters.
const ROWS_PER_INSERT: [usize; 5] = [500, 100, 20, 5, 1];

/// How long a writer waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a statement waits for a connection of a write pool.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Read-only connections for API reads (a file database only).
const READ_CONNECTIONS: u32 = 2;

/// WAL pages a commit may leave before it copies them back into the
/// database file (`wal_autocheckpoint`; SQLite's default is 1,000). Each
/// batch of samples adds about one index page per sample once the
/// `(check_name, at)` index outgrows a page per check, so at 200 samples a
/// second the default copied about 1,000 pages every five seconds, each a
/// read of the WAL and a write of the file (strace on a file of 200,000
/// samples: 3.2 writes and 2 reads a sample, against 0.2 and 0.01 on an
/// empty file; 2.3 and 1.2 with this value, about a third of the extra CPU
/// gone). Ten times as many lets a page written in ten batches be copied
/// back once (docs/benchmarks.md, session 13). Since batches go into
/// `samples_recent` ([`insert_samples`]) a sample costs 0.29 writes and
/// 0.14 reads on that file, and the WAL file, reused after each copy, grew
/// to 20 MB in four minutes instead of 42 (sessions 14–15); a smaller value
/// was not measured since.
const WAL_CHECKPOINT_PAGES: u32 = 10_000;

/// Page cache of each connection but the sample writer's, in KiB (SQLite's
/// default is 2,048). Every connection keeps the pages it read until it
/// closes, and the engine's, the rollup's and the API's reads are
/// occasional, so up to six caches of 2 MiB would hold pages read once (on
/// a file of 200,000 samples, keeper's private memory after start-up went
/// from 18.3–19.1 MB to 17.5). What misses comes from the OS's file cache.
/// The writer keeps the default: it rewrites the same index pages every
/// second.
const OTHER_CACHE_KIB: u32 = 512;

/// The store's pools on SQLite. For a memory database, which lives in one
/// connection, both are that connection's pool.
pub type SqliteStore = Pools<Sqlite>;

/// Whether `url` names a memory database (no file, nothing to share).
fn in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

impl Pools<Sqlite> {
    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        let in_memory = in_memory(url);
        let options = SqliteConnectOptions::from_str(url)
            .doing("parsing the sqlite url")?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // A file: WAL for every connection; SQLite's page cache for the
        // sample writer's alone (a memory database is its one connection's).
        let (options, writer) = if in_memory {
            (options.clone(), options)
        } else {
            let wal = options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .pragma("wal_autocheckpoint", WAL_CHECKPOINT_PAGES.to_string());
            let others = wal
                .clone()
                .pragma("cache_size", format!("-{OTHER_CACHE_KIB}"));
            (others, wal)
        };
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
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .doing("opening the sqlite database")?;
        // The sample writer's own connection, opened at its first batch and kept.
        let samples = if in_memory {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_lazy_with(writer)
        };
        let reads = if in_memory {
            pool.clone()
        } else {
            // Lazily: the file exists now, but its tables only after migrating.
            SqlitePoolOptions::new()
                .max_connections(READ_CONNECTIONS)
                .acquire_timeout(Duration::from_secs(5))
                .connect_lazy_with(options.read_only(true))
        };
        Ok(Pools {
            pool,
            samples,
            reads,
        })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// The latest migration this keeper knows.
    pub(super) fn known_migration() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }
}

/// The lock that keeps a SQLite database to one keeper process: an OS lock
/// (`flock`) on `<file>.lock` beside the database, held while this value
/// lives. The OS releases it when the process ends, however it ends, so a
/// keeper restarted after a crash (even SIGKILL) takes it at once. The lock
/// file stays (removing it could let two processes lock two different files).
#[derive(Debug)]
pub struct InstanceLock {
    _file: std::fs::File,
}

impl InstanceLock {
    /// Takes the lock of the SQLite database `url` names; `None` for a
    /// memory database or another backend's URL. Refuses with
    /// [`StoreError::SqliteInUse`] when another process holds it.
    pub async fn take(url: &str) -> Result<Option<InstanceLock>, StoreError> {
        if !url.starts_with("sqlite:") || in_memory(url) {
            return Ok(None);
        }
        let options = SqliteConnectOptions::from_str(url).doing("parsing the sqlite url")?;
        let file = options.get_filename().to_path_buf();
        let mut lock = file.clone().into_os_string();
        lock.push(".lock");
        let lock = std::path::PathBuf::from(lock);
        let shown = lock.display().to_string();
        let taken = tokio::task::spawn_blocking(move || lock_file(&file, &lock))
            .await
            .map_err(|e| StoreError::SqliteLock {
                lock: shown,
                source: std::io::Error::other(e),
            })?;
        taken.map(Some)
    }
}

/// Opens (creating) `lock` and locks it without waiting.
fn lock_file(file: &std::path::Path, lock: &std::path::Path) -> Result<InstanceLock, StoreError> {
    let failed = |source| StoreError::SqliteLock {
        lock: lock.display().to_string(),
        source,
    };
    let handle = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock)
        .map_err(failed)?;
    match handle.try_lock() {
        Ok(()) => Ok(InstanceLock { _file: handle }),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::SqliteInUse {
            file: file.display().to_string(),
            lock: lock.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(failed(e)),
    }
}

/// Rows `samples_recent` gathers before they move into `samples`: twenty
/// samples of each of 1,000 checks, so each check's index page takes twenty
/// rows in one write. Also what a read of recent samples scans at most
/// (that table has no index): a few milliseconds.
pub const RECENT_ROWS: i64 = 20_000;
/// How long the oldest row waits in `samples_recent` at most, whatever the
/// rate (at a few samples a second, [`RECENT_ROWS`] would take hours).
const RECENT_AGE: Duration = Duration::from_secs(300);

/// Multi-row INSERTs of [`ROWS_PER_INSERT`] rows into `samples_recent`, all
/// in `tx` (on the sample writer's connection), which it commits. Returns
/// whether that table's rows are due to move into `samples`
/// ([`move_recent_samples`]): once it holds [`RECENT_ROWS`] or its oldest
/// row is [`RECENT_AGE`] old.
///
/// Why two tables: inserted straight into `samples`, each sample changed a
/// page of the `(check_name, at)` index of its own (one per check, once the
/// index outgrows a page per check), and SQLite writes each page a commit
/// changes into the WAL and later back into the file. Appended to a table
/// without an index, a batch changes its last few pages; moved in sorted by
/// check, twenty samples of a check share one index page write.
pub(super) async fn insert_samples(
    mut tx: Transaction<'static, Sqlite>,
    rows: &[SampleRow],
) -> Result<bool, StoreError> {
    for chunk in chunks(rows) {
        let mut insert = sqlx::query(insert_sql(chunk.len()));
        for s in chunk {
            insert = insert
                .bind(s.check.clone())
                .bind(s.at.timestamp_millis())
                .bind(s.duration_ms)
                .bind(s.up)
                .bind(s.color.as_str())
                .bind(s.status_code.map(i64::from))
                .bind(s.latency_ms)
                .bind(without_nul(&s.message).into_owned())
                .bind(s.metrics.as_deref().map(|m| without_nul(m).into_owned()))
                .bind(s.region.clone());
        }
        insert.execute(&mut *tx).await.doing("inserting samples")?;
    }
    // Rows gathered since the last move: rowids count up from 1 again in a
    // table emptied by a DELETE without WHERE. The first row's time is
    // found by rowid (MIN(at) would read the whole table).
    let (gathered, first): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT MAX(rowid) FROM samples_recent), \
                (SELECT at FROM samples_recent ORDER BY rowid LIMIT 1)",
    )
    .fetch_one(&mut *tx)
    .await
    .doing("counting recent samples")?;
    tx.commit().await.doing("committing samples")?;
    let oldest_kept = chrono::Utc::now() - RECENT_AGE;
    Ok(gathered >= Some(RECENT_ROWS)
        || first.is_some_and(|at| at <= oldest_kept.timestamp_millis()))
}

impl Pools<Sqlite> {
    /// Moves every row of `samples_recent` into `samples`, sorted by check
    /// and time, in one transaction on the sample writer's connection.
    /// Readers see each row in one table or the other, never both: each
    /// read is one statement, on one snapshot.
    pub(super) async fn move_recent_samples(&self) -> Result<u64, StoreError> {
        let mut tx = (self.samples.begin_with("BEGIN IMMEDIATE").await)
            .doing("starting to move recent samples")?;
        // OR FAIL, as the batches' inserts (insert_sql): no statement journal.
        let columns = SampleRow::COLUMNS.join(", ");
        let moved = sqlx::query(AssertSqlSafe(format!(
            "INSERT OR FAIL INTO samples ({columns}) SELECT {columns} FROM samples_recent \
             ORDER BY check_name, at"
        )))
        .execute(&mut *tx)
        .await
        .doing("moving recent samples")?;
        // Without WHERE: SQLite frees the table's pages at once, for the next rows.
        sqlx::query("DELETE FROM samples_recent")
            .execute(&mut *tx)
            .await
            .doing("emptying recent samples")?;
        tx.commit()
            .await
            .doing("committing the move of recent samples")?;
        Ok(moved.rows_affected())
    }
}

/// The INSERT of `rows` rows, `rows` one of [`ROWS_PER_INSERT`]: written
/// once per size, not per batch (formatting every batch's placeholders
/// cost about 4 % of a kept-connection check's instructions).
fn insert_sql(rows: usize) -> &'static str {
    static SQL: [OnceLock<String>; ROWS_PER_INSERT.len()] =
        [const { OnceLock::new() }; ROWS_PER_INSERT.len()];
    let size = ROWS_PER_INSERT.iter().position(|&size| size == rows);
    let size = size.expect("insert_samples cuts batches into ROWS_PER_INSERT's sizes");
    SQL[size].get_or_init(|| {
        // OR FAIL, not the default ABORT: a multi-row statement that could
        // abort half-way keeps a statement journal of every page it changes
        // (spilling to a temporary file past 64 KiB), which grew to a page
        // write per row as the index outgrew the cache (perf: the cost per
        // check rose over ten minutes). On a failure the whole transaction
        // is rolled back all the same: the batch goes back to the buffer.
        let row = format!("({})", ["?"; SampleRow::COLUMNS.len()].join(", "));
        format!(
            "INSERT OR FAIL INTO samples_recent ({}) VALUES {}",
            SampleRow::COLUMNS.join(", "),
            vec![row; rows].join(", ")
        )
    })
}

/// `rows` cut into runs of [`ROWS_PER_INSERT`]'s sizes, largest first.
fn chunks(mut rows: &[SampleRow]) -> impl Iterator<Item = &[SampleRow]> {
    std::iter::from_fn(move || {
        let size = ROWS_PER_INSERT
            .into_iter()
            .find(|&size| size <= rows.len())?;
        let (chunk, rest) = rows.split_at(size);
        rows = rest;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_database_checkpoints_past_the_larger_wal_and_only_the_writer_keeps_a_full_cache()
     {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("keeper.db").display());
        let store = Pools::<Sqlite>::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        // KiB as SQLite reports them (negative); the writer keeps SQLite's default.
        let others = -i64::from(OTHER_CACHE_KIB);
        for (pool, name, wanted) in [
            (&store.pool, "pool", others),
            (&store.samples, "samples", -2000),
            (&store.reads, "reads", others),
        ] {
            let pages: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
                .fetch_one(pool)
                .await
                .expect("pragma");
            assert_eq!(pages, i64::from(WAL_CHECKPOINT_PAGES), "{name}");
            let cache: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(pool)
                .await
                .expect("pragma");
            assert_eq!(cache, wanted, "{name}");
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(pool)
                .await
                .expect("pragma");
            assert_eq!(mode, "wal", "{name}");
        }
    }

    #[test]
    fn a_batch_is_cut_into_statements_of_the_few_fixed_sizes() {
        let row = SampleRow {
            check: "c".into(),
            at: chrono::Utc::now(),
            duration_ms: 1.0,
            up: true,
            color: crate::core::Color::Green,
            status_code: Some(200),
            latency_ms: 1.0,
            message: String::new(),
            metrics: None,
            region: None,
        };
        let rows = vec![row; 1234];
        let sizes: Vec<usize> = chunks(&rows).map(<[SampleRow]>::len).collect();
        assert_eq!(sizes, [500, 500, 100, 100, 20, 5, 5, 1, 1, 1, 1]);
        assert_eq!(sizes.iter().sum::<usize>(), 1234);
        assert_eq!(chunks(&rows[..0]).count(), 0);
    }

    #[test]
    fn each_insert_size_binds_every_column_of_every_row() {
        for rows in ROWS_PER_INSERT {
            let sql = insert_sql(rows);
            assert_eq!(
                sql.matches('?').count(),
                rows * SampleRow::COLUMNS.len(),
                "{rows} rows"
            );
            assert_eq!(sql.matches('(').count(), rows + 1, "{rows} rows");
            assert!(std::ptr::eq(sql, insert_sql(rows)), "written once");
        }
    }
}
