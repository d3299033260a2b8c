//! keeper running in-process for a test: started from config text on port 0,
//! talked to over HTTP like a client.

use std::path::Path;

use keeper::app::{self, Keeper};
use keeper::config::Config;

pub struct TestApp {
    keeper: Option<Keeper>,
    pub base: String,
    pub http: reqwest::Client,
}

impl TestApp {
    /// Starts keeper with `config` (TOML). Without a `listen` of its own, the
    /// listener takes a free loopback port instead of the default one.
    pub async fn start(config: &str) -> TestApp {
        TestApp::start_with(config, app::Options::default()).await
    }

    /// [`TestApp::start`] with start options (faults to inject).
    pub async fn start_with(config: &str, options: app::Options) -> TestApp {
        super::init();
        let mut config = Config::parse(Path::new("test.toml"), config, &|_| None)
            .unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
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
            base,
            http: reqwest::Client::new(),
        }
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

    /// Graceful shutdown, as on SIGTERM.
    pub async fn stop(mut self) {
        if let Some(k) = self.keeper.take() {
            k.shutdown().await.expect("keeper stops cleanly");
        }
    }
}
