//! Probes: one file per check kind, each exposing its `Spec` (the config keys,
//! deserialized strictly) and a built `Probe` whose `run()` returns a [`Sample`].
//! A failed probe is a red Sample with a reason, never an `Err`: `Err` is for
//! keeper's own faults (a bad `ca_file` at build time).
//!
//! Adding a kind: one file here, one variant in [`Spec`] and [`Probe`], one match arm each.

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

use std::ops::Range;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Deserialize;

use crate::core::Sample;

/// The config of a check's probe, by kind (`kind = "http"` …). Each kind's keys
/// are read strictly: an unknown key is an error.
#[derive(Clone, Debug)]
pub enum Spec {
    Http(http::Spec),
    Tcp(tcp::Spec),
    Tls(tls::Spec),
    /// keeper's own checks, made from `[watchdog]`: not a kind users write.
    Keeper(keeper::Spec),
    Postgres(postgres::Spec),
    Host(host::Spec),
    Fly(fly::Spec),
    Prometheus(prometheus::Spec),
    Heartbeat(heartbeat::Spec),
    Command(command::Spec),
    Dns(dns::Spec),
    /// Boxed: the largest spec, and every check carries a `Spec`.
    Log(Box<log::Spec>),
}

impl Spec {
    /// The kinds this build knows, as written in `kind = "…"`.
    pub const KINDS: [&'static str; 11] = [
        "http",
        "tcp",
        "tls",
        "dns",
        "fly",
        "postgres",
        "prometheus",
        "host",
        "heartbeat",
        "command",
        "log",
    ];

    /// Reads the kind-specific keys of a check of kind `kind`.
    pub fn deserialize_kind<'de, D: serde::Deserializer<'de>>(
        kind: &str,
        de: D,
    ) -> Result<Spec, D::Error> {
        use serde::de::Error;
        match kind {
            "http" => http::Spec::deserialize(de).map(Spec::Http),
            "tcp" => tcp::Spec::deserialize(de).map(Spec::Tcp),
            "tls" => tls::Spec::deserialize(de).map(Spec::Tls),
            "postgres" => postgres::Spec::deserialize(de).map(Spec::Postgres),
            "host" => host::Spec::deserialize(de).map(Spec::Host),
            "fly" => fly::Spec::deserialize(de).map(Spec::Fly),
            "prometheus" => prometheus::Spec::deserialize(de).map(Spec::Prometheus),
            "heartbeat" => heartbeat::Spec::deserialize(de).map(Spec::Heartbeat),
            "command" => command::Spec::deserialize(de).map(Spec::Command),
            "dns" => dns::Spec::deserialize(de).map(Spec::Dns),
            "log" => log::Spec::deserialize(de).map(|s| Spec::Log(Box::new(s))),
            other => Err(D::Error::custom(format!(
                "unknown kind {other:?} (known: {})",
                Spec::KINDS.join(", ")
            ))),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Spec::Http(_) => "http",
            Spec::Tcp(_) => "tcp",
            Spec::Tls(_) => "tls",
            Spec::Keeper(_) => "keeper",
            Spec::Postgres(_) => "postgres",
            Spec::Host(_) => "host",
            Spec::Fly(_) => "fly",
            Spec::Prometheus(_) => "prometheus",
            Spec::Heartbeat(_) => "heartbeat",
            Spec::Command(_) => "command",
            Spec::Dns(_) => "dns",
            Spec::Log(_) => "log",
        }
    }

    /// What the probe talks to, for people: a URL or `host:port`.
    pub fn target(&self) -> String {
        match self {
            Spec::Http(s) => s.target(),
            Spec::Tcp(s) => s.target(),
            Spec::Tls(s) => s.target(),
            Spec::Keeper(s) => s.target(),
            Spec::Postgres(s) => s.target(),
            Spec::Host(s) => s.target(),
            Spec::Fly(s) => s.target(),
            Spec::Prometheus(s) => s.target(),
            Spec::Heartbeat(s) => s.target(),
            Spec::Command(s) => s.target(),
            Spec::Dns(s) => s.target(),
            Spec::Log(s) => s.target(),
        }
    }

    /// Builds the runnable probe: loads CA files, builds TLS configs and clients,
    /// once per configuration.
    /// `check` names the check: passive kinds (heartbeat, log) register under it.
    pub fn build(&self, check: &str, ctx: &Context) -> Result<Probe, BuildError> {
        Ok(match self {
            Spec::Http(s) => Probe::Http(s.build(&ctx.roots)?),
            Spec::Tcp(s) => Probe::Tcp(s.build()?),
            Spec::Tls(s) => Probe::Tls(s.build(&ctx.roots)?),
            Spec::Keeper(s) => Probe::Keeper(s.build(ctx.keeper.as_ref())?),
            Spec::Postgres(s) => Probe::Postgres(Box::new(s.build()?)),
            Spec::Host(s) => Probe::Host(s.build()?),
            Spec::Fly(s) => Probe::Fly(s.build(&ctx.roots)?),
            Spec::Prometheus(s) => Probe::Prometheus(s.build(&ctx.roots)?),
            Spec::Heartbeat(s) => Probe::Heartbeat(s.build(check, &ctx.heartbeats)?),
            Spec::Command(s) => Probe::Command(s.build()?),
            Spec::Dns(s) => Probe::Dns(s.build()?),
            Spec::Log(s) => Probe::Log(s.build(check, &ctx.logs)?),
        })
    }

    /// Problems with the keys that only show together (a heartbeat's `period`
    /// and `schedule` both set), found at load so they carry a position.
    pub fn problems(&self) -> Vec<SpecProblem> {
        match self {
            Spec::Heartbeat(s) => s.problems(),
            Spec::Log(s) => s.problems(),
            _ => Vec::new(),
        }
    }
}

/// A problem with a check's keys found at load: the key (empty: the check
/// itself), its position in the file when known, and what is wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecProblem {
    pub key: &'static str,
    pub span: Option<Range<usize>>,
    pub message: String,
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
        }
    }
}

/// A probe ready to run: everything expensive already built.
#[derive(Debug)]
pub enum Probe {
    Http(http::Probe),
    Tcp(tcp::Probe),
    Tls(tls::Probe),
    Keeper(keeper::Probe),
    /// Boxed: the largest probe, and every check holds a `Probe`.
    Postgres(Box<postgres::Probe>),
    Host(host::Probe),
    Fly(fly::Probe),
    Prometheus(prometheus::Probe),
    Heartbeat(heartbeat::Probe),
    Command(command::Probe),
    Dns(dns::Probe),
    Log(log::Probe),
}

impl Probe {
    /// Runs the probe once. Never exceeds `timeout`: past it the run is
    /// abandoned and the sample is red `timed out after …`.
    pub async fn run(&self, timeout: Duration) -> Sample {
        let at = Utc::now();
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let run = async {
            match self {
                Probe::Http(p) => p.run(deadline).await,
                Probe::Tcp(p) => p.run(deadline).await,
                Probe::Tls(p) => p.run(deadline).await,
                Probe::Keeper(p) => p.run(deadline).await,
                Probe::Postgres(p) => p.run(deadline).await,
                Probe::Host(p) => p.run(deadline).await,
                Probe::Fly(p) => p.run(deadline).await,
                Probe::Prometheus(p) => p.run(deadline).await,
                Probe::Heartbeat(p) => p.run(deadline).await,
                Probe::Command(p) => p.run(deadline).await,
                Probe::Dns(p) => p.run(deadline).await,
                Probe::Log(p) => p.run(deadline).await,
            }
        };
        let mut sample = match tokio::time::timeout_at(deadline, run).await {
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

/// A probe's config could not be turned into a runnable probe (unreadable
/// `ca_file`, bad URL). Reported at load with the check's name.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);
