//! The `pagerduty` channel: PagerDuty Events API v2 ([`render::pagerduty_event`]).
//!
//! One PagerDuty incident per keeper incident (dedup key `keeper-<id>`), so an
//! ack acknowledges it and a resolve closes it. PagerDuty answers 202; a 400 is
//! a bad event (permanent), a 429 is retried: the shared rule of
//! [`super::webhook::post_json`]. The routing key is the secret: it travels in
//! the body only and is never shown.

use std::fmt;

use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::webhook::{parse_url, post_json, url_problem};
use super::{Deliver, Kind, SendError, render};
use crate::core::{Notification, SpecProblem};

/// Where events go unless `url` says otherwise.
pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// `[channels.NAME]` keys of kind `pagerduty`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The service's Events API v2 integration key (a secret: `${PAGERDUTY_KEY}`).
    pub routing_key: String,
    /// The events endpoint; [`DEFAULT_URL`] when absent (set for tests or the EU region).
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Clone)]
pub struct PagerDuty {
    http: reqwest::Client,
    url: reqwest::Url,
    routing_key: String,
}

impl fmt::Debug for PagerDuty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PagerDuty")
            .field("host", &self.url.host_str())
            .finish_non_exhaustive()
    }
}

impl Kind for Spec {
    const NAME: &'static str = "pagerduty";
    type Channel = PagerDuty;

    fn problems(&self) -> Vec<SpecProblem> {
        let mut out = Vec::new();
        if self.routing_key.trim().is_empty() {
            out.push(SpecProblem::new("routing_key", "routing_key is empty"));
        }
        out.extend(url_problem(self.url.as_deref().unwrap_or(DEFAULT_URL)));
        out
    }

    fn build(&self, http: &reqwest::Client) -> Result<PagerDuty, String> {
        PagerDuty::new(self, http.clone())
    }
}

impl PagerDuty {
    pub fn new(spec: &Spec, http: reqwest::Client) -> Result<PagerDuty, String> {
        if spec.routing_key.trim().is_empty() {
            return Err("routing_key is empty".to_string());
        }
        Ok(PagerDuty {
            http,
            url: parse_url(spec.url.as_deref().unwrap_or(DEFAULT_URL))?,
            routing_key: spec.routing_key.clone(),
        })
    }
}

impl Deliver for PagerDuty {
    async fn send(&self, n: &Notification, key: &str) -> Result<(), SendError> {
        let body = serde_json::to_vec(&render::pagerduty_event(n, &self.routing_key))
            .map_err(|e| SendError::permanent(format!("encoding the pagerduty event: {e}")))?;
        post_json(&self.http, &self.url, &HeaderMap::new(), key, body).await
    }
}
