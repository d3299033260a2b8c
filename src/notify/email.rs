//! The `email` channel: lettre over SMTP. `smtp://` upgrades with STARTTLS
//! when the server offers it, `smtps://` is implicit TLS; `user:password@` authenticates.

use serde::Deserialize;

use super::{Notification, SendError};

/// `[channels.NAME]` keys of kind `email`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `smtp://[user:password@]host[:port]` or `smtps://…`.
    pub smtp: String,
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Email {}

impl Email {
    pub fn new(spec: &Spec) -> Result<Email, String> {
        let _ = spec;
        todo!("helper")
    }

    pub async fn send(&self, n: &Notification) -> Result<(), SendError> {
        let _ = n;
        todo!("helper")
    }
}
