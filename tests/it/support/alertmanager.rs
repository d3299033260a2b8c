//! A real Alertmanager for the `alertmanager` channel: Debian's
//! `prometheus-alertmanager` as a child process on a free 127.0.0.1 port,
//! routing everything to a receiver that does nothing, gossip off, state in a
//! temporary directory. Panics with the install hint when the binary is
//! missing; killed when the [`AlertmanagerServer`] is dropped.

use super::free_port;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BINARY: &str = "prometheus-alertmanager";
const CONFIG: &str = "route: {receiver: devnull}\nreceivers: [{name: devnull}]\n";

/// The running Alertmanager; killed on drop.
#[derive(Debug)]
pub struct AlertmanagerServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for AlertmanagerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AlertmanagerServer {
    /// Starts Alertmanager and waits until `/-/ready` answers 200.
    pub async fn start() -> AlertmanagerServer {
        let dir = tempfile::tempdir().expect("a temporary directory for alertmanager");
        let config = dir.path().join("am.yml");
        std::fs::write(&config, CONFIG).expect("writing am.yml");
        let storage = dir.path().join("data");
        let port = free_port();
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {BINARY} ({e}): install it with \
                     `apt-get install -y prometheus-alertmanager` (Debian)"
                )
            });
        let mut server = AlertmanagerServer {
            child,
            port,
            _dir: dir,
        };
        server.wait_ready().await;
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `GET /api/v2/alerts` (Alertmanager's default filter: active, silenced,
    /// inhibited and unprocessed; an alert whose `endsAt` passed is left out).
    pub async fn alerts(&self) -> Vec<serde_json::Value> {
        let url = format!("{}/api/v2/alerts", self.url());
        let response = reqwest::get(&url).await.expect("GET /api/v2/alerts");
        assert!(
            response.status().is_success(),
            "GET {url}: {}",
            response.status()
        );
        response.json().await.expect("alerts JSON")
    }

    async fn wait_ready(&mut self) {
        let url = format!("{}/-/ready", self.url());
        crate::support::wait_http_ready(&mut self.child, BINARY, &url, Duration::from_secs(20))
            .await;
    }
}
