//! The `slack` channel: an incoming-webhook message colored by severity.
//!
//! The payload is [`render::slack_payload`]; delivery and the retry rule are
//! the webhook channel's ([`super::webhook::post_json`]). Slack answers a
//! plaintext `ok`, and a plaintext code such as `invalid_payload` on error,
//! which ends up in the error message. The URL is the secret: never shown.

use std::fmt;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::webhook::{parse_url, post_json, url_problem};
use super::{Deliver, Kind, SendError, render};
use crate::core::{Notification, SpecProblem};

/// `[channels.NAME]` keys of kind `slack`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The incoming-webhook URL (it carries the secret).
    pub url: String,
}

#[derive(Clone)]
pub struct Slack {
    http: reqwest::Client,
    url: reqwest::Url,
}

impl fmt::Debug for Slack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slack")
            .field("host", &self.url.host_str())
            .finish_non_exhaustive()
    }
}

impl Kind for Spec {
    const NAME: &'static str = "slack";
    /// About one message a second per webhook.
    const MIN_INTERVAL: Duration = Duration::from_secs(1);
    type Channel = Slack;

    fn problems(&self) -> Vec<SpecProblem> {
        url_problem(&self.url).into_iter().collect()
    }

    fn build(&self, http: &reqwest::Client) -> Result<Slack, String> {
        Slack::new(self, http.clone())
    }
}

impl Slack {
    pub fn new(spec: &Spec, http: reqwest::Client) -> Result<Slack, String> {
        Ok(Slack {
            http,
            url: parse_url(&spec.url)?,
        })
    }
}

impl Slack {
    /// POSTs a report's payload ([`super::report`]).
    pub(super) async fn post_report(&self, body: Vec<u8>, key: &str) -> Result<(), SendError> {
        post_json(&self.http, &self.url, &HeaderMap::new(), key, body).await
    }
}

impl Deliver for Slack {
    async fn send(&self, n: &Notification, key: &str) -> Result<(), SendError> {
        let body = serde_json::to_vec(&render::slack_payload(n))
            .map_err(|e| SendError::permanent(format!("encoding the slack payload: {e}")))?;
        post_json(&self.http, &self.url, &HeaderMap::new(), key, body).await
    }

    /// A grouped send: one message, an attachment per notification.
    async fn send_group(&self, ns: &[Notification], key: &str) -> Result<(), SendError> {
        let body = serde_json::to_vec(&render::slack_group_payload(ns))
            .map_err(|e| SendError::permanent(format!("encoding the slack payload: {e}")))?;
        post_json(&self.http, &self.url, &HeaderMap::new(), key, body).await
    }
}
