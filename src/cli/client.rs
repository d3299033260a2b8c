//! The client of a running keeper's API that every client verb shares
//! ([`Api`]: `--url` or the config's `server.listen`, the token from
//! `KEEPER_API_TOKEN`), and the two write verbs, `ack` and `silence`.

use std::process::ExitCode;

use anyhow::{Context, bail};

/// A client of a running keeper's API: `--url`, or `http://` + the config's
/// `server.listen`; the token from `KEEPER_API_TOKEN`.
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
    token: Option<String>,
}

impl Api {
    pub fn new(config: &std::path::Path, url: Option<String>) -> anyhow::Result<Api> {
        let base = match url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{}", super::load(config)?.server.listen),
        };
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        let token = std::env::var("KEEPER_API_TOKEN")
            .ok()
            .filter(|t| !t.is_empty());
        Ok(Api {
            base,
            client,
            token,
        })
    }

    /// Sends a request; a non-2xx answer is an error carrying keeper's reason.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let req = match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        };
        let resp = req
            .send()
            .await
            .with_context(|| format!("asking keeper at {}", self.base))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            let reason = body["error"].as_str().unwrap_or("no reason given");
            bail!("keeper at {} answered {status}: {reason}", self.base);
        }
        Ok(resp)
    }

    /// `GET path`, answered 2xx: the body as text.
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let resp = self.send(self.client.get(self.url(path))).await?;
        resp.text()
            .await
            .with_context(|| format!("reading keeper's answer to GET {path}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

pub async fn ack(api: &Api, incident: i64, by: Option<String>) -> anyhow::Result<ExitCode> {
    let req = api
        .client
        .post(api.url(&format!("/api/v1/incidents/{incident}/ack")))
        .json(&serde_json::json!({ "by": by }));
    let resp = api.send(req).await?;
    let view: serde_json::Value = resp.json().await.context("reading keeper's answer")?;
    println!(
        "incident {incident} ({}) acknowledged at {}",
        view["check"].as_str().unwrap_or("?"),
        view["acknowledged_at"].as_str().unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn silence(
    api: &Api,
    check: &str,
    duration: &str,
    comment: &str,
) -> anyhow::Result<ExitCode> {
    let body = serde_json::json!({
        "check": check,
        "for": duration,
        "comment": comment,
        "by": std::env::var("USER").ok(),
    });
    let req = api.client.post(api.url("/api/v1/silences")).json(&body);
    let created: serde_json::Value = api
        .send(req)
        .await?
        .json()
        .await
        .context("reading keeper's answer")?;
    println!(
        "silence {} on {check} until {}",
        created["id"],
        created["ends_at"].as_str().unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}
