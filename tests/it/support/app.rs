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
        super::init();
        let mut config = Config::parse(Path::new("test.toml"), config, &|_| None)
            .unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
        let default: std::net::SocketAddr = keeper::config::DEFAULT_LISTEN.parse().unwrap();
        if config.server.listen == default {
            config.server.listen = "127.0.0.1:0".parse().unwrap();
        }
        let keeper = app::start(config).await.expect("keeper starts");
        let base = format!("http://{}", keeper.addr());
        TestApp {
            keeper: Some(keeper),
            base,
            http: reqwest::Client::new(),
        }
    }

    /// `GET path`, which must answer 2xx.
    async fn get_ok(&self, path: &str) -> reqwest::Response {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
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

    /// Graceful shutdown, as on SIGTERM.
    pub async fn stop(mut self) {
        if let Some(k) = self.keeper.take() {
            k.shutdown().await.expect("keeper stops cleanly");
        }
    }
}
