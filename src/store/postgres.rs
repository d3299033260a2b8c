//! The PostgreSQL backend of the store, for production and for several keeper
//! instances sharing one database. Owns connecting (pools, [`PgLimits`]),
//! migrating and the bulk sample insert (one `COPY … FROM STDIN` per batch);
//! every other query is in `store/sql/`, shared with SQLite.
//!
//! The read-only pool for API reads has a shorter `statement_timeout`. Every connection asks the server for a
//! `statement_timeout`, TCP keepalives and an idle-in-transaction timeout (see
//! [`PgLimits`]), so a statement or a transaction left behind by a stalled
//! client ends on the server.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use super::sql::Doing;
use super::{Pools, SampleRow, StoreError};

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

/// The store's pools on PostgreSQL.
pub type PgStore = Pools<Postgres>;

impl Pools<Postgres> {
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
        let samples = pool.clone();
        Ok(Pools {
            pool,
            samples,
            reads,
        })
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

    /// The latest migration this keeper knows.
    pub(super) fn known_migration() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }
}

/// One `COPY … FROM STDIN` in `tx`, which it commits (faster than UNNEST here: ~320k rows/s
/// against ~190k in `bench`), sent in chunks of [`ROWS_PER_CHUNK`] rows. In
/// COPY's binary format: the server parses no timestamps or floats (psql's
/// own COPY of the bench's rows: 1.07-1.16 s binary, 1.27-1.33 s text).
pub(super) async fn insert_samples(
    mut tx: Transaction<'static, Postgres>,
    rows: &[SampleRow],
) -> Result<(), StoreError> {
    let columns = SampleRow::COLUMNS.join(", ");
    let mut copy = tx
        .copy_in_raw(&format!(
            "COPY samples ({columns}) FROM STDIN (FORMAT binary)"
        ))
        .await
        .doing("starting to copy samples")?;
    let mut buf = Vec::with_capacity(rows.len().min(ROWS_PER_CHUNK) * 96);
    buf.extend_from_slice(COPY_HEADER);
    for chunk in rows.chunks(ROWS_PER_CHUNK) {
        for row in chunk {
            copy_row(&mut buf, row);
        }
        copy.send(buf.as_slice()).await.doing("copying samples")?;
        buf.clear();
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    copy.send(buf.as_slice()).await.doing("copying samples")?;
    copy.finish().await.doing("finishing the sample copy")?;
    tx.commit().await.doing("committing samples")?;
    Ok(())
}

/// The binary format's signature, flags (none) and header extension (none).
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// One sample as a tuple of `COPY … (FORMAT binary)`: the field count, then
/// each field's length (-1 for NULL) and bytes, in network order.
fn copy_row(buf: &mut Vec<u8>, row: &SampleRow) {
    fn field(buf: &mut Vec<u8>, bytes: &[u8]) {
        let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(&bytes[..len as usize]);
    }
    fn null(buf: &mut Vec<u8>) {
        buf.extend_from_slice(&(-1i32).to_be_bytes());
    }
    fn text(buf: &mut Vec<u8>, value: Option<&str>) {
        let Some(value) = value else {
            return null(buf);
        };
        let value = crate::core::text::without_nul(value);
        // A field's length is an i32: a text past it (no probe writes one)
        // is cut at a character, never inside one.
        let end = value.floor_char_boundary(i32::MAX as usize);
        field(buf, value[..end].as_bytes());
    }
    buf.extend_from_slice(&10i16.to_be_bytes());
    text(buf, Some(&row.check));
    let at = row.at.timestamp_micros() - PG_EPOCH_MICROS;
    field(buf, &at.to_be_bytes());
    field(buf, &row.duration_ms.to_be_bytes());
    field(buf, &[u8::from(row.up)]);
    text(buf, Some(row.color.as_str()));
    match row.status_code {
        Some(code) => field(buf, &i32::from(code).to_be_bytes()),
        None => null(buf),
    }
    field(buf, &row.latency_ms.to_be_bytes());
    text(buf, Some(&row.message));
    text(buf, row.metrics.as_deref());
    text(buf, row.region.as_deref());
}
