//! keeper running in-process for a test, zero2prod style: [`spawn_app`]
//! makes a fresh database (a randomly named PostgreSQL database or a SQLite
//! file, dropped with the app), starts keeper on it from a [`TestConfig`]
//! listening on port 0, and the test talks to it over HTTP like a client.

use std::path::Path;

use keeper::app::{self, Keeper};
use keeper::config::Config;

use super::config::TestConfig;
use super::db::{Backend, TestDb};

/// A fresh database of `backend` and keeper running on it with `config`.
pub async fn spawn_app(backend: Backend, config: TestConfig) -> TestApp {
    TestApp::start_on(TestDb::new(backend).await, config).await
}

/// [`spawn_app`] with start options (faults to inject).
pub async fn spawn_app_with(
    backend: Backend,
    config: TestConfig,
    options: app::Options,
) -> TestApp {
    TestApp::start_on_with(TestDb::new(backend).await, config, options).await
}

pub struct TestApp {
    // Declared first: keeper stops before its database is dropped.
    keeper: Option<Keeper>,
    /// The app's own database, dropped with it.
    pub db: TestDb,
    pub base: String,
    pub http: reqwest::Client,
}

impl TestApp {
    /// Starts keeper on `db` (one the test prepared, or kept from an earlier
    /// run with [`TestApp::stop`]). `[storage] url` is `db`'s unless `config`
    /// names one; without a `listen` of its own, keeper listens on port 0.
    pub async fn start_on(db: TestDb, config: TestConfig) -> TestApp {
        TestApp::start_on_with(db, config, app::Options::default()).await
    }

    /// [`TestApp::start_on`] with start options (faults to inject).
    pub async fn start_on_with(db: TestDb, config: TestConfig, options: app::Options) -> TestApp {
        super::init();
        let config = if config.has_storage() {
            config
        } else {
            config.storage(db.url())
        };
        let text = config.toml();
        let mut config = Config::parse(Path::new("test.toml"), &text, &|_| None)
            .unwrap_or_else(|e| panic!("test config is invalid:\n{e}\n{text}"));
        let default: std::net::SocketAddr = keeper::config::DEFAULT_LISTEN.parse().unwrap();
        if config.server.listen == default {
            config.server.listen = "127.0.0.1:0".parse().unwrap();
        }
        let keeper = app::start_with(config, options)
            .await
            .expect("keeper starts");
        let base = format!("http://{}", keeper.addr());
        TestApp {
            keeper: Some(keeper),
            db,
            base,
            http: reqwest::Client::new(),
        }
    }

    /// The running keeper, for what only its handle offers (registering an ingest sink).
    pub fn keeper(&self) -> &Keeper {
        self.keeper.as_ref().expect("keeper is running")
    }

    /// `GET path`, whatever it answers; panics only when nothing answers.
    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `GET path`, which must answer 2xx.
    async fn get_ok(&self, path: &str) -> reqwest::Response {
        let resp = self.get(path).await;
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.get_ok(path).await.json().await.expect("JSON")
    }

    pub async fn get_text(&self, path: &str) -> String {
        self.get_ok(path).await.text().await.expect("text")
    }

    /// The check as `GET /api/v1/checks/{name}` shows it.
    pub async fn check(&self, name: &str) -> serde_json::Value {
        self.get_json(&format!("/api/v1/checks/{name}")).await
    }

    /// `GET path`'s status and body, whatever the status.
    pub async fn get_status(&self, path: &str) -> (u16, String) {
        let resp = self.get(path).await;
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Waits until keeper stops on its own, returning how it ended.
    pub async fn wait(mut self) -> Result<(), app::AppError> {
        self.keeper.take().expect("keeper is running").wait().await
    }

    /// Graceful shutdown, as on SIGTERM; hands back the database for a
    /// restart on it ([`TestApp::start_on`]) or a look at what was left.
    pub async fn stop(mut self) -> TestDb {
        if let Some(k) = self.keeper.take() {
            k.shutdown().await.expect("keeper stops cleanly");
        }
        self.db
    }
}
