//! Notifications: what an incident change tells people ([`Notification`], the
//! webhook JSON of DESIGN.md §5), the channels that carry it (one file each),
//! and the durable [`outbox`] worker that sends, retries and gives up.
//!
//! Adding a channel: one file here, one variant in [`ChannelSpec`] and
//! [`Channel`], one match arm each.

pub mod alertmanager;
pub mod discord;
pub mod email;
pub mod ntfy;
pub mod outbox;
pub mod pagerduty;
pub mod policy;
pub mod render;
pub mod retry;
pub mod slack;
pub mod teams;
pub mod webhook;

use std::time::Duration;

use serde::Deserialize;

use crate::core::Notification;

/// Why a send failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub message: String,
    /// A 4xx other than 429, a rejected recipient: retrying will not help.
    pub permanent: bool,
    /// The receiver asked us to wait this long (429 with Retry-After).
    pub retry_after: Option<Duration>,
}

impl SendError {
    pub fn transient(message: impl Into<String>) -> SendError {
        SendError {
            message: message.into(),
            permanent: false,
            retry_after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> SendError {
        SendError {
            message: message.into(),
            permanent: true,
            retry_after: None,
        }
    }
}

/// `[channels.NAME]` config, by kind. Each kind's keys are read strictly:
///
/// - `webhook`: `url`, optional `headers`, optional `secret` (signs each body:
///   `X-Keeper-Signature: sha256=<hex HMAC-SHA256>`).
/// - `slack`: `url`.
/// - `email`: `smtp`, `from`, `to` (see [`email::Spec`]).
/// - `discord`: `url`.
/// - `teams`: `url` (the Workflows trigger).
/// - `pagerduty`: `routing_key`, optional `url` (default the Events API v2 endpoint).
/// - `ntfy`: `url` (the topic), optional `token`.
/// - `alertmanager`: `url` (the base), optional `headers`.
#[derive(Clone, Debug)]
pub enum ChannelSpec {
    Webhook(webhook::Spec),
    Slack(slack::Spec),
    Email(email::Spec),
    Discord(discord::Spec),
    Teams(teams::Spec),
    PagerDuty(pagerduty::Spec),
    Ntfy(ntfy::Spec),
    Alertmanager(alertmanager::Spec),
}

impl ChannelSpec {
    pub const KINDS: [&'static str; 8] = [
        "webhook",
        "slack",
        "email",
        "discord",
        "teams",
        "pagerduty",
        "ntfy",
        "alertmanager",
    ];

    /// Reads the kind-specific keys of a channel of kind `kind`.
    pub fn deserialize_kind<'de, D: serde::Deserializer<'de>>(
        kind: &str,
        de: D,
    ) -> Result<ChannelSpec, D::Error> {
        use serde::de::Error;
        match kind {
            "webhook" => webhook::Spec::deserialize(de).map(ChannelSpec::Webhook),
            "slack" => slack::Spec::deserialize(de).map(ChannelSpec::Slack),
            "email" => email::Spec::deserialize(de).map(ChannelSpec::Email),
            "discord" => discord::Spec::deserialize(de).map(ChannelSpec::Discord),
            "teams" => teams::Spec::deserialize(de).map(ChannelSpec::Teams),
            "pagerduty" => pagerduty::Spec::deserialize(de).map(ChannelSpec::PagerDuty),
            "ntfy" => ntfy::Spec::deserialize(de).map(ChannelSpec::Ntfy),
            "alertmanager" => alertmanager::Spec::deserialize(de).map(ChannelSpec::Alertmanager),
            other => Err(D::Error::custom(format!(
                "unknown channel kind {other:?} (known: {})",
                ChannelSpec::KINDS.join(", ")
            ))),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ChannelSpec::Webhook(_) => "webhook",
            ChannelSpec::Slack(_) => "slack",
            ChannelSpec::Email(_) => "email",
            ChannelSpec::Discord(_) => "discord",
            ChannelSpec::Teams(_) => "teams",
            ChannelSpec::PagerDuty(_) => "pagerduty",
            ChannelSpec::Ntfy(_) => "ntfy",
            ChannelSpec::Alertmanager(_) => "alertmanager",
        }
    }

    /// How often an open incident must be sent again for the receiver to
    /// keep it active (Alertmanager forgets an alert at its `endsAt`); `None`
    /// for channels that remember.
    pub fn resend_interval(&self) -> Option<Duration> {
        match self {
            ChannelSpec::Alertmanager(s) => Some(
                s.resend
                    .as_ref()
                    .map_or(alertmanager::DEFAULT_RESEND, |d| d.0)
                    .max(Duration::from_secs(1)),
            ),
            _ => None,
        }
    }

    /// The pace a channel keeps by default, from the service's documented
    /// limits (external-apis.md §5): Slack about one message a second per
    /// webhook, Discord 5 per 2 s, Teams 4 per second; the rest unpaced.
    pub fn default_min_interval(&self) -> Duration {
        match self {
            ChannelSpec::Slack(_) => Duration::from_secs(1),
            ChannelSpec::Discord(_) => Duration::from_millis(400),
            ChannelSpec::Teams(_) => Duration::from_millis(250),
            _ => Duration::ZERO,
        }
    }

    /// Builds the channel's client once; sends reuse it.
    pub fn build(&self, http: &reqwest::Client) -> Result<Channel, String> {
        Ok(match self {
            ChannelSpec::Webhook(s) => Channel::Webhook(webhook::Webhook::new(s, http.clone())?),
            ChannelSpec::Slack(s) => Channel::Slack(slack::Slack::new(s, http.clone())?),
            ChannelSpec::Email(s) => Channel::Email(email::Email::new(s)?),
            ChannelSpec::Discord(s) => Channel::Discord(discord::Discord::new(s, http.clone())?),
            ChannelSpec::Teams(s) => Channel::Teams(teams::Teams::new(s, http.clone())?),
            ChannelSpec::PagerDuty(s) => {
                Channel::PagerDuty(pagerduty::PagerDuty::new(s, http.clone())?)
            }
            ChannelSpec::Ntfy(s) => Channel::Ntfy(ntfy::Ntfy::new(s, http.clone())?),
            ChannelSpec::Alertmanager(s) => {
                Channel::Alertmanager(alertmanager::Alertmanager::new(s, http.clone())?)
            }
        })
    }
}

/// A channel ready to send.
#[derive(Clone, Debug)]
pub enum Channel {
    Webhook(webhook::Webhook),
    Slack(slack::Slack),
    Email(email::Email),
    Discord(discord::Discord),
    Teams(teams::Teams),
    PagerDuty(pagerduty::PagerDuty),
    Ntfy(ntfy::Ntfy),
    Alertmanager(alertmanager::Alertmanager),
}

impl Channel {
    /// Sends one notification. Transport only: rendering is in [`render`],
    /// retries are the outbox's. `key` is the notification's id, the same on
    /// every attempt: `Idempotency-Key` on HTTP channels, the `Message-ID` of
    /// an email (PagerDuty dedups by the incident's `dedup_key` as well).
    pub async fn send(&self, n: &Notification, key: &str) -> Result<(), SendError> {
        match self {
            Channel::Webhook(c) => c.send(n, key).await,
            Channel::Slack(c) => c.send(n, key).await,
            Channel::Email(c) => c.send(n, key).await,
            Channel::Discord(c) => c.send(n, key).await,
            Channel::Teams(c) => c.send(n, key).await,
            Channel::PagerDuty(c) => c.send(n, key).await,
            Channel::Ntfy(c) => c.send(n, key).await,
            Channel::Alertmanager(c) => c.send(n, key).await,
        }
    }

    /// Sends several notifications as one message (a route's `group_wait`):
    /// a JSON array for `webhook` and `alertmanager`, one message listing them
    /// all for `slack` and `email`. `discord`, `teams`, `ntfy` and `pagerduty`
    /// (one event per incident by design) still get one message each, in order;
    /// a failure stops there and the whole group is tried again. A group
    /// carries its first notification's `key` (the one message of each of
    /// those sends carries the key with its position appended, `key.N`).
    pub async fn send_group(&self, ns: &[Notification], key: &str) -> Result<(), SendError> {
        match self {
            Channel::Webhook(c) => c.send_group(ns, key).await,
            Channel::Slack(c) => c.send_group(ns, key).await,
            Channel::Email(c) => c.send_group(ns, key).await,
            Channel::Alertmanager(c) => c.send_group(ns, key).await,
            Channel::Discord(_) | Channel::Teams(_) | Channel::PagerDuty(_) | Channel::Ntfy(_) => {
                for (i, n) in ns.iter().enumerate() {
                    self.send(n, &format!("{key}.{i}")).await?;
                }
                Ok(())
            }
        }
    }
}
