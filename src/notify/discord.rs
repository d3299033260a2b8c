//! The `discord` channel: a webhook message with one embed colored by
//! severity ([`render::discord_payload`]).
//!
//! Discord answers 204. A 404 means the webhook was deleted: permanent, never
//! retried; 429 waits for its Retry-After (the shared rule of
//! [`super::webhook::post_json`]). The URL carries the token: never shown.

use std::fmt;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::webhook::{parse_url, post_json, url_problem};
use super::{Deliver, Kind, SendError, render};
use crate::core::{Notification, SpecProblem};

/// `[channels.NAME]` keys of kind `discord`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `https://discord.com/api/webhooks/{id}/{token}` (it carries the secret).
    pub url: String,
}

#[derive(Clone)]
pub struct Discord {
    http: reqwest::Client,
    url: reqwest::Url,
}

impl fmt::Debug for Discord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discord")
            .field("host", &self.url.host_str())
            .finish_non_exhaustive()
    }
}

impl Kind for Spec {
    const NAME: &'static str = "discord";
    /// 5 messages per 2 s.
    const MIN_INTERVAL: Duration = Duration::from_millis(400);
    type Channel = Discord;

    fn problems(&self) -> Vec<SpecProblem> {
        url_problem(&self.url).into_iter().collect()
    }

    fn build(&self, http: &reqwest::Client) -> Result<Discord, String> {
        Discord::new(self, http.clone())
    }
}

impl Discord {
    pub fn new(spec: &Spec, http: reqwest::Client) -> Result<Discord, String> {
        Ok(Discord {
            http,
            url: parse_url(&spec.url)?,
        })
    }
}

impl Discord {
    /// POSTs a report's payload ([`super::report`]).
    pub(super) async fn post_report(&self, body: Vec<u8>, key: &str) -> Result<(), SendError> {
        post_json(&self.http, &self.url, &HeaderMap::new(), key, body).await
    }
}

impl Deliver for Discord {
    async fn send(&self, n: &Notification, key: &str) -> Result<(), SendError> {
        let body = serde_json::to_vec(&render::discord_payload(n))
            .map_err(|e| SendError::permanent(format!("encoding the discord payload: {e}")))?;
        post_json(&self.http, &self.url, &HeaderMap::new(), key, body).await
    }
}
