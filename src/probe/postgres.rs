//! The `postgres` probe: connect (one `PgConnection` per run, never a pool),
//! time `SELECT 1`, then read connection use against `max_connections`, the
//! database's size and, when `pg_stat_statements` is installed and readable,
//! the slowest statements by mean time. The connection is closed at the end.
//!
//! A refused connection, a failed authentication or a missing database is a
//! red sample naming the server; the password never appears in a message.
//! What comes after `SELECT 1` is best effort: a database that answers is up
//! even when its statistics cannot be read, and the message says why.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};
use tokio::time::{Instant, timeout_at};

use super::{BuildError, Context, Kind, tcp};
use crate::core::Metric;
use crate::core::Sample;
use crate::core::SpecProblem;

/// The most statements `slow_statements` may name (one message line each is long enough).
const MAX_SLOW_STATEMENTS: u32 = 20;
/// How much of a statement's text the message shows.
const STATEMENT_CHARS: usize = 60;

/// `[checks.NAME]` keys of kind `postgres`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub url: PgUrl,
    /// How many of the slowest statements (by mean time) to name; 0: don't look.
    #[serde(
        default = "default_slow_statements",
        deserialize_with = "slow_statements"
    )]
    pub slow_statements: u32,
}

fn default_slow_statements() -> u32 {
    3
}

fn slow_statements<'de, D: Deserializer<'de>>(de: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(de)?;
    if n > MAX_SLOW_STATEMENTS {
        return Err(de::Error::custom(format!(
            "slow_statements: at most {MAX_SLOW_STATEMENTS}, got {n}"
        )));
    }
    Ok(n)
}

/// A `postgres://` URL, checked while the config is read. Its `Debug` and
/// `Display` hide the password.
#[derive(Clone)]
pub struct PgUrl {
    url: String,
    redacted: String,
}

impl PgUrl {
    /// The URL with its password and every query value as `***` (see [`crate::core::redact::dsn`]).
    pub fn redacted(&self) -> &str {
        &self.redacted
    }
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgUrl({:?})", self.redacted)
    }
}

impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl FromStr for PgUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = url::Url::parse(s).map_err(|e| format!("invalid url: {e}"))?;
        let redacted = crate::core::redact::dsn(s);
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "url {redacted}: scheme {:?} is not postgres or postgresql",
                parsed.scheme()
            ));
        }
        // Reject what the driver would refuse at connect time (a bad port, sslmode …).
        PgConnectOptions::from_str(s).map_err(|e| format!("url {redacted}: {e}"))?;
        Ok(PgUrl {
            url: s.to_string(),
            redacted,
        })
    }
}

impl<'de> Deserialize<'de> for PgUrl {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(de)?;
        raw.parse().map_err(de::Error::custom)
    }
}

impl Kind for Spec {
    const NAME: &'static str = "postgres";
    /// Boxed: the largest probe, and every check holds a `Probe`.
    type Probe = Box<Probe>;

    fn target(&self) -> String {
        self.url.redacted().to_string()
    }

    /// `url` and `slow_statements` are checked as they are read.
    fn problems(&self) -> Vec<SpecProblem> {
        Vec::new()
    }

    fn build(&self, _check: &str, _ctx: &Context) -> Result<Box<Probe>, BuildError> {
        let options = PgConnectOptions::from_str(&self.url.url)
            .map_err(|e| BuildError(format!("url {}: {e}", self.url)))?
            .application_name("keeper")
            .disable_statement_logging();
        let server = match options.get_socket() {
            Some(dir) => format!("{}/.s.PGSQL.{}", dir.display(), options.get_port()),
            None => format!("{}:{}", options.get_host(), options.get_port()),
        };
        Ok(Box::new(Probe {
            options,
            server,
            slow_statements: self.slow_statements,
        }))
    }
}

/// A built `postgres` probe. Its `Debug` leaves the connect options (and so
/// the password) out.
pub struct Probe {
    options: PgConnectOptions,
    /// `host:port` or the socket path, for messages.
    server: String,
    slow_statements: u32,
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("postgres::Probe")
            .field("server", &self.server)
            .field("slow_statements", &self.slow_statements)
            .finish_non_exhaustive()
    }
}

/// What the statistics queries found.
#[derive(Debug, Default)]
struct Stats {
    connections: i64,
    max_connections: i64,
    db_size_bytes: i64,
    /// `None`: pg_stat_statements is not installed in this database.
    slowest: Option<Result<Vec<Statement>, String>>,
}

/// One row of pg_stat_statements.
#[derive(Debug, PartialEq)]
struct Statement {
    query: String,
    mean_ms: f64,
    calls: i64,
}

impl Probe {
    pub async fn run(&self, deadline: Instant) -> Sample {
        let mut conn = match timeout_at(deadline, self.options.connect()).await {
            Err(_) => return Sample::down(format!("timed out connecting to {}", self.server)),
            Ok(Err(e)) => return Sample::down(self.connect_reason(&e)),
            Ok(Ok(conn)) => conn,
        };
        let sample = self.measure(&mut conn, deadline).await;
        // Terminate politely, but never past the deadline; dropping closes the socket anyway.
        let _ = timeout_at(deadline, conn.close()).await;
        sample
    }

    async fn measure(&self, conn: &mut PgConnection, deadline: Instant) -> Sample {
        let started = Instant::now();
        let one = sqlx::query_scalar::<_, i32>("SELECT 1").persistent(false);
        match timeout_at(deadline, one.fetch_one(&mut *conn)).await {
            Err(_) => return Sample::down(format!("{}: timed out running SELECT 1", self.server)),
            Ok(Err(e)) => {
                return Sample::down(format!("{}: SELECT 1: {}", self.server, error_text(&e)));
            }
            Ok(Ok(_)) => {}
        }
        let query_ms = tcp::ms(started.elapsed());
        let mut message = format!("SELECT 1 in {}", format_ms(query_ms));
        let stats = match timeout_at(deadline, self.stats(conn, deadline)).await {
            Err(_) => Err("timed out".to_string()),
            Ok(Err(e)) => Err(error_text(&e)),
            Ok(Ok(stats)) => Ok(stats),
        };
        let mut sample = Sample::up("");
        sample.metrics.push((Metric::QueryMs, query_ms));
        match stats {
            Ok(stats) => {
                message.push_str(&stats.describe());
                if stats.max_connections > 0 {
                    let pct = stats.connections as f64 * 100.0 / stats.max_connections as f64;
                    sample.metrics.push((Metric::ConnectionsPct, pct));
                }
                sample.values.extend([
                    ("connections".to_string(), stats.connections as f64),
                    ("max_connections".to_string(), stats.max_connections as f64),
                    ("db_size_bytes".to_string(), stats.db_size_bytes as f64),
                ]);
            }
            Err(reason) => message.push_str(&format!("; statistics unavailable: {reason}")),
        }
        sample.message = message;
        sample
    }

    /// Connection use, size and the slowest statements, in one read-only
    /// transaction whose `statement_timeout` ends at the deadline (`SET LOCAL`:
    /// nothing leaks into a pooler's shared server connection).
    async fn stats(&self, conn: &mut PgConnection, deadline: Instant) -> sqlx::Result<Stats> {
        let mut tx = conn.begin().await?;
        let left = deadline.saturating_duration_since(Instant::now());
        let left_ms = left.max(Duration::from_millis(1)).as_millis().to_string();
        sqlx::query("SELECT set_config('statement_timeout', $1, true)")
            .bind(left_ms)
            .persistent(false)
            .execute(&mut *tx)
            .await?;
        let (connections, max_connections, db_size_bytes): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), \
                    current_setting('max_connections')::int8, \
                    pg_database_size(current_database())",
        )
        .persistent(false)
        .fetch_one(&mut *tx)
        .await?;
        let slowest = if self.slow_statements == 0 {
            None
        } else {
            slowest_statements(&mut tx, self.slow_statements).await?
        };
        tx.rollback().await?;
        Ok(Stats {
            connections,
            max_connections,
            db_size_bytes,
            slowest,
        })
    }

    /// Words for a failed connect: `127.0.0.1:5432: connection refused`,
    /// `127.0.0.1:5432: password authentication failed for user "app"`.
    fn connect_reason(&self, err: &sqlx::Error) -> String {
        let server = &self.server;
        match err {
            sqlx::Error::Io(e) => format!("connect {server}: {}", tcp::io_reason(e)),
            sqlx::Error::Tls(e) => format!("{server}: TLS: {e}"),
            sqlx::Error::Protocol(e) => {
                // sqlx appends where in its source it noticed: not for people.
                let e = match e.rfind(" (sqlx_") {
                    Some(at) if e.ends_with(')') => &e[..at],
                    _ => e,
                };
                format!("{server}: does not speak the PostgreSQL protocol: {e}")
            }
            other => format!("{server}: {}", error_text(other)),
        }
    }
}

/// The slowest statements of the current database, or `None` when the
/// extension is not installed in it. A view that cannot be read (the library
/// not preloaded, no privilege) is `Some(Err(reason))`.
async fn slowest_statements(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    limit: u32,
) -> sqlx::Result<Option<Result<Vec<Statement>, String>>> {
    let installed: Option<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, e.extversion FROM pg_extension e \
         JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'",
    )
    .persistent(false)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((schema, version)) = installed else {
        return Ok(None);
    };
    // Version 1.8 (PostgreSQL 13) renamed mean_time to mean_exec_time.
    let mean = if version_at_least(&version, (1, 8)) {
        "mean_exec_time"
    } else {
        "mean_time"
    };
    let sql = format!(
        "SELECT query, {mean}, calls FROM {}.pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND query IS NOT NULL AND query <> '<insufficient privilege>' \
         ORDER BY {mean} DESC LIMIT $1",
        quote_ident(&schema)
    );
    // A failure here aborts the transaction, but nothing else runs in it.
    let rows: Result<Vec<(String, f64, i64)>, _> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(i64::from(limit))
        .persistent(false)
        .fetch_all(&mut **tx)
        .await;
    Ok(Some(match rows {
        Ok(rows) => Ok(rows
            .into_iter()
            .map(|(query, mean_ms, calls)| Statement {
                query: one_line(&query, STATEMENT_CHARS),
                mean_ms,
                calls,
            })
            .collect()),
        Err(e) => Err(error_text(&e)),
    }))
}

impl Stats {
    /// `; 12/100 connections (12%); 45 MB; slowest: 120 ms × 30 "SELECT …"`.
    fn describe(&self) -> String {
        let mut out = String::new();
        if self.max_connections > 0 {
            let pct = self.connections as f64 * 100.0 / self.max_connections as f64;
            out.push_str(&format!(
                "; {}/{} connections ({pct:.0}%)",
                self.connections, self.max_connections
            ));
        }
        out.push_str(&format!("; {}", format_bytes(self.db_size_bytes)));
        match &self.slowest {
            None => {}
            Some(Ok(statements)) if statements.is_empty() => {}
            Some(Ok(statements)) => {
                let named: Vec<String> = statements
                    .iter()
                    .map(|s| format!("{} × {} {:?}", format_ms(s.mean_ms), s.calls, s.query))
                    .collect();
                out.push_str(&format!("; slowest: {}", named.join(", ")));
            }
            Some(Err(reason)) => out.push_str(&format!("; pg_stat_statements: {reason}")),
        }
        out
    }
}

/// A database error's own message (`password authentication failed for user
/// "app"`), any other error's display.
fn error_text(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(e) => e.message().to_string(),
        sqlx::Error::Io(e) => tcp::io_reason(e),
        other => other.to_string(),
    }
}

/// `"1.10"` ≥ `(1, 8)`, comparing numbers, not strings.
fn version_at_least(version: &str, want: (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= want
}

/// An SQL identifier, double-quoted.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Whitespace runs as one space, cut to `max` characters with `…`.
fn one_line(text: &str, max: usize) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let joined = words.join(" ");
    if joined.chars().count() <= max {
        return joined;
    }
    let mut cut: String = joined.chars().take(max.saturating_sub(1)).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

/// `0.4 ms`, `12 ms`.
fn format_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// Sizes as `pg_size_pretty` writes them (1024-based): `8 kB`, `45 MB`, `3 GB`.
fn format_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 10 * 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 10.0 * 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.0} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_is_redacted_in_userinfo_and_parameters() {
        let url: PgUrl =
            "postgres://app:s3cret@db.internal:5433/orders?password=s3cret&sslmode=require"
                .parse()
                .unwrap();
        assert_eq!(
            url.redacted(),
            "postgres://app:***@db.internal:5433/orders?password=***&sslmode=***"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        let probe = Spec {
            url,
            slow_statements: 3,
        }
        .build("db", &Context::system())
        .unwrap();
        assert!(!format!("{probe:?}").contains("s3cret"), "{probe:?}");
        assert_eq!(probe.server, "db.internal:5433");
    }

    #[test]
    fn bad_urls_are_refused_without_the_password() {
        let err = "mysql://app:s3cret@db/x".parse::<PgUrl>().unwrap_err();
        assert!(err.contains("not postgres"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        let err = "postgres://app:s3cret@db/x?sslmode=sometimes"
            .parse::<PgUrl>()
            .unwrap_err();
        assert!(err.contains("app:***@db"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        assert!("not a url".parse::<PgUrl>().is_err());
    }

    #[test]
    fn statements_become_one_short_line() {
        assert_eq!(
            one_line("SELECT *\n  FROM orders\n\tWHERE id = $1", 60),
            "SELECT * FROM orders WHERE id = $1"
        );
        let cut = one_line(&format!("SELECT {}", "a, ".repeat(40)), 20);
        assert!(cut.chars().count() <= 20, "{cut}");
        assert!(
            cut.starts_with("SELECT a, a,") && cut.ends_with(",…"),
            "{cut}"
        );
    }

    #[test]
    fn sizes_and_times_read_like_pg_size_pretty() {
        assert_eq!(format_bytes(8000), "8000 bytes");
        assert_eq!(format_bytes(7_700_000), "7520 kB");
        assert_eq!(format_bytes(45 * 1024 * 1024), "45 MB");
        assert_eq!(format_bytes(3 * 1024 * 1024 * 1024 * 1024), "3072 GB");
        assert_eq!(format_ms(0.42), "0.4 ms");
        assert_eq!(format_ms(120.4), "120 ms");
    }

    #[test]
    fn extension_versions_compare_as_numbers() {
        assert!(version_at_least("1.10", (1, 8)));
        assert!(version_at_least("1.8", (1, 8)));
        assert!(!version_at_least("1.7", (1, 8)));
    }

    #[test]
    fn message_names_connections_size_and_slowest() {
        let stats = Stats {
            connections: 12,
            max_connections: 100,
            db_size_bytes: 45 * 1024 * 1024,
            slowest: Some(Ok(vec![Statement {
                query: "SELECT * FROM orders WHERE id = $1".into(),
                mean_ms: 120.0,
                calls: 30,
            }])),
        };
        assert_eq!(
            stats.describe(),
            "; 12/100 connections (12%); 45 MB; slowest: 120 ms × 30 \"SELECT * FROM orders WHERE id = $1\""
        );
    }
}
