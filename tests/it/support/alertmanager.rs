//! A real Alertmanager for the `alertmanager` channel: Debian's
//! `prometheus-alertmanager` as a child process on a free 127.0.0.1 port,
//! routing everything to a receiver that does nothing, gossip off, state in a
//! temporary directory. Panics with the install hint when the binary is
//! missing; killed when the [`AlertmanagerServer`] is dropped.

use std::time::Duration;

use super::child::{ChildServer, LISTEN};

const BINARY: &str = "prometheus-alertmanager";
const CONFIG: &str = "route: {receiver: devnull}\nreceivers: [{name: devnull}]\n";

/// The running Alertmanager; killed on drop.
#[derive(Debug)]
pub struct AlertmanagerServer(ChildServer);

impl AlertmanagerServer {
    /// Starts Alertmanager and waits until `/-/ready` answers 200.
    pub async fn start() -> AlertmanagerServer {
        let server = ChildServer::start(BINARY, BINARY, Duration::from_secs(20), |dir| {
            let config = dir.join("am.yml");
            std::fs::write(&config, CONFIG).expect("writing am.yml");
            vec![
                format!("--config.file={}", config.display()),
                format!("--storage.path={}", dir.join("data").display()),
                LISTEN.into(),
                "--cluster.listen-address=".into(),
                "--log.level=info".into(),
            ]
        })
        .await;
        AlertmanagerServer(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.0.url()
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
}
