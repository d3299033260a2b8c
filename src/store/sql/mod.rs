//! The store's queries, each written once for both backends, and the small
//! dialect they run on. SQL uses PostgreSQL's `$n` placeholders, which SQLite
//! reads too (`$n` binds the n-th argument). What the backends store
//! differently is settled here and nowhere else: a timestamp is INTEGER unix
//! milliseconds (UTC) on SQLite and TIMESTAMPTZ on PostgreSQL ([`Stmt::time`],
//! [`Row::time`]); the few statements they spell differently go through
//! [`Store::pick`]. Enums are stored as their lowercase names, notifications
//! and silence labels as JSON text, on both.
//!
//! A [`Stmt`] binds its arguments straight into the backend's own query, so a
//! query costs what it cost when each backend had its own copy.

pub(crate) mod cluster;
mod deployments;
mod heartbeats;
mod incidents;
mod outbox;
mod rollups;
mod samples;
mod silences;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Database, Decode, Encode, Pool, Postgres, Row as _, SqlSafeStr, Sqlite, Type};

use super::{Pools, Store, StoreError};

/// The store's results: a [`StoreError`] unless said otherwise.
pub(crate) type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One statement on the store's backend, with the arguments bound so far.
pub(crate) enum Stmt<'c> {
    Sqlite(Query<'static, Sqlite, SqliteArguments>, On<'c, Sqlite>),
    Postgres(Query<'static, Postgres, PgArguments>, On<'c, Postgres>),
}

/// Where a statement runs: on a connection of the pool, or in a transaction.
pub(crate) enum On<'c, DB: Database> {
    Pool(&'c Pool<DB>),
    Tx(&'c mut DB::Connection),
}

/// Which of a backend's write pools a transaction is on.
#[derive(Clone, Copy)]
enum Writer {
    /// The engine's, the outbox's, everyone's.
    Shared,
    /// The sample writer's ([`Pools`]'s `samples`).
    Samples,
}

impl Writer {
    fn pool<DB: Database>(self, pools: &Pools<DB>) -> &Pool<DB> {
        match self {
            Writer::Shared => &pools.pool,
            Writer::Samples => &pools.samples,
        }
    }
}

/// A transaction on the store's backend.
pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// A row read from either backend.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

/// Runs `$body` with the query `$q` and the executor `$e` of `$stmt`'s backend.
macro_rules! run {
    ($stmt:expr, |$q:ident, $e:ident| $body:expr) => {
        match $stmt {
            Stmt::Sqlite($q, On::Pool($e)) => $body,
            Stmt::Sqlite($q, On::Tx($e)) => $body,
            Stmt::Postgres($q, On::Pool($e)) => $body,
            Stmt::Postgres($q, On::Tx($e)) => $body,
        }
    };
}

impl Store {
    /// A statement on the store's pool.
    pub(crate) fn query(&self, sql: impl SqlSafeStr) -> Stmt<'_> {
        match self {
            Store::Sqlite(s) => Stmt::Sqlite(sqlx::query(sql), On::Pool(&s.pool)),
            Store::Postgres(s) => Stmt::Postgres(sqlx::query(sql), On::Pool(&s.pool)),
        }
    }

    /// Starts a transaction. SQLite's takes the write lock at once (`BEGIN
    /// IMMEDIATE`): it waits for another writer up front instead of failing
    /// when it first writes.
    pub(crate) async fn begin(&self, doing: &'static str) -> Result<Tx> {
        self.begin_on(Writer::Shared, doing).await
    }

    /// [`Store::begin`] on the sample writer's own connection.
    pub(crate) async fn begin_samples(&self, doing: &'static str) -> Result<Tx> {
        self.begin_on(Writer::Samples, doing).await
    }

    async fn begin_on(&self, writer: Writer, doing: &'static str) -> Result<Tx> {
        match self {
            Store::Sqlite(s) => {
                (writer.pool(s).begin_with("BEGIN IMMEDIATE").await).map(Tx::Sqlite)
            }
            Store::Postgres(s) => writer.pool(s).begin().await.map(Tx::Postgres),
        }
        .doing(doing)
    }

    /// The statement for this backend, where the two spell it differently.
    pub(crate) fn pick(&self, sqlite: &'static str, postgres: &'static str) -> &'static str {
        match self {
            Store::Sqlite(_) => sqlite,
            Store::Postgres(_) => postgres,
        }
    }

    /// An SQL expression: the timestamp column `column` as whole unix
    /// milliseconds (a BIGINT, rounded down like SQLite's stored values), so a
    /// query written once can bucket times by hour (`/ 3600000`) or day.
    pub(crate) fn millis(&self, column: &str) -> String {
        match self {
            Store::Sqlite(_) => column.to_string(),
            Store::Postgres(_) => format!("floor(extract(epoch FROM {column}) * 1000)::bigint"),
        }
    }

    /// Whether the database answers (`/readyz`).
    pub async fn ping(&self) -> Result<()> {
        self.query("SELECT 1")
            .execute("pinging the database")
            .await?;
        Ok(())
    }
}

impl Tx {
    /// A statement in this transaction.
    pub(crate) fn query(&mut self, sql: impl SqlSafeStr) -> Stmt<'_> {
        match self {
            Tx::Sqlite(tx) => Stmt::Sqlite(sqlx::query(sql), On::Tx(&mut **tx)),
            Tx::Postgres(tx) => Stmt::Postgres(sqlx::query(sql), On::Tx(&mut **tx)),
        }
    }

    pub(crate) async fn commit(self, doing: &'static str) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
        .doing(doing)
    }
}

impl Stmt<'_> {
    /// Binds the next argument, a value both backends store alike.
    pub(crate) fn bind<'t, T>(self, value: T) -> Self
    where
        T: Encode<'t, Sqlite> + Type<Sqlite> + Encode<'t, Postgres> + Type<Postgres>,
    {
        match self {
            Stmt::Sqlite(q, on) => Stmt::Sqlite(q.bind(value), on),
            Stmt::Postgres(q, on) => Stmt::Postgres(q.bind(value), on),
        }
    }

    /// Binds the next argument, a timestamp or NULL, as the backend stores it.
    pub(crate) fn time(self, at: impl Into<Option<DateTime<Utc>>>) -> Self {
        let at = at.into();
        match self {
            Stmt::Sqlite(q, on) => Stmt::Sqlite(q.bind(at.map(|t| t.timestamp_millis())), on),
            Stmt::Postgres(q, on) => Stmt::Postgres(q.bind(at), on),
        }
    }

    /// Runs the statement; returns how many rows it changed.
    pub(crate) async fn execute(self, doing: &'static str) -> Result<u64> {
        run!(self, |q, e| q
            .execute(e)
            .await
            .map(|done| done.rows_affected()))
        .doing(doing)
    }

    pub(crate) async fn rows(self, doing: &'static str) -> Result<Vec<Row>> {
        run!(self, |q, e| q.fetch_all(e).await.map(into_rows)).doing(doing)
    }

    pub(crate) async fn row(self, doing: &'static str) -> Result<Option<Row>> {
        run!(self, |q, e| q
            .fetch_optional(e)
            .await
            .map(|r| r.map(Row::from)))
        .doing(doing)
    }

    /// The one row a statement always returns (an aggregate, an upsert).
    pub(crate) async fn one(self, doing: &'static str) -> Result<Row> {
        run!(self, |q, e| q.fetch_one(e).await.map(Row::from)).doing(doing)
    }

    /// Every row, decoded; the first that does not decode fails the call.
    pub(crate) async fn all<T>(
        self,
        decode: fn(&Row) -> Result<T>,
        doing: &'static str,
    ) -> Result<Vec<T>> {
        self.rows(doing).await?.iter().map(decode).collect()
    }
}

fn into_rows<R: Into<Row>>(rows: Vec<R>) -> Vec<Row> {
    rows.into_iter().map(Into::into).collect()
}

impl From<SqliteRow> for Row {
    fn from(row: SqliteRow) -> Row {
        Row::Sqlite(row)
    }
}

impl From<PgRow> for Row {
    fn from(row: PgRow) -> Row {
        Row::Postgres(row)
    }
}

/// The Rust type of a timestamp column: `DateTime<Utc>`, or an `Option` of
/// it where the column may be NULL.
pub(crate) trait Time: for<'r> Decode<'r, Postgres> + Type<Postgres> + Sized {
    /// What SQLite stores: unix milliseconds.
    type Millis: for<'r> Decode<'r, Sqlite> + Type<Sqlite>;
    fn from_millis(ms: Self::Millis, what: &str) -> Result<Self>;
}

impl Time for DateTime<Utc> {
    type Millis = i64;
    fn from_millis(ms: i64, what: &str) -> Result<Self> {
        DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| StoreError::Corrupt(format!("{what}: timestamp {ms} out of range")))
    }
}

impl Time for Option<DateTime<Utc>> {
    type Millis = Option<i64>;
    fn from_millis(ms: Option<i64>, what: &str) -> Result<Self> {
        ms.map(|ms| <DateTime<Utc> as Time>::from_millis(ms, what))
            .transpose()
    }
}

impl Row {
    /// A column both backends store alike.
    pub(crate) fn get<T>(&self, column: &str) -> Result<T, sqlx::Error>
    where
        T: for<'r> Decode<'r, Sqlite>
            + Type<Sqlite>
            + for<'r> Decode<'r, Postgres>
            + Type<Postgres>,
    {
        match self {
            Row::Sqlite(row) => row.try_get(column),
            Row::Postgres(row) => row.try_get(column),
        }
    }

    /// A timestamp column, named `table.column` for the error.
    pub(crate) fn time<T: Time>(&self, what: &'static str) -> Result<T> {
        match self {
            Row::Sqlite(row) => T::from_millis(row.try_get(column_of(what))?, what),
            Row::Postgres(row) => Ok(row.try_get(column_of(what))?),
        }
    }

    /// A text column keeper parses (a colour, a severity, JSON) with `parse`,
    /// named `table.column` for the error.
    pub(crate) fn text<T, E: std::fmt::Display>(
        &self,
        what: &'static str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T> {
        let text: String = self.get(column_of(what))?;
        parse(&text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
    }
}

fn column_of(what: &'static str) -> &'static str {
    what.rsplit('.').next().unwrap_or(what)
}

/// Attaches what was being done to a database error.
pub(crate) trait Doing<T> {
    fn doing(self, doing: &'static str) -> Result<T>;
}

impl<T> Doing<T> for Result<T, sqlx::Error> {
    fn doing(self, doing: &'static str) -> Result<T> {
        self.map_err(|source| StoreError::Query { doing, source })
    }
}

/// Decodes rows read at start-up one by one: a row that does not decode is
/// skipped with a warning naming `table`, the row's `key` column and why, and
/// a total is logged, so one bad row never stops keeper from starting.
fn decode_each<T>(
    table: &'static str,
    key: &'static str,
    rows: Vec<Row>,
    decode: fn(&Row) -> Result<T>,
) -> Vec<T> {
    let mut good = Vec::with_capacity(rows.len());
    for row in &rows {
        match decode(row) {
            Ok(value) => good.push(value),
            Err(error) => {
                let key = (row.get::<i64>(key).map(|n| n.to_string()))
                    .or_else(|_| row.get::<String>(key))
                    .unwrap_or_else(|e| format!("(unreadable {key}: {e})"));
                tracing::warn!(table, row = %key, %error, "skipping a stored row that does not decode");
            }
        }
    }
    if good.len() < rows.len() {
        let skipped = rows.len() - good.len();
        tracing::warn!(
            table,
            skipped,
            kept = good.len(),
            "skipped rows that do not decode"
        );
    }
    good
}
