//! The store's queries, each written once for both backends, and the small
//! dialect they run on. SQL uses PostgreSQL's `$n` placeholders, which SQLite
//! reads too (`$n` binds the n-th argument). What the backends store
//! differently is settled here and nowhere else: a timestamp is INTEGER unix
//! milliseconds (UTC) on SQLite and TIMESTAMPTZ on PostgreSQL ([`Stmt::time`],
//! [`Row::time`]); the few statements they spell differently go through
//! [`Store::pick`]. Enums are stored as their lowercase names, notifications
//! and silence labels as JSON text, on both.
//!
//! A [`Stmt`] binds its arguments straight into the backend's own query (no
//! values in between), so a query costs what it cost when each backend had
//! its copy.

mod heartbeats;
mod incidents;
mod outbox;
mod samples;
mod silences;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{
    Database, Decode, Encode, Pool, Postgres, Row as _, SqlSafeStr, Sqlite, Transaction, Type,
};

use super::{Store, StoreError};

/// Where a statement runs: on a pool (a connection for this statement), or
/// in a transaction.
pub(crate) enum On<'c, DB: Database> {
    Pool(&'c Pool<DB>),
    Tx(&'c mut DB::Connection),
}

/// One statement on the store's backend, with its arguments bound so far.
pub(crate) enum Stmt<'c> {
    Sqlite(Query<'static, Sqlite, SqliteArguments>, On<'c, Sqlite>),
    Postgres(Query<'static, Postgres, PgArguments>, On<'c, Postgres>),
}

/// A row read from either backend.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

/// A transaction on the store's backend.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Runs `$body` with the query `$q` and executor `$e` of whichever backend `$stmt` is on.
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
    /// IMMEDIATE`), so it waits for another writer up front rather than
    /// failing when it first writes.
    pub(crate) async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Store::Sqlite(s) => Tx::Sqlite(s.pool.begin_with("BEGIN IMMEDIATE").await?),
            Store::Postgres(s) => Tx::Postgres(s.pool.begin().await?),
        })
    }

    /// The statement for this backend, where the two spell it differently.
    pub(crate) fn pick(&self, sqlite: &'static str, postgres: &'static str) -> &'static str {
        match self {
            Store::Sqlite(_) => sqlite,
            Store::Postgres(_) => postgres,
        }
    }

    /// Whether the database answers (`/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.query("SELECT 1")
            .execute()
            .await
            .doing("pinging the database")?;
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

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
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

    /// Binds the next argument, a timestamp (or NULL), as the backend stores it.
    pub(crate) fn time(self, at: impl Into<Option<DateTime<Utc>>>) -> Self {
        let at = at.into();
        match self {
            Stmt::Sqlite(q, on) => Stmt::Sqlite(q.bind(at.map(|t| t.timestamp_millis())), on),
            Stmt::Postgres(q, on) => Stmt::Postgres(q.bind(at), on),
        }
    }

    /// Runs the statement; returns how many rows it changed.
    pub(crate) async fn execute(self) -> Result<u64, sqlx::Error> {
        run!(self, |q, e| Ok(q.execute(e).await?.rows_affected()))
    }

    pub(crate) async fn fetch_all(self) -> Result<Vec<Row>, sqlx::Error> {
        run!(self, |q, e| Ok(q
            .fetch_all(e)
            .await?
            .into_iter()
            .map(Row::from)
            .collect()))
    }

    pub(crate) async fn fetch_optional(self) -> Result<Option<Row>, sqlx::Error> {
        run!(self, |q, e| Ok(q.fetch_optional(e).await?.map(Row::from)))
    }

    pub(crate) async fn fetch_one(self) -> Result<Row, sqlx::Error> {
        run!(self, |q, e| Ok(Row::from(q.fetch_one(e).await?)))
    }
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
    pub(crate) fn time(&self, what: &'static str) -> Result<DateTime<Utc>, StoreError> {
        match self {
            Row::Sqlite(row) => from_millis(row.try_get(column_of(what))?, what),
            Row::Postgres(row) => Ok(row.try_get(column_of(what))?),
        }
    }

    /// A timestamp column that may be NULL, named `table.column` for the error.
    pub(crate) fn opt_time(&self, what: &'static str) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self {
            Row::Sqlite(row) => row
                .try_get::<Option<i64>, _>(column_of(what))?
                .map(|ms| from_millis(ms, what))
                .transpose(),
            Row::Postgres(row) => Ok(row.try_get(column_of(what))?),
        }
    }

    /// A text column holding a value keeper parses (a colour, a severity),
    /// named `table.column` for the error.
    pub(crate) fn parse<T>(&self, what: &'static str) -> Result<T, StoreError>
    where
        T: std::str::FromStr<Err: std::fmt::Display>,
    {
        let text: String = self.get(column_of(what))?;
        text.parse()
            .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
    }

    /// The row's `id`, for logging a row that does not decode.
    pub(crate) fn id_key(&self) -> String {
        self.get::<i64>("id")
            .map_or_else(|e| format!("(unreadable id: {e})"), |id| id.to_string())
    }

    /// The row's `check_name`, for logging a row that does not decode.
    pub(crate) fn check_key(&self) -> String {
        self.get::<String>("check_name")
            .unwrap_or_else(|e| format!("(unreadable check_name: {e})"))
    }
}

fn column_of(what: &'static str) -> &'static str {
    what.rsplit('.').next().unwrap_or(what)
}

fn from_millis(ms: i64, what: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: timestamp {ms} out of range")))
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

/// Decodes rows read at start-up one by one: a row that does not decode is
/// skipped with a warning naming `table`, its `key` and why, and a total is
/// logged, so one bad row never stops keeper from starting.
pub(crate) fn decode_each<T>(
    table: &'static str,
    rows: Vec<Row>,
    key: fn(&Row) -> String,
    decode: fn(&Row) -> Result<T, StoreError>,
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
