//! A real Prometheus for the `prometheus` probe: Debian's `prometheus` as a
//! child process on a free 127.0.0.1 port, its TSDB in a temporary directory,
//! scraping (every second, `honor_labels`, job `keeper-test`) the loopback
//! targets the test names. Panics with the install hint when the binary is
//! missing; killed when the [`PrometheusServer`] is dropped.

use super::free_port;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BINARY: &str = "prometheus";

/// The running Prometheus; killed on drop.
#[derive(Debug)]
pub struct PrometheusServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PrometheusServer {
    /// Starts Prometheus scraping `targets` (`127.0.0.1:PORT`, path `/metrics`)
    /// and waits until `/-/ready` answers 200.
    pub async fn start(targets: &[String]) -> PrometheusServer {
        let dir = tempfile::tempdir().expect("a temporary directory for prometheus");
        let config = dir.path().join("prometheus.yml");
        let targets: Vec<String> = targets.iter().map(|t| format!("{t:?}")).collect();
        let yaml = format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n\
             - job_name: keeper-test\n  honor_labels: true\n  static_configs: [{{targets: [{}]}}]\n",
            targets.join(", ")
        );
        std::fs::write(&config, yaml).expect("writing prometheus.yml");
        let port = free_port();
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {BINARY} ({e}): install it with \
                     `apt-get install -y prometheus` (Debian)"
                )
            });
        let mut server = PrometheusServer {
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

    /// Waits until the instant query `query` returns `n` series (the targets
    /// have been scraped).
    pub async fn wait_for_series(&self, query: &str, n: usize) {
        let mut url =
            url::Url::parse(&format!("{}/api/v1/query", self.url())).expect("prometheus query URL");
        url.query_pairs_mut().append_pair("query", query);
        let client = reqwest::Client::new();
        crate::support::wait_until(
            &format!("prometheus returns {n} series for {query}"),
            Duration::from_secs(30),
            || async {
                let Ok(response) = client.get(url.clone()).send().await else {
                    return false;
                };
                let Ok(body) = response.json::<serde_json::Value>().await else {
                    return false;
                };
                body["data"]["result"].as_array().map(Vec::len) == Some(n)
            },
        )
        .await;
    }

    async fn wait_ready(&mut self) {
        let url = format!("{}/-/ready", self.url());
        crate::support::wait_http_ready(&mut self.child, BINARY, &url, Duration::from_secs(30))
            .await;
    }
}
