//! The `alertmanager` channel: keeper as an Alertmanager client,
//! `POST {url}/api/v2/alerts` with [`render::alertmanager_alerts`].
//!
//! Alertmanager owns routing, grouping and silences from there on. A firing
//! alert ends [`render::ALERTMANAGER_HORIZON_HOURS`] ahead unless keeper sends
//! again: on every event, and every `resend` (1h by default) while the
//! incident is open, whatever else happens; a resolve ends it at once.
//! Alertmanager answers 200; 400 is permanent, 5xx retried (the shared rule of
//! [`super::webhook::post_json`]). Headers (basic auth for a proxy, say) are
//! secrets and never shown.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::webhook::{header_problems, parse_headers, parse_url, post_json};
use super::{Deliver, Kind, SendError, render};
use crate::core::{Notification, SpecProblem};

/// `[channels.NAME]` keys of kind `alertmanager`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Alertmanager's base URL, e.g. `http://127.0.0.1:9093` (a path prefix is kept).
    pub url: String,
    /// Extra request headers (an `Authorization` for a proxy in front, say).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How often an open incident's alert is sent again, so Alertmanager
    /// keeps it firing (default 1h; the alert's `endsAt` is a day ahead).
    pub resend: Option<crate::core::value::HumanDuration>,
}

/// How often an open incident is re-sent when `resend` is not set.
pub const DEFAULT_RESEND: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Clone)]
pub struct Alertmanager {
    http: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
}

impl fmt::Debug for Alertmanager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alertmanager")
            .field("host", &self.url.host_str())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Alertmanager's base URL: http(s), without a query.
fn base_url(raw: &str) -> Result<reqwest::Url, String> {
    let url = parse_url(raw)?;
    if url.query().is_some() {
        return Err("invalid url: a base URL takes no query".to_string());
    }
    Ok(url)
}

impl Kind for Spec {
    /// An open incident's alert is sent again every `resend` (at least 1s).
    fn resend_interval(&self) -> Option<Duration> {
        let resend = self.resend.as_ref().map_or(DEFAULT_RESEND, |d| d.0);
        Some(resend.max(Duration::from_secs(1)))
    }

    const NAME: &'static str = "alertmanager";
    type Channel = Alertmanager;

    fn problems(&self) -> Vec<SpecProblem> {
        let mut out: Vec<SpecProblem> = base_url(&self.url)
            .err()
            .map(|e| SpecProblem::new("url", e))
            .into_iter()
            .collect();
        out.extend(header_problems(&self.headers));
        out
    }

    fn build(&self, http: &reqwest::Client) -> Result<Alertmanager, String> {
        Alertmanager::new(self, http.clone())
    }
}

impl Alertmanager {
    pub fn new(spec: &Spec, http: reqwest::Client) -> Result<Alertmanager, String> {
        let mut url = base_url(&spec.url)?;
        let path = format!("{}/api/v2/alerts", url.path().trim_end_matches('/'));
        url.set_path(&path);
        Ok(Alertmanager {
            http,
            url,
            headers: parse_headers(&spec.headers)?,
        })
    }
}

impl Deliver for Alertmanager {
    async fn send(&self, n: &Notification, key: &str) -> Result<(), SendError> {
        self.send_group(std::slice::from_ref(n), key).await
    }

    /// Every notification's alerts in one `POST /api/v2/alerts` array.
    async fn send_group(&self, ns: &[Notification], key: &str) -> Result<(), SendError> {
        let alerts: Vec<serde_json::Value> = ns
            .iter()
            .flat_map(|n| match render::alertmanager_alerts(n) {
                serde_json::Value::Array(alerts) => alerts,
                other => vec![other],
            })
            .collect();
        let body = serde_json::to_vec(&alerts)
            .map_err(|e| SendError::permanent(format!("encoding the alerts: {e}")))?;
        post_json(&self.http, &self.url, &self.headers, key, body).await
    }
}
