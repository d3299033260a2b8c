//! The configuration: read the TOML file, expand `${VAR}`, read every section
//! strictly into typed values, check cross-references, and report every error
//! at once with `file:line:column` and the key (DESIGN.md §9).
//!
//! Checks and channels are read in two steps, because serde's `flatten`
//! silently disables `deny_unknown_fields`: the shared keys into [`raw::Common`],
//! the rest into the kind's own strict `Spec`.

mod error;
mod raw;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

pub use error::{ConfigError, ConfigErrors};

use crate::classify::Thresholds;
use crate::core::value::{Crontab, HumanDuration};
use crate::core::{CheckName, Severity};
use crate::notify::ChannelSpec;
use crate::notify::policy::{Maintenance, Route};
use crate::probe;

/// A loaded, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    pub server: Server,
    pub storage: Storage,
    pub delivery: Delivery,
    /// Global limit on probes running at once.
    pub concurrency: usize,
    pub severities: Severities,
    pub checks: Vec<CheckConfig>,
    pub channels: Vec<ChannelConfig>,
    pub routes: Vec<Route>,
    pub maintenance: Vec<Maintenance>,
}

#[derive(Clone, Debug)]
pub struct Server {
    pub listen: SocketAddr,
    pub api_token: Option<String>,
    /// Base URL people reach keeper at, for links in notifications.
    pub public_url: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Storage {
    pub url: String,
    pub retention: Duration,
    /// Samples held in memory while the database is slow or away; past it the oldest are dropped.
    pub buffer: usize,
}

/// `[delivery]` (DESIGN.md §4): a transiently failing notification is
/// retried with backoff from `min_backoff` doubling up to `max_backoff`, until
/// `max_age` after it was queued.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub max_age: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Delivery {
    fn default() -> Delivery {
        use crate::notify::outbox;
        Delivery {
            max_age: outbox::DEFAULT_MAX_AGE,
            min_backoff: outbox::DEFAULT_BACKOFF_BASE,
            max_backoff: outbox::DEFAULT_BACKOFF_CAP,
        }
    }
}

/// Response windows per severity (DESIGN.md §4).
#[derive(Clone, Debug)]
pub struct Severities {
    pub repeat: BTreeMap<Severity, Duration>,
    /// When the daily digest of low incidents goes out.
    pub low_digest: Option<Crontab>,
}

/// When a check runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    Every(Duration),
    Cron(Crontab),
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "every {}", humantime::format_duration(*d)),
            Schedule::Cron(c) => write!(f, "cron {:?}", c.source),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CheckConfig {
    pub name: CheckName,
    pub description: Option<String>,
    pub schedule: Schedule,
    pub timeout: Duration,
    pub labels: BTreeMap<String, String>,
    pub depends_on: Vec<CheckName>,
    pub down_severity: Severity,
    /// Built-in, then `[defaults.thresholds]`, then the check's own: already
    /// layered, and shared by every check without overrides of its own.
    pub thresholds: Arc<Thresholds>,
    pub failures_before_alert: u32,
    pub successes_before_resolve: u32,
    pub probe: probe::Spec,
}

#[derive(Clone, Debug)]
pub struct ChannelConfig {
    pub name: String,
    pub spec: ChannelSpec,
    /// At most one message per this interval (`min_interval`; default by kind,
    /// from the service's documented rate limit).
    pub min_interval: Duration,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9400";
pub const DEFAULT_STORAGE_URL: &str = "sqlite://keeper.db";

impl Config {
    /// Reads and validates `path`, with `${VAR}` taken from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors::single(path, format!("reading {}: {e}", path.display())))?;
        let mut config = Config::parse(path, &text, &|name| std::env::var(name).ok())?;
        config.apply_env_overrides(&|name| std::env::var(name).ok());
        Ok(config)
    }

    /// Parses config text; `env` answers `${VAR}` lookups. `path` only names the source in errors.
    pub fn parse(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let mut errors = error::Collector::new(path, text);
        let mut root = match DeTable::parse(text) {
            Ok(root) => root.into_inner(),
            Err(e) => {
                errors.toml("", e);
                return Err(errors.finish());
            }
        };
        for (key, value) in root.iter_mut() {
            expand_env(key.get_ref(), value, env, &mut errors);
        }
        let config = read_root(path, root, &mut errors);
        match (config, errors.is_empty()) {
            (Some(config), true) => Ok(config),
            _ => Err(errors.finish()),
        }
    }

    /// `KEEPER_LISTEN` and `KEEPER_DATABASE_URL` (or `DATABASE_URL`) override the file.
    pub fn apply_env_overrides(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        if let Some(listen) = env("KEEPER_LISTEN").and_then(|l| l.parse().ok()) {
            self.server.listen = listen;
        }
        if let Some(url) = env("KEEPER_DATABASE_URL").or_else(|| env("DATABASE_URL")) {
            self.storage.url = url;
        }
    }

    pub fn check(&self, name: &str) -> Option<&CheckConfig> {
        self.checks.iter().find(|c| &*c.name == name)
    }
}

/// Replaces `${VAR}` in every string value, in place; a missing variable is an
/// error at that value. `$${` writes a literal `${`.
fn expand_env(
    key: &str,
    value: &mut Spanned<DeValue<'_>>,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut error::Collector,
) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) if s.contains('$') => match expand_str(s, env) {
            Ok(expanded) => *s = expanded.into(),
            Err(msg) => errors.at(span, key, msg),
        },
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                expand_env(key, item, env, errors);
            }
        }
        DeValue::Table(table) => {
            for (k, v) in table.iter_mut() {
                let path = join_key(key, k.get_ref());
                expand_env(&path, v, env, errors);
            }
        }
        _ => {}
    }
}

fn expand_str(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(escaped) = after.strip_prefix("${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated ${{ in {s:?}"))?;
            let name = &body[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid variable name {name:?} in ${{…}}"));
            }
            let value =
                env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Deserializes one spanned TOML value into `T`, reporting a failure at its span.
fn read<'i, T: serde::Deserialize<'i>>(
    key: &str,
    value: Spanned<DeValue<'i>>,
    errors: &mut error::Collector,
) -> Option<T> {
    T::deserialize(ValueDeserializer::from(value))
        .map_err(|e| errors.toml(key, e))
        .ok()
}

fn read_root(path: &Path, root: DeTable<'_>, errors: &mut error::Collector) -> Option<Config> {
    let mut server = raw::Server::default();
    let mut storage = raw::Storage::default();
    let mut delivery = raw::Delivery::default();
    let mut defaults = raw::Defaults::default();
    let mut severities = raw::Severities::default();
    let mut checks = Vec::new();
    let mut channels = Vec::new();
    let mut routes = Vec::new();
    let mut maintenance = Vec::new();
    let mut watchdog = raw::Watchdog::default();
    for (key, value) in root {
        let name = key.get_ref().to_string();
        match name.as_str() {
            "server" => server = read(&name, value, errors).unwrap_or_default(),
            "storage" => storage = read(&name, value, errors).unwrap_or_default(),
            "delivery" => delivery = read(&name, value, errors).unwrap_or_default(),
            "defaults" => defaults = read(&name, value, errors).unwrap_or_default(),
            "severities" => severities = read(&name, value, errors).unwrap_or_default(),
            "routes" => routes = read(&name, value, errors).unwrap_or_default(),
            "maintenance" => maintenance = read(&name, value, errors).unwrap_or_default(),
            "watchdog" => watchdog = read(&name, value, errors).unwrap_or_default(),
            "checks" => checks = named_tables(&name, value, errors),
            "channels" => channels = named_tables(&name, value, errors),
            _ => errors.at(
                key.span(),
                &name,
                format!(
                    "unknown key {name} (expected server, storage, delivery, defaults, severities, checks, channels, routes, maintenance or watchdog)"
                ),
            ),
        }
    }

    let defaults = defaults.resolve(errors);
    let channels: Vec<ChannelConfig> = channels
        .into_iter()
        .filter_map(|(name, table)| read_channel(name, table, errors))
        .collect();
    let known_checks: BTreeSet<String> = checks.iter().map(|(n, _)| n.get_ref().clone()).collect();
    for (name, _) in &checks {
        if name.get_ref().starts_with(probe::keeper::PREFIX) {
            errors.at(
                name.span(),
                &format!("checks.{}", name.get_ref()),
                format!(
                    "check names starting with {:?} are keeper's own",
                    probe::keeper::PREFIX
                ),
            );
        }
    }
    let mut checks: Vec<CheckConfig> = checks
        .into_iter()
        .filter_map(|(name, table)| read_check(name, table, &defaults, &known_checks, errors))
        .collect();
    checks.extend(watchdog.checks(&channels, &defaults, errors));
    let routes = read_routes(routes, &channels, errors);
    let delivery = read_delivery(delivery, errors);
    let maintenance = read_maintenance(maintenance, &known_checks, errors);

    let listen = server
        .listen
        .as_ref()
        .map(|l| (l.span(), l.get_ref().as_str()));
    let listen = match listen {
        None => DEFAULT_LISTEN.parse().ok()?,
        Some((span, l)) => match l.parse() {
            Ok(addr) => addr,
            Err(e) => {
                errors.at(span, "server.listen", format!("invalid address {l:?}: {e}"));
                return None;
            }
        },
    };
    Some(Config {
        path: path.to_path_buf(),
        server: Server {
            listen,
            api_token: server.api_token.and_then(|t| api_token(t, errors)),
            public_url: server
                .public_url
                .map(|u| u.trim_end_matches('/').to_string()),
        },
        storage: Storage {
            url: storage
                .url
                .unwrap_or_else(|| DEFAULT_STORAGE_URL.to_string()),
            retention: storage
                .retention
                .map_or(Duration::from_secs(30 * 86_400), |d| d.0),
            buffer: storage.buffer.unwrap_or(100_000),
        },
        delivery,
        concurrency: defaults.concurrency,
        severities: severities.resolve(),
        checks,
        channels,
        routes,
        maintenance,
    })
}

/// The shortest `server.api_token` accepted.
pub const API_TOKEN_MIN_CHARS: usize = 16;

/// `server.api_token`, refused when empty (also when a `${VAR}` expanded to
/// nothing: that must not silently mean "no token"), short, or not sendable
/// in an `Authorization` header. The token itself is never in the message.
fn api_token(token: Spanned<String>, errors: &mut error::Collector) -> Option<String> {
    let span = token.span();
    let token = token.into_inner();
    let problem = if token.is_empty() {
        let written = errors.written(span.clone());
        let via = if written.contains("${") {
            format!(" ({written} expanded to nothing)")
        } else {
            String::new()
        };
        Some(format!(
            "must not be empty{via}; leave api_token out for no token"
        ))
    } else if token.chars().count() < API_TOKEN_MIN_CHARS {
        Some(format!(
            "must be at least {API_TOKEN_MIN_CHARS} characters (got {})",
            token.chars().count()
        ))
    } else if !token.chars().all(|c| c.is_ascii_graphic()) {
        Some(
            "only visible ASCII characters, no spaces (it is sent in an Authorization header)"
                .into(),
        )
    } else {
        None
    };
    match problem {
        Some(message) => {
            errors.at(span, "server.api_token", message);
            None
        }
        None => Some(token),
    }
}

/// `[delivery]` with defaults: every duration above 0, `min_backoff` at
/// most `max_backoff`.
fn read_delivery(raw: raw::Delivery, errors: &mut error::Collector) -> Delivery {
    let defaults = Delivery::default();
    let mut positive = |value: Option<Spanned<HumanDuration>>, key: &str, default: Duration| {
        let Some(value) = value else {
            return (default, None);
        };
        let span = value.span();
        if value.get_ref().0.is_zero() {
            errors.at(
                span.clone(),
                &format!("delivery.{key}"),
                "must be above 0".into(),
            );
            return (default, None);
        }
        (value.get_ref().0, Some(span))
    };
    let (max_age, _) = positive(raw.max_age, "max_age", defaults.max_age);
    let (min_backoff, min_span) = positive(raw.min_backoff, "min_backoff", defaults.min_backoff);
    let (max_backoff, _) = positive(raw.max_backoff, "max_backoff", defaults.max_backoff);
    // Without a min_backoff of its own, a small max_backoff lowers it too.
    let min_backoff = match min_span {
        None => min_backoff.min(max_backoff),
        Some(span) => {
            if min_backoff > max_backoff {
                errors.at(
                    span,
                    "delivery.min_backoff",
                    format!(
                        "must be at most max_backoff ({})",
                        humantime::format_duration(max_backoff)
                    ),
                );
            }
            min_backoff
        }
    };
    Delivery {
        max_age,
        min_backoff,
        max_backoff,
    }
}

fn read_maintenance(
    windows: Vec<raw::Maintenance>,
    known_checks: &BTreeSet<String>,
    errors: &mut error::Collector,
) -> Vec<Maintenance> {
    windows
        .into_iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let key = format!("maintenance[{i}]");
            if m.duration.get_ref().0.is_zero() {
                errors.at(
                    m.duration.span(),
                    &format!("{key}.duration"),
                    "must be above 0".into(),
                );
                return None;
            }
            for check in &m.checks {
                if !known_checks.contains(check.get_ref()) {
                    errors.at(
                        check.span(),
                        &format!("{key}.checks"),
                        format!("unknown check {:?}", check.get_ref()),
                    );
                }
            }
            Some(Maintenance {
                schedule: m.schedule,
                duration: m.duration.into_inner().0,
                matches: m.matches,
                checks: m.checks.into_iter().map(Spanned::into_inner).collect(),
                comment: m.comment,
            })
        })
        .collect()
}

/// `[checks.NAME]` / `[channels.NAME]`: each name with its table.
fn named_tables<'i>(
    section: &str,
    value: Spanned<DeValue<'i>>,
    errors: &mut error::Collector,
) -> Vec<(Spanned<String>, Spanned<DeTable<'i>>)> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        errors.at(
            span,
            section,
            format!("{section} must be a table of named tables"),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, value) in table {
        let key = join_key(section, name.get_ref());
        let span = value.span();
        match value.into_inner() {
            DeValue::Table(t) => out.push((
                Spanned::new(name.span(), name.get_ref().to_string()),
                Spanned::new(span, t),
            )),
            _ => errors.at(span, &key, format!("{key} must be a table")),
        }
    }
    out
}

/// Splits a check or channel table into its shared keys and its kind's keys,
/// and takes out `kind`.
fn split_kind<'i>(
    key: &str,
    table: Spanned<DeTable<'i>>,
    shared: &[&str],
    errors: &mut error::Collector,
) -> Option<(String, Spanned<DeValue<'i>>, Spanned<DeValue<'i>>)> {
    let span = table.span();
    let mut kind = None;
    let mut common = DeTable::new();
    let mut specific = DeTable::new();
    for (k, v) in table.into_inner() {
        if k.get_ref() == "kind" {
            let vspan = v.span();
            match v.into_inner() {
                DeValue::String(s) => kind = Some(s.into_owned()),
                _ => errors.at(
                    vspan,
                    &format!("{key}.kind"),
                    "kind must be a string".into(),
                ),
            }
        } else if shared.contains(&k.get_ref().as_ref()) {
            common.insert(k, v);
        } else {
            specific.insert(k, v);
        }
    }
    let Some(kind) = kind else {
        errors.at(span, key, format!("{key}: missing key kind"));
        return None;
    };
    Some((
        kind,
        Spanned::new(span.clone(), DeValue::Table(common)),
        Spanned::new(span, DeValue::Table(specific)),
    ))
}

fn read_check(
    name: Spanned<String>,
    table: Spanned<DeTable<'_>>,
    defaults: &raw::ResolvedDefaults,
    known_checks: &BTreeSet<String>,
    errors: &mut error::Collector,
) -> Option<CheckConfig> {
    let key = format!("checks.{}", name.get_ref());
    let claimed = kind_claims(peek_kind(&table).as_deref());
    let shared: Vec<&str> = raw::Common::KEYS
        .iter()
        .copied()
        .filter(|k| !claimed.contains(k))
        .collect();
    let (kind, common, specific) = split_kind(&key, table, &shared, errors)?;
    let common: Option<raw::Common> = read(&key, common, errors);
    let spec = probe::Spec::deserialize_kind(&kind, ValueDeserializer::from(specific))
        .map_err(|e| errors.toml(&key, e))
        .ok();
    let mut common = common?;
    let spec = spec?;
    let problems = spec.problems();
    for p in &problems {
        let at = p.span.clone().unwrap_or_else(|| name.span());
        let at_key = if p.key.is_empty() {
            key.clone()
        } else {
            join_key(&key, &p.key)
        };
        errors.at(at, &at_key, p.message.clone());
    }
    if !problems.is_empty() {
        return None;
    }
    kind_defaults(&kind, &mut common);
    common.resolve(name, spec, defaults, known_checks, errors)
}

/// The `kind` a check table names, looked at before its keys are split.
fn peek_kind(table: &Spanned<DeTable<'_>>) -> Option<String> {
    table.get_ref().iter().find_map(|(k, v)| match v.get_ref() {
        DeValue::String(s) if k.get_ref() == "kind" => Some(s.to_string()),
        _ => None,
    })
}

/// Common key names a kind takes for itself. A heartbeat's `schedule` is when
/// pings are expected, not when to probe: it is evaluated every `interval`.
fn kind_claims(kind: Option<&str>) -> &'static [&'static str] {
    match kind {
        Some("heartbeat") => &["schedule"],
        _ => &[],
    }
}

/// Defaults a kind gives the common keys a check leaves out, before
/// `[defaults]`. A heartbeat is evaluated every 10s (pings that change its
/// color wake it at once), is `high` when late (a job, not production, is
/// down), and alerts and resolves on the first sample: its evaluations are
/// exact readings of the pings received, with no blips to ride out.
fn kind_defaults(kind: &str, common: &mut raw::Common) {
    if kind == "log" {
        // A log check's samples are readings of a sliding window, already
        // smoothed: the first bad one alerts (a critical line must page at
        // once); two good ones resolve, so a rate hovering at a threshold
        // does not flap.
        common
            .failures_before_alert
            .get_or_insert_with(|| Spanned::new(0..0, 1));
        common
            .successes_before_resolve
            .get_or_insert_with(|| Spanned::new(0..0, 2));
    }
    if kind == "heartbeat" {
        let interval = HumanDuration(probe::heartbeat::DEFAULT_INTERVAL);
        common
            .interval
            .get_or_insert_with(|| Spanned::new(0..0, interval));
        common.down_severity.get_or_insert(Severity::High);
        common
            .failures_before_alert
            .get_or_insert_with(|| Spanned::new(0..0, 1));
        common
            .successes_before_resolve
            .get_or_insert_with(|| Spanned::new(0..0, 1));
    }
}

fn read_channel(
    name: Spanned<String>,
    table: Spanned<DeTable<'_>>,
    errors: &mut error::Collector,
) -> Option<ChannelConfig> {
    let key = format!("channels.{}", name.get_ref());
    let (kind, common, specific) = split_kind(&key, table, raw::ChannelCommon::KEYS, errors)?;
    let common: Option<raw::ChannelCommon> = read(&key, common, errors);
    let spec = ChannelSpec::deserialize_kind(&kind, ValueDeserializer::from(specific))
        .map_err(|e| errors.toml(&key, e))
        .ok()?;
    let min_interval = common?
        .min_interval
        .map_or_else(|| spec.default_min_interval(), |d| d.0);
    Some(ChannelConfig {
        name: name.into_inner(),
        spec,
        min_interval,
    })
}

fn read_routes(
    routes: Vec<raw::Route>,
    channels: &[ChannelConfig],
    errors: &mut error::Collector,
) -> Vec<Route> {
    let known: BTreeSet<&str> = channels.iter().map(|c| c.name.as_str()).collect();
    routes
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            for ch in &r.channels {
                if !known.contains(ch.get_ref().as_str()) {
                    errors.at(
                        ch.span(),
                        &format!("routes[{i}].channels"),
                        format!(
                            "unknown channel {:?} (defined: {})",
                            ch.get_ref(),
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.iter().copied().collect::<Vec<_>>().join(", ")
                            }
                        ),
                    );
                }
            }
            Route {
                severities: r.severities,
                channels: r.channels.into_iter().map(Spanned::into_inner).collect(),
                matches: r.matches,
                group_wait: r.group_wait.map_or(Duration::ZERO, |d| d.0),
            }
        })
        .collect()
}
