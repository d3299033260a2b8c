//! Probes: one file per check kind, each exposing its `Spec` (the config keys,
//! deserialized strictly) and a built `Probe` whose `run()` returns a [`Sample`].
//! A failed probe is a red Sample with a reason, never an `Err`.
//!
//! Every kind's `Spec` implements [`Kind`]: its name, its target, its
//! [`Kind::problems`] (every check of its keys, run when the config loads)
//! and its `build`. The kinds are listed once, in the [`kinds!`] call below;
//! from that list come [`Spec`], [`Probe`] and every match over them. Adding
//! a kind: its file, `pub mod` for it, and one line in that list (docs/development.md,
//! "Adding a probe kind").

pub mod api;
pub mod command;
pub mod dns;
pub mod fly;
pub mod heartbeat;
pub mod host;
pub mod http;
pub mod keeper;
pub mod log;
pub mod postgres;
pub mod prometheus;
pub mod tcp;
pub mod tls;
pub mod tlsconf;
pub mod wake;

use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Deserialize;

use crate::core::Sample;
use crate::core::{Severity, SpecProblem};

/// What each kind's `Spec` (its config keys, read strictly) provides.
pub trait Kind {
    /// As written in `kind = "…"`.
    const NAME: &'static str;
    /// The runnable probe `build` makes.
    type Probe;
    /// Keys every check shares that this kind takes for its own keys.
    const OWN_KEYS: &'static [&'static str] = &[];
    /// What the kind gives the shared keys a check leaves out.
    const CHECK_DEFAULTS: CheckDefaults = CheckDefaults::NONE;

    /// What the probe talks to, for people: a URL or `host:port`.
    fn target(&self) -> String;

    /// Every problem with the keys, found when the config loads (so each
    /// carries its line and column). A spec without problems builds: `build`
    /// then fails only for reasons outside the config (a `ca_file` removed
    /// since the load, keeper's own checks outside the daemon).
    fn problems(&self) -> Vec<SpecProblem>;

    /// Values no two checks of this kind may share (a heartbeat's token, a
    /// log check's ingest source): `(key, value)`, checked across checks at load.
    fn claims(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// Builds the runnable probe once per configuration (clients, TLS
    /// configs). `check` names the check: passive kinds register under it.
    fn build(&self, check: &str, ctx: &Context) -> Result<Self::Probe, BuildError>;
}

/// A boxed spec is its kind (the largest specs are boxed in [`Spec`]).
impl<K: Kind> Kind for Box<K> {
    const NAME: &'static str = K::NAME;
    type Probe = K::Probe;
    const OWN_KEYS: &'static [&'static str] = K::OWN_KEYS;
    const CHECK_DEFAULTS: CheckDefaults = K::CHECK_DEFAULTS;

    fn target(&self) -> String {
        (**self).target()
    }

    fn problems(&self) -> Vec<SpecProblem> {
        (**self).problems()
    }

    fn claims(&self) -> Vec<(&'static str, String)> {
        (**self).claims()
    }

    fn build(&self, check: &str, ctx: &Context) -> Result<Self::Probe, BuildError> {
        (**self).build(check, ctx)
    }
}

/// What a kind gives the keys every check shares when a check leaves them
/// out, before `[defaults]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CheckDefaults {
    pub interval: Option<Duration>,
    pub down_severity: Option<Severity>,
    pub failures_before_alert: Option<u32>,
    pub successes_before_resolve: Option<u32>,
}

impl CheckDefaults {
    /// Nothing of its own: `[defaults]` and the built-in values apply.
    pub const NONE: CheckDefaults = CheckDefaults {
        interval: None,
        down_severity: None,
        failures_before_alert: None,
        successes_before_resolve: None,
    };
}

/// Makes [`Spec`] and [`Probe`] and their matches from the one list of kinds:
/// those users write (`kind = "…"`), then those keeper makes itself.
macro_rules! kinds {
    (
        written: [$($(#[$wm:meta])* $w:ident($wt:ty),)*]
        internal: [$($(#[$im:meta])* $i:ident($it:ty),)*]
    ) => {
        /// The config of a check's probe, by kind (`kind = "http"` …). Each
        /// kind's keys are read strictly: an unknown key is an error.
        #[derive(Clone, Debug)]
        pub enum Spec {
            $($(#[$wm])* $w($wt),)*
            $($(#[$im])* $i($it),)*
        }

        /// A probe ready to run: everything expensive already built.
        #[derive(Debug)]
        pub enum Probe {
            $($w(<$wt as Kind>::Probe),)*
            $($i(<$it as Kind>::Probe),)*
        }

        impl Spec {
            /// The kinds this build knows, as written in `kind = "…"`.
            pub const KINDS: &'static [&'static str] = &[$(<$wt as Kind>::NAME),*];

            /// Reads the kind-specific keys of a check of kind `kind`.
            pub fn deserialize_kind<'de, D: serde::Deserializer<'de>>(
                kind: &str,
                de: D,
            ) -> Result<Spec, D::Error> {
                $(if kind == <$wt as Kind>::NAME {
                    return <$wt as Deserialize>::deserialize(de).map(Spec::$w);
                })*
                Err(serde::de::Error::custom(format!(
                    "unknown kind {kind:?} (known: {})",
                    Spec::KINDS.join(", ")
                )))
            }

            pub fn kind(&self) -> &'static str {
                match self {
                    $(Spec::$w(_) => <$wt as Kind>::NAME,)*
                    $(Spec::$i(_) => <$it as Kind>::NAME,)*
                }
            }

            /// The shared keys kind `kind` takes for its own (see [`Kind::OWN_KEYS`]).
            pub fn own_keys(kind: &str) -> &'static [&'static str] {
                $(if kind == <$wt as Kind>::NAME {
                    return <$wt as Kind>::OWN_KEYS;
                })*
                &[]
            }

            /// What the kind gives the shared keys (see [`Kind::CHECK_DEFAULTS`]).
            pub fn check_defaults(&self) -> CheckDefaults {
                match self {
                    $(Spec::$w(_) => <$wt as Kind>::CHECK_DEFAULTS,)*
                    $(Spec::$i(_) => <$it as Kind>::CHECK_DEFAULTS,)*
                }
            }

            /// What the probe talks to, for people: a URL or `host:port`.
            pub fn target(&self) -> String {
                match self {
                    $(Spec::$w(s) => s.target(),)*
                    $(Spec::$i(s) => s.target(),)*
                }
            }

            /// Every problem with the check's keys (see [`Kind::problems`]).
            pub fn problems(&self) -> Vec<SpecProblem> {
                match self {
                    $(Spec::$w(s) => s.problems(),)*
                    $(Spec::$i(s) => s.problems(),)*
                }
            }

            /// Values no two checks of the same kind may share (see [`Kind::claims`]).
            pub fn claims(&self) -> Vec<(&'static str, String)> {
                match self {
                    $(Spec::$w(s) => s.claims(),)*
                    $(Spec::$i(s) => s.claims(),)*
                }
            }

            /// Builds the runnable probe, once per configuration. A spec is
            /// checked first, so one that skipped the config (`keeper probe`)
            /// is refused with its first problem.
            pub fn build(&self, check: &str, ctx: &Context) -> Result<Probe, BuildError> {
                if let Some(problem) = self.problems().into_iter().next() {
                    return Err(BuildError(problem.message));
                }
                Ok(match self {
                    $(Spec::$w(s) => Probe::$w(Kind::build(s, check, ctx)?),)*
                    $(Spec::$i(s) => Probe::$i(Kind::build(s, check, ctx)?),)*
                })
            }
        }

        impl Probe {
            async fn run_until(&self, deadline: tokio::time::Instant) -> Sample {
                match self {
                    $(Probe::$w(p) => p.run(deadline).await,)*
                    $(Probe::$i(p) => p.run(deadline).await,)*
                }
            }
        }
    };
}

kinds! {
    written: [
        Http(http::Spec),
        Tcp(tcp::Spec),
        Tls(tls::Spec),
        Dns(dns::Spec),
        Fly(fly::Spec),
        Postgres(postgres::Spec),
        Prometheus(prometheus::Spec),
        Host(host::Spec),
        Heartbeat(heartbeat::Spec),
        Command(command::Spec),
        /// Boxed: the largest spec, and every check carries a `Spec`.
        Log(Box<log::Spec>),
    ]
    internal: [
        /// keeper's own checks, made from `[watchdog]`: not a kind users write.
        Keeper(keeper::Spec),
    ]
}

impl Spec {
    /// The channel this check's notifications must not go through: for
    /// `keeper:channel:NAME`, the channel it says is failing.
    pub fn avoids_channel(&self) -> Option<&str> {
        match self {
            Spec::Keeper(own) => own.avoids_channel(),
            _ => None,
        }
    }

    /// Whether this is keeper's check of its own storage (`keeper:storage`).
    pub fn watches_storage(&self) -> bool {
        matches!(self, Spec::Keeper(keeper::Spec::Storage))
    }
}

/// What building probes shares: loaded once, handed to every kind's `build`.
/// Passive kinds get what they need to wake their checks and keep their
/// state here, when they are built (see [`Context::daemon`]).
#[derive(Clone, Debug)]
pub struct Context {
    /// The system's CA certificates.
    pub roots: tlsconf::Roots,
    /// How keeper's own checks look at the running daemon; `None` outside it.
    pub keeper: Option<std::sync::Arc<dyn keeper::Look>>,
    /// Heartbeat checks register their tokens here; pings find them through it.
    pub heartbeats: heartbeat::Registry,
    /// Log checks register their feeds and sources here; `app` connects the sources.
    pub logs: crate::probe::log::Feeds,
    /// Where the `fly` check records deployments it sees; `None` outside the daemon.
    pub deployments: Option<std::sync::Arc<dyn DeploymentSink>>,
}

/// Where probes record the deployments they see (the `fly` check, when a
/// machine runs a new release): in the daemon, the store and the engine.
pub trait DeploymentSink: std::fmt::Debug + Send + Sync {
    /// Records `deployment`, seen by check `check` (the sink knows its app).
    fn record<'a>(
        &'a self,
        check: &'a str,
        deployment: crate::core::deployment::NewDeployment,
    ) -> futures_util::future::BoxFuture<'a, Result<(), String>>;
}

/// What probes built for the running daemon get beyond the CA certificates.
#[derive(Debug)]
pub struct Daemon {
    /// keeper's own checks look through it (`crate::watchdog::Sources`).
    pub keeper: std::sync::Arc<dyn keeper::Look>,
    /// Heartbeats and log feeds wake their checks through it.
    pub wakes: wake::Wakes,
    /// Where heartbeats keep their signals and generated tokens.
    pub heartbeats: std::sync::Arc<dyn heartbeat::registry::Persistence>,
    /// `public_url` or `http://<listen address>`, for heartbeat ping URLs.
    pub ping_base: String,
    /// Where the `fly` check records deployments it sees.
    pub deployments: std::sync::Arc<dyn DeploymentSink>,
}

impl Context {
    /// Loads the system's CA certificates (blocking: call it off the runtime).
    /// Passive probes built with it neither wake nor persist anything.
    pub fn system() -> Context {
        Context {
            roots: tlsconf::Roots::system(),
            keeper: None,
            heartbeats: heartbeat::Registry::default(),
            logs: crate::probe::log::Feeds::default(),
            deployments: None,
        }
    }

    /// The running daemon's context, over CA certificates already loaded.
    pub fn daemon(roots: tlsconf::Roots, daemon: Daemon) -> Context {
        Context {
            roots,
            keeper: Some(daemon.keeper),
            heartbeats: heartbeat::Registry::new(heartbeat::registry::Wiring {
                persistence: daemon.heartbeats,
                wakes: daemon.wakes.clone(),
                base_url: daemon.ping_base,
            }),
            logs: crate::probe::log::Feeds::new(daemon.wakes),
            deployments: Some(daemon.deployments),
        }
    }
}

impl Probe {
    /// Runs the probe once. Never exceeds `timeout`: past it the run is
    /// abandoned and the sample is red `timed out after …`.
    pub async fn run(&self, timeout: Duration) -> Sample {
        let at = Utc::now();
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut sample = match tokio::time::timeout_at(deadline, self.run_until(deadline)).await {
            Ok(sample) => sample,
            Err(_) => Sample::down(format!(
                "timed out after {}",
                humantime::format_duration(timeout)
            )),
        };
        sample.at = at;
        sample.duration = started.elapsed();
        sample
    }
}

/// A probe could not be built: a spec that skipped the config's checks, or a
/// cause outside the config (a `ca_file` removed since the load). Reported at
/// start with the check's name.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

impl From<SpecProblem> for BuildError {
    fn from(p: SpecProblem) -> BuildError {
        BuildError(p.message)
    }
}
