//! Notifications: what an incident change tells people ([`Notification`], the
//! webhook JSON of DESIGN.md §5), the channels that carry it (one file each),
//! and the durable [`outbox`] worker that sends, retries and gives up.
//!
//! Every channel kind's `Spec` implements [`Kind`] (its name, its
//! [`Kind::problems`], checked when the config loads, and its `build`), and
//! the channel it builds implements [`Deliver`]. The kinds are listed once, in
//! the [`channels!`] call below; [`ChannelSpec`], [`Channel`] and every match
//! over them come from that list. Adding a channel: its file, `pub mod` for
//! it, and one line in that list (docs/development.md, "Adding a channel").

pub mod alertmanager;
pub mod discord;
pub mod email;
pub mod ntfy;
pub mod outbox;
pub mod pagerduty;
pub mod policy;
pub mod render;
pub mod report;
pub mod retry;
pub mod slack;
pub mod teams;
pub mod webhook;

use std::future::Future;
use std::time::Duration;

use serde::Deserialize;

use crate::core::{Notification, SpecProblem};

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

/// What each channel kind's `Spec` (its keys, read strictly) provides.
pub trait Kind {
    /// As written in `kind = "…"`.
    const NAME: &'static str;
    /// The pace the channel keeps by default, from the service's documented
    /// limits (external-apis.md §5); zero: unpaced.
    const MIN_INTERVAL: Duration = Duration::ZERO;
    /// The channel `build` makes.
    type Channel: Deliver;

    /// Every problem with the keys, found when the config loads. A spec
    /// without problems builds: `build` then fails only for reasons outside
    /// the config (the TLS library refusing its setup, a `ca_file` changed
    /// since the load).
    fn problems(&self) -> Vec<SpecProblem>;

    /// Builds the channel's client once; sends reuse it.
    fn build(&self, http: &reqwest::Client) -> Result<Self::Channel, String>;

    /// How often an open incident must be sent again for the receiver to
    /// keep it active; `None` for channels that remember.
    fn resend_interval(&self) -> Option<Duration> {
        None
    }
}

/// A built channel: sends one notification, or several as one message.
pub trait Deliver {
    /// Sends one notification. Transport only: rendering is in [`render`],
    /// retries are the outbox's. `key` is the notification's id, the same on
    /// every attempt: `Idempotency-Key` on HTTP channels, the `Message-ID` of
    /// an email (PagerDuty dedups by the incident's `dedup_key` as well).
    fn send(
        &self,
        n: &Notification,
        key: &str,
    ) -> impl Future<Output = Result<(), SendError>> + Send;

    /// Sends several notifications as one message (a route's `group_wait`).
    /// By default one message each, in order, keyed `key.N`; a failure stops
    /// there and the whole group is tried again.
    fn send_group(
        &self,
        ns: &[Notification],
        key: &str,
    ) -> impl Future<Output = Result<(), SendError>> + Send
    where
        Self: Sync,
    {
        async move {
            for (i, n) in ns.iter().enumerate() {
                self.send(n, &format!("{key}.{i}")).await?;
            }
            Ok(())
        }
    }
}

/// Makes [`ChannelSpec`] and [`Channel`] and their matches from the one list
/// of channel kinds.
macro_rules! channels {
    ($($v:ident($t:ty),)*) => {
        /// `[channels.NAME]` config, by kind; each kind's keys are read
        /// strictly (see each kind's `Spec`).
        #[derive(Clone, Debug)]
        pub enum ChannelSpec {
            $($v($t),)*
        }

        /// A channel ready to send.
        #[derive(Clone, Debug)]
        pub enum Channel {
            $($v(<$t as Kind>::Channel),)*
        }

        impl ChannelSpec {
            pub const KINDS: &'static [&'static str] = &[$(<$t as Kind>::NAME),*];

            /// Reads the kind-specific keys of a channel of kind `kind`.
            pub fn deserialize_kind<'de, D: serde::Deserializer<'de>>(
                kind: &str,
                de: D,
            ) -> Result<ChannelSpec, D::Error> {
                $(if kind == <$t as Kind>::NAME {
                    return <$t as Deserialize>::deserialize(de).map(ChannelSpec::$v);
                })*
                Err(serde::de::Error::custom(format!(
                    "unknown channel kind {kind:?} (known: {})",
                    ChannelSpec::KINDS.join(", ")
                )))
            }

            pub fn kind(&self) -> &'static str {
                match self {
                    $(ChannelSpec::$v(_) => <$t as Kind>::NAME,)*
                }
            }

            /// Every problem with the channel's keys (see [`Kind::problems`]).
            pub fn problems(&self) -> Vec<SpecProblem> {
                match self {
                    $(ChannelSpec::$v(s) => s.problems(),)*
                }
            }

            /// How often an open incident must be sent again (see [`Kind::resend_interval`]).
            pub fn resend_interval(&self) -> Option<Duration> {
                match self {
                    $(ChannelSpec::$v(s) => s.resend_interval(),)*
                }
            }

            /// The pace a channel keeps by default (see [`Kind::MIN_INTERVAL`]).
            pub fn default_min_interval(&self) -> Duration {
                match self {
                    $(ChannelSpec::$v(_) => <$t as Kind>::MIN_INTERVAL,)*
                }
            }

            /// Builds the channel's client once; sends reuse it. A spec is
            /// checked first, so one that skipped the config is refused with
            /// its first problem.
            pub fn build(&self, http: &reqwest::Client) -> Result<Channel, String> {
                if let Some(problem) = self.problems().into_iter().next() {
                    return Err(problem.message);
                }
                Ok(match self {
                    $(ChannelSpec::$v(s) => Channel::$v(s.build(http)?),)*
                })
            }
        }

        impl Channel {
            /// Sends one notification (see [`Deliver::send`]).
            pub async fn send(&self, n: &Notification, key: &str) -> Result<(), SendError> {
                match self {
                    $(Channel::$v(c) => c.send(n, key).await,)*
                }
            }

            /// Sends several notifications as one message (see
            /// [`Deliver::send_group`]): a JSON array for `webhook` and
            /// `alertmanager`, one message listing them all for `slack` and
            /// `email`, one message each for the others (`pagerduty`: one
            /// event per incident by design).
            pub async fn send_group(&self, ns: &[Notification], key: &str) -> Result<(), SendError> {
                match self {
                    $(Channel::$v(c) => c.send_group(ns, key).await,)*
                }
            }
        }
    };
}

channels! {
    Webhook(webhook::Spec),
    Slack(slack::Spec),
    Email(email::Spec),
    Discord(discord::Spec),
    Teams(teams::Spec),
    PagerDuty(pagerduty::Spec),
    Ntfy(ntfy::Spec),
    Alertmanager(alertmanager::Spec),
}
