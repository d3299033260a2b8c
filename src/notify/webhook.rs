//! The `webhook` channel: POSTs keeper's own JSON (DESIGN.md §5), one object per notification.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Notification, SendError};

/// `[channels.NAME]` keys of kind `webhook`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub url: String,
    /// Extra request headers (an `Authorization` for the receiver, say).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct Webhook {}

impl Webhook {
    pub fn new(spec: &Spec, http: reqwest::Client) -> Result<Webhook, String> {
        let _ = (spec, http);
        todo!("helper")
    }

    pub async fn send(&self, n: &Notification) -> Result<(), SendError> {
        let _ = n;
        todo!("helper")
    }
}
