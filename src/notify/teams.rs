//! The `teams` channel: a Microsoft Teams Workflows (Power Automate) webhook
//! posting one Adaptive Card ([`render::teams_payload`]).
//!
//! Any 2xx is success (Workflows answer 202 before the flow runs); the shared
//! rule of [`super::webhook::post_json`] does the rest. The URL's query carries
//! the signature: never shown.

use std::fmt;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::webhook::{parse_url, post_json, url_problem};
use super::{Deliver, Kind, SendError, render};
use crate::core::{Notification, SpecProblem};

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

impl Kind for Spec {
    const NAME: &'static str = "teams";
    /// 4 messages a second.
    const MIN_INTERVAL: Duration = Duration::from_millis(250);
    type Channel = Teams;

    fn problems(&self) -> Vec<SpecProblem> {
        url_problem(&self.url).into_iter().collect()
    }

    fn build(&self, http: &reqwest::Client) -> Result<Teams, String> {
        Teams::new(self, http.clone())
    }
}

impl Teams {
    pub fn new(spec: &Spec, http: reqwest::Client) -> Result<Teams, String> {
        Ok(Teams {
            http,
            url: parse_url(&spec.url)?,
        })
    }
}

impl Teams {
    /// POSTs a report's payload ([`super::report`]).
    pub(super) async fn post_report(&self, body: Vec<u8>, key: &str) -> Result<(), SendError> {
        post_json(&self.http, &self.url, &HeaderMap::new(), key, body).await
    }
}

impl Deliver for Teams {
    async fn send(&self, n: &Notification, key: &str) -> Result<(), SendError> {
        let body = serde_json::to_vec(&render::teams_payload(n))
            .map_err(|e| SendError::permanent(format!("encoding the teams card: {e}")))?;
        post_json(&self.http, &self.url, &HeaderMap::new(), key, body).await
    }
}
