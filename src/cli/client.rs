//! The client of a running keeper's API that every client verb shares
//! ([`Api`]: `--url` or the config's `server.listen`, the token from
//! `KEEPER_API_TOKEN`), and the two write verbs, `ack` and `silence`. With
//! `--json` a client verb prints keeper's answer as it came, one JSON
//! document on stdout; errors go to stderr either way.

use anyhow::{Context, bail};

use super::Exit;

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

    /// `POST path` with a JSON `body`, answered 2xx: the answer's text and
    /// its JSON.
    pub async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<(String, serde_json::Value)> {
        let req = self.client.post(self.url(path)).json(body);
        let text = self
            .send(req)
            .await?
            .text()
            .await
            .with_context(|| format!("reading keeper's answer to POST {path}"))?;
        let value = serde_json::from_str(&text).with_context(|| {
            format!("reading keeper's answer to POST {path} from {}", self.base)
        })?;
        Ok((text, value))
    }
}

/// The options every client verb shares.
#[derive(Debug, clap::Args)]
pub struct Client {
    /// keeper's URL (default: from the config's server.listen).
    #[arg(long)]
    pub url: Option<String>,
    /// Print keeper's JSON answer instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

/// Prints keeper's answer `text` with `--json`, else `sentence`.
pub fn print(json: bool, text: &str, sentence: impl FnOnce() -> String) {
    if json {
        println!("{}", text.trim_end());
    } else {
        println!("{}", sentence());
    }
}

/// `keeper ack`'s arguments.
#[derive(Debug, clap::Args)]
pub struct AckArgs {
    /// The incident's id.
    incident: i64,
    /// Who takes it on (default: $USER).
    #[arg(long)]
    by: Option<String>,
    #[command(flatten)]
    client: Client,
}

/// `keeper silence`'s arguments.
#[derive(Debug, clap::Args)]
pub struct SilenceArgs {
    /// The check to silence.
    check: String,
    /// How long: 30m, 1h, 2h30m…
    #[arg(long = "for", value_name = "DURATION")]
    duration: String,
    /// Why (shown with the silence).
    #[arg(long, default_value = "")]
    comment: String,
    #[command(flatten)]
    client: Client,
}

pub async fn ack(config: &std::path::Path, args: AckArgs) -> anyhow::Result<Exit> {
    let api = Api::new(config, args.client.url)?;
    let incident = args.incident;
    let by = args.by.or_else(|| std::env::var("USER").ok());
    let (text, view) = api
        .post(
            &format!("/api/v1/incidents/{incident}/ack"),
            &serde_json::json!({ "by": by }),
        )
        .await?;
    print(args.client.json, &text, || {
        format!(
            "incident {incident} ({}) acknowledged at {}",
            view["check"].as_str().unwrap_or("?"),
            view["acknowledged_at"].as_str().unwrap_or("?")
        )
    });
    Ok(Exit::Ok)
}

pub async fn silence(config: &std::path::Path, args: SilenceArgs) -> anyhow::Result<Exit> {
    let api = Api::new(config, args.client.url)?;
    let body = serde_json::json!({
        "check": args.check,
        "for": args.duration,
        "comment": args.comment,
        "by": std::env::var("USER").ok(),
    });
    let (text, created) = api.post("/api/v1/silences", &body).await?;
    print(args.client.json, &text, || {
        format!(
            "silence {} on {} until {}",
            created["id"],
            args.check,
            created["ends_at"].as_str().unwrap_or("?")
        )
    });
    Ok(Exit::Ok)
}
