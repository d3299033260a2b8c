//! A real Prometheus for the `prometheus` probe: Debian's `prometheus` as a
//! child process on a free 127.0.0.1 port, its TSDB in a temporary directory,
//! scraping (every second, `honor_labels`, job `keeper-test`) the loopback
//! targets the test names. Panics with the install hint when the binary is
//! missing; killed when the [`PrometheusServer`] is dropped.

use std::time::Duration;

use super::child::{ChildServer, LISTEN};

const BINARY: &str = "prometheus";

/// The running Prometheus; killed on drop.
#[derive(Debug)]
pub struct PrometheusServer(ChildServer);

impl PrometheusServer {
    /// Starts Prometheus scraping `targets` (`127.0.0.1:PORT`, path `/metrics`)
    /// and waits until `/-/ready` answers 200.
    pub async fn start(targets: &[String]) -> PrometheusServer {
        let targets: Vec<String> = targets.iter().map(|t| format!("{t:?}")).collect();
        let yaml = format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n\
             - job_name: keeper-test\n  honor_labels: true\n  static_configs: [{{targets: [{}]}}]\n",
            targets.join(", ")
        );
        let server = ChildServer::start(BINARY, BINARY, Duration::from_secs(30), |dir| {
            let config = dir.join("prometheus.yml");
            std::fs::write(&config, &yaml).expect("writing prometheus.yml");
            vec![
                format!("--config.file={}", config.display()),
                format!("--storage.tsdb.path={}", dir.join("data").display()),
                LISTEN.into(),
                "--log.level=info".into(),
            ]
        })
        .await;
        PrometheusServer(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.0.url()
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
}
