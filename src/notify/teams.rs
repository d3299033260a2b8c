//! The `teams` channel: a Microsoft Teams Workflows (Power Automate) webhook
//! posting one Adaptive Card ([`render::teams_payload`]).
//!
//! Any 2xx is success (Workflows answer 202 before the flow runs); the shared
//! rule of [`super::webhook::post_json`] does the rest. The URL's query carries
//! the signature: never shown.

use std::fmt;

use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::webhook::{parse_url, post_json};
use super::{SendError, render};
use crate::core::Notification;

/// `[channels.NAME]` keys of kind `teams`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The flow's HTTP trigger URL (it carries the secret).
    pub url: String,
}

#[derive(Clone)]
pub struct Teams {
    http: reqwest::Client,
    url: reqwest::Url,
}

impl fmt::Debug for Teams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Teams")
            .field("host", &self.url.host_str())
            .finish_non_exhaustive()
    }
}

impl Teams {
    pub fn new(spec: &Spec, http: reqwest::Client) -> Result<Teams, String> {
        Ok(Teams {
            http,
            url: parse_url(&spec.url)?,
        })
    }

    pub async fn send(&self, n: &Notification, key: &str) -> Result<(), SendError> {
        let body = serde_json::to_vec(&render::teams_payload(n))
            .map_err(|e| SendError::permanent(format!("encoding the teams card: {e}")))?;
        post_json(&self.http, &self.url, &HeaderMap::new(), key, body).await
    }
}
