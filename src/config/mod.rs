//! The configuration: read the TOML file, expand `${VAR}`, read every section
//! strictly into typed values, check cross-references, and report every error
//! at once with `file:line:column` and the key (DESIGN.md §9).
//!
//! Checks and channels are read in two steps, because serde's `flatten`
//! silently disables `deny_unknown_fields`: the shared keys into [`raw::Common`],
//! the rest into the kind's own strict `Spec`.

mod apps;
mod cluster;
mod cost;
mod env;
mod error;
mod kinds;
mod matching;
mod raw;
mod regions;
mod reports;
mod status_page;
mod zone;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

pub use apps::{AppDeploys, DEFAULT_DEPLOY_WATCH, Deploys};
pub use cluster::Cluster;
pub use cost::Cost;
pub use error::{ConfigError, ConfigErrors};
pub use reports::Reports;
pub use status_page::StatusPage;

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
    pub checks: Vec<Arc<CheckConfig>>,
    pub channels: Vec<ChannelConfig>,
    pub routes: Vec<Route>,
    pub maintenance: Vec<Maintenance>,
    pub status_page: StatusPage,
    /// `[cost]`: prices and bands for `keeper report cost`.
    pub cost: Cost,
    /// `[defaults] deploy_watch` and `[apps.NAME]`: what follows a deployment.
    pub deploys: Deploys,
    /// `[reports]`: when reports are sent through the routes.
    pub reports: Reports,
    /// `[cluster]`: this instance among those sharing a PostgreSQL database.
    pub cluster: Cluster,
    /// `timezone`: the zone crontab schedules are read in (default UTC).
    pub timezone: chrono_tz::Tz,
    /// Checks with `enabled = false`: read and validated, never run.
    pub disabled: Vec<CheckConfig>,
    /// Values read from `${file:…}`: masked wherever the config is shown.
    pub secrets: crate::core::redact::Secrets,
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
            Schedule::Cron(c) => write!(f, "cron {c}"),
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
    /// `enabled = false`: kept in [`Config::disabled`], not run.
    pub enabled: bool,
    /// `regions` and `quorum`: probed from each region, decided by quorum.
    pub regions: Option<crate::core::ownership::Regions>,
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
    /// What the notification policy is built from: the routes, the response
    /// windows, maintenance, the low digest and the channels that forget an
    /// incident unless told again (Alertmanager's `resend`).
    pub fn policy_rules(&self) -> crate::notify::policy::Rules {
        crate::notify::policy::Rules {
            routes: self.routes.clone(),
            repeat: self.severities.repeat.clone(),
            maintenance: self.maintenance.clone(),
            digest: self.severities.low_digest.clone(),
            resend: self
                .channels
                .iter()
                .filter_map(|c| {
                    c.spec
                        .resend_interval()
                        .map(|every| (c.name.clone(), every))
                })
                .collect(),
        }
    }

    /// Reads and validates `path`, with `${VAR}` taken from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors::single(path, format!("reading {}: {e}", path.display())))?;
        let mut config = Config::parse(path, &text, &|name| std::env::var(name).ok())?;
        config.apply_env_overrides(&|name| std::env::var(name).ok())?;
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
        let mut expander = env::Expander::new(path, env);
        for (key, value) in root.iter_mut() {
            expander.expand(key.get_ref(), value, &mut errors);
        }
        errors.mask(expander.secrets.clone());
        let config = read_root(path, root, &mut errors).map(|mut c| {
            c.secrets = expander.secrets;
            c
        });
        match (config, errors.is_empty()) {
            (Some(config), true) => Ok(config),
            _ => Err(errors.finish()),
        }
    }

    pub fn check(&self, name: &str) -> Option<&CheckConfig> {
        self.checks
            .iter()
            .find(|c| &*c.name == name)
            .map(Arc::as_ref)
    }
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

/// The sections as written, before defaults and cross-checks.
#[derive(Default)]
struct Sections<'i> {
    server: raw::Server,
    storage: raw::Storage,
    delivery: raw::Delivery,
    defaults: raw::Defaults,
    severities: raw::Severities,
    routes: Vec<raw::Route>,
    maintenance: Vec<raw::Maintenance>,
    watchdog: raw::Watchdog,
    status_page: status_page::Raw,
    cost: cost::RawCost,
    apps: Vec<(Spanned<String>, Spanned<DeTable<'i>>)>,
    reports: reports::RawReports,
    cluster: cluster::Raw,
    timezone: Option<Spanned<String>>,
    checks: Vec<(Spanned<String>, Spanned<DeTable<'i>>)>,
    channels: Vec<(Spanned<String>, Spanned<DeTable<'i>>)>,
}

fn read_sections<'i>(root: DeTable<'i>, errors: &mut error::Collector) -> Sections<'i> {
    let mut s = Sections::default();
    for (key, value) in root {
        let name = key.get_ref().to_string();
        match name.as_str() {
            "server" => s.server = read(&name, value, errors).unwrap_or_default(),
            "storage" => s.storage = read(&name, value, errors).unwrap_or_default(),
            "delivery" => s.delivery = read(&name, value, errors).unwrap_or_default(),
            "defaults" => s.defaults = read(&name, value, errors).unwrap_or_default(),
            "severities" => s.severities = read(&name, value, errors).unwrap_or_default(),
            "routes" => s.routes = read(&name, value, errors).unwrap_or_default(),
            "maintenance" => s.maintenance = read(&name, value, errors).unwrap_or_default(),
            "watchdog" => s.watchdog = read(&name, value, errors).unwrap_or_default(),
            "status_page" => s.status_page = read(&name, value, errors).unwrap_or_default(),
            "cost" => s.cost = read(&name, value, errors).unwrap_or_default(),
            "reports" => s.reports = read(&name, value, errors).unwrap_or_default(),
            "cluster" => s.cluster = read(&name, value, errors).unwrap_or_default(),
            "timezone" => s.timezone = read(&name, value, errors),
            "checks" => s.checks = kinds::named_tables(&name, value, errors),
            "channels" => s.channels = kinds::named_tables(&name, value, errors),
            "apps" => s.apps = kinds::named_tables(&name, value, errors),
            _ => errors.at(
                key.span(),
                &name,
                format!(
                    "unknown key {name} (expected server, storage, delivery, defaults, severities, checks, channels, routes, maintenance, watchdog, status_page, cost, apps, reports, cluster or timezone)"
                ),
            ),
        }
    }
    s
}

fn read_root(path: &Path, root: DeTable<'_>, errors: &mut error::Collector) -> Option<Config> {
    let mut s = read_sections(root, errors);
    let deploy_watch = s.defaults.deploy_watch.take();
    let defaults = s.defaults.resolve(errors);
    let channels: Vec<ChannelConfig> = s
        .channels
        .into_iter()
        .filter_map(|(name, table)| kinds::read_channel(name, table, errors))
        .collect();
    let known_checks: BTreeSet<String> =
        s.checks.iter().map(|(n, _)| n.get_ref().clone()).collect();
    let mut checks = read_checks(s.checks, &defaults, &known_checks, errors);
    let deploys = apps::read_apps(deploy_watch, s.apps, &checks, errors);
    let regions = checks.iter().any(|c| c.enabled && c.regions.is_some());
    checks.extend(s.watchdog.checks(&channels, regions, &defaults, errors));
    let routes = read_routes(s.routes, &channels, errors);
    let delivery = read_delivery(s.delivery, errors);
    let maintenance = read_maintenance(s.maintenance, &known_checks, errors);
    let all_checks: BTreeSet<String> = checks.iter().map(|c| c.name.to_string()).collect();
    let status_page = s.status_page.resolve(&all_checks, errors);
    let cost = s.cost.resolve(errors);
    let reports = s.reports.resolve();
    let cluster = s.cluster.resolve(errors);
    let listen = read_listen(s.server.listen.as_ref(), errors)?;
    let timezone = zone::read_timezone(s.timezone, errors);
    let (checks, mut disabled): (Vec<_>, Vec<_>) = checks.into_iter().partition(|c| c.enabled);
    // Collected in place, the `Arc`s would keep the checks' whole buffer
    // (hundreds of bytes a check) for as long as keeper runs.
    let mut checks: Vec<Arc<CheckConfig>> = checks.into_iter().map(Arc::new).collect();
    checks.shrink_to_fit();
    disabled.shrink_to_fit();
    let mut config = Config {
        path: path.to_path_buf(),
        server: Server {
            listen,
            api_token: s.server.api_token.and_then(|t| api_token(t, errors)),
            public_url: s
                .server
                .public_url
                .map(|u| u.trim_end_matches('/').to_string()),
        },
        storage: Storage {
            url: s
                .storage
                .url
                .unwrap_or_else(|| DEFAULT_STORAGE_URL.to_string()),
            retention: s
                .storage
                .retention
                .map_or(Duration::from_secs(30 * 86_400), |d| d.0),
            buffer: s.storage.buffer.unwrap_or(100_000),
        },
        delivery,
        concurrency: defaults.concurrency,
        severities: s.severities.resolve(),
        checks,
        channels,
        routes,
        maintenance,
        status_page,
        cost,
        deploys,
        reports,
        cluster,
        timezone,
        disabled,
        secrets: Default::default(),
    };
    zone::apply(&mut config);
    Some(config)
}

/// Every `[checks.NAME]`: names keeper can use, each check read, and no
/// value two checks may not share claimed twice.
fn read_checks(
    checks: Vec<(Spanned<String>, Spanned<DeTable<'_>>)>,
    defaults: &raw::ResolvedDefaults,
    known_checks: &BTreeSet<String>,
    errors: &mut error::Collector,
) -> Vec<CheckConfig> {
    for (name, _) in &checks {
        kinds::name_problems(name, errors);
    }
    let read: Vec<(Spanned<String>, CheckConfig)> = checks
        .into_iter()
        .filter_map(|(name, table)| {
            let at = name.clone();
            kinds::read_check(name, table, defaults, known_checks, errors).map(|c| (at, c))
        })
        .collect();
    kinds::check_claims(&read, errors);
    read.into_iter().map(|(_, c)| c).collect()
}

/// `server.listen`, default [`DEFAULT_LISTEN`].
fn read_listen(
    listen: Option<&Spanned<String>>,
    errors: &mut error::Collector,
) -> Option<SocketAddr> {
    let Some(listen) = listen else {
        return DEFAULT_LISTEN.parse().ok();
    };
    match listen.get_ref().parse() {
        Ok(addr) => Some(addr),
        Err(e) => {
            errors.at(
                listen.span(),
                "server.listen",
                format!("invalid address {:?}: {e}", listen.get_ref()),
            );
            None
        }
    }
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
                matches: m.matches.resolve(&format!("{key}.match"), errors),
                checks: m.checks.into_iter().map(Spanned::into_inner).collect(),
                comment: m.comment,
            })
        })
        .collect()
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
                matches: r.matches.resolve(&format!("routes[{i}].match"), errors),
                group_wait: r.group_wait.map_or(Duration::ZERO, |d| d.0),
            }
        })
        .collect()
}
