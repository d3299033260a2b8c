//! A fresh database per test, on either backend: [`TestDb::sqlite`] (a file in
//! a temp dir) or [`TestDb::postgres`] (a new `keeper_test_<random>` database
//! on the server at `KEEPER_TEST_PG_URL`, dropped when the `TestDb` is).
//! [`both_backends!`] runs one async test body against each backend.

use std::time::Duration;

use keeper::store::Store;
use sqlx::{AssertSqlSafe, Connection};

/// The server tests use unless `KEEPER_TEST_PG_URL` names another.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One test's database. Dropping it removes the database (PostgreSQL: `DROP
/// DATABASE … WITH (FORCE)`, which also ends connections still open).
pub struct TestDb {
    url: String,
    backend: Backend,
    // Behind a lock so `drop_now` can run while the database is shared.
    cleanup: std::sync::Mutex<Cleanup>,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
    Done,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => TestDb::sqlite(),
            Backend::Postgres => TestDb::postgres().await,
        }
    }

    /// A new SQLite database file in a temp dir (the file itself is created on connect).
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("creating a temp dir for the test database");
        let url = format!("sqlite://{}", dir.path().join("keeper.db").display());
        TestDb {
            url,
            backend: Backend::Sqlite,
            cleanup: std::sync::Mutex::new(Cleanup::Sqlite(dir)),
        }
    }

    /// A new, empty PostgreSQL database. Panics (never skips) when no server answers.
    pub async fn postgres() -> TestDb {
        let admin_url =
            std::env::var("KEEPER_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_string());
        let name = format!("keeper_test_{:016x}", rand::random::<u64>());
        let mut admin = admin_connection(&admin_url).await;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("creating test database {name} on {admin_url}: {e}"));
        let _ = admin.close().await;
        let mut url = url::Url::parse(&admin_url)
            .unwrap_or_else(|e| panic!("KEEPER_TEST_PG_URL {admin_url:?} is not a URL: {e}"));
        url.set_path(&name);
        TestDb {
            url: url.to_string(),
            backend: Backend::Postgres,
            cleanup: std::sync::Mutex::new(Cleanup::Postgres { admin_url, name }),
        }
    }

    /// Another handle on the same database, for a second keeper sharing it
    /// (several instances on one PostgreSQL database). Dropping it removes
    /// nothing: the database goes with the original handle.
    pub fn shared(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            backend: self.backend,
            cleanup: std::sync::Mutex::new(Cleanup::Done),
        }
    }

    /// The database's URL, as `storage.url` would name it.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A store connected to this database, not migrated.
    pub async fn connect(&self) -> Store {
        Store::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connecting to test database {}: {e}", self.url))
    }

    /// A store connected to this database and migrated.
    pub async fn store(&self) -> Store {
        let store = self.connect().await;
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrating test database {}: {e}", self.url));
        store
    }

    /// Samples stored, wherever they are: `samples`, or SQLite's
    /// `samples_recent` before they move (store/sqlite.rs).
    pub async fn samples(&self) -> i64 {
        self.count("(SELECT at FROM samples UNION ALL SELECT at FROM samples_recent) s")
            .await
    }

    /// [`TestDb::samples`] of one check (a trusted name).
    pub async fn samples_of(&self, check: &str) -> i64 {
        self.samples_where(&format!("check_name = '{check}'")).await
    }

    /// [`TestDb::samples`] meeting `condition` (trusted SQL).
    pub async fn samples_where(&self, condition: &str) -> i64 {
        self.count(&format!(
            "(SELECT at FROM samples WHERE {condition} \
              UNION ALL SELECT at FROM samples_recent WHERE {condition}) s"
        ))
        .await
    }

    /// Rows in `table` (a trusted name), read with a connection of its own.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        let counted: Result<i64, sqlx::Error> = match self.backend {
            Backend::Sqlite => {
                async {
                    let mut conn = sqlx::SqliteConnection::connect(&self.url).await?;
                    sqlx::query_scalar(sql).fetch_one(&mut conn).await
                }
                .await
            }
            Backend::Postgres => {
                async {
                    let mut conn = sqlx::PgConnection::connect(&self.url).await?;
                    sqlx::query_scalar(sql).fetch_one(&mut conn).await
                }
                .await
            }
        };
        counted.unwrap_or_else(|e| panic!("counting rows of {table} in {}: {e}", self.url))
    }

    /// Runs `sql` (trusted, written by the test) with a connection of its own:
    /// another writer changing rows behind keeper's back.
    pub async fn execute(&self, sql: &str) -> u64 {
        let text = sql;
        let sql = AssertSqlSafe(sql.to_string());
        let done: Result<u64, sqlx::Error> = match self.backend {
            Backend::Sqlite => {
                async {
                    let mut conn = sqlx::SqliteConnection::connect(&self.url).await?;
                    Ok(sqlx::query(sql).execute(&mut conn).await?.rows_affected())
                }
                .await
            }
            Backend::Postgres => {
                async {
                    let mut conn = sqlx::PgConnection::connect(&self.url).await?;
                    Ok(sqlx::query(sql).execute(&mut conn).await?.rows_affected())
                }
                .await
            }
        };
        done.unwrap_or_else(|e| panic!("running {text:?} in {}: {e}", self.url))
    }

    /// Removes the database now, while stores may still point at it (they
    /// then fail: a database gone away). Dropping the `TestDb` does the same.
    pub async fn drop_now(&self) {
        let cleanup = std::mem::replace(
            &mut *self.cleanup.lock().unwrap_or_else(|p| p.into_inner()),
            Cleanup::Done,
        );
        if let Cleanup::Postgres { admin_url, name } = &cleanup {
            drop_database(admin_url, name).await;
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let cleanup = self.cleanup.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Cleanup::Postgres { admin_url, name } = &*cleanup {
            // Drop may run inside a runtime (or while one unwinds): clean up on a
            // thread with a runtime of its own, and wait for it.
            let (admin_url, name) = (admin_url.clone(), name.clone());
            let cleaned = std::thread::spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(drop_database(&admin_url, &name)),
                    Err(e) => eprintln!("dropping test database {name}: no runtime: {e}"),
                }
            })
            .join();
            if cleaned.is_err() {
                eprintln!("dropping a test database panicked");
            }
        }
    }
}

async fn admin_connection(admin_url: &str) -> sqlx::PgConnection {
    match tokio::time::timeout(
        Duration::from_secs(10),
        sqlx::PgConnection::connect(admin_url),
    )
    .await
    {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "PostgreSQL is required for these tests and did not accept a connection at \
             {admin_url} (set KEEPER_TEST_PG_URL, or start it: pg_ctlcluster \
             --skip-systemctl-redirect <version> main start): {e}"
        ),
        Err(_) => panic!("PostgreSQL at {admin_url} did not answer within 10 s"),
    }
}

async fn drop_database(admin_url: &str, name: &str) {
    let mut admin = admin_connection(admin_url).await;
    let dropped = sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
    if let Err(e) = dropped {
        eprintln!("dropping test database {name} on {admin_url}: {e}");
    }
    let _ = admin.close().await;
}

/// Runs one async test body against SQLite and against PostgreSQL, each on a
/// fresh [`TestDb`] bound to the given name. Expands to a module named after
/// the test holding two `#[tokio::test]`s, `sqlite` and `postgres`:
///
/// ```ignore
/// both_backends!(async fn opens_once(db) {
///     let store = db.store().await;
///     // …
/// });
/// ```
macro_rules! both_backends {
    ($(#[$attr:meta])* async fn $name:ident($db:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$attr])*
            #[tokio::test]
            async fn sqlite() {
                $crate::support::init();
                #[allow(unused_mut)]
                let mut $db = $crate::support::db::TestDb::sqlite();
                $body
            }

            $(#[$attr])*
            #[tokio::test]
            async fn postgres() {
                $crate::support::init();
                #[allow(unused_mut)]
                let mut $db = $crate::support::db::TestDb::postgres().await;
                $body
            }
        }
    };
}
pub(crate) use both_backends;
