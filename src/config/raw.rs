//! The config file's sections as written, before defaults and cross-checks.
//! Every struct denies unknown keys.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::error::Collector;
use super::{CheckConfig, Schedule, Severities as ResolvedSeverities};
use crate::classify::{Level, Levels, Thresholds};
use crate::core::value::{Crontab, HumanDuration};
use crate::core::{Color, Direction, Metric, Severity};
use crate::probe;
use crate::watchdog;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub listen: Option<Spanned<String>>,
    pub api_token: Option<Spanned<String>>,
    pub public_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    pub url: Option<String>,
    pub retention: Option<HumanDuration>,
    pub buffer: Option<usize>,
}

/// `[delivery]`: how long and how often a failing notification is retried.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    pub max_age: Option<Spanned<HumanDuration>>,
    pub min_backoff: Option<Spanned<HumanDuration>>,
    pub max_backoff: Option<Spanned<HumanDuration>>,
}

type RawThresholds = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub interval: Option<HumanDuration>,
    pub timeout: Option<HumanDuration>,
    pub failures_before_alert: Option<Spanned<u32>>,
    pub successes_before_resolve: Option<Spanned<u32>>,
    pub concurrency: Option<usize>,
    pub thresholds: Option<RawThresholds>,
    /// Read by [`super::apps`]: how long after a deployment its app is watched.
    pub deploy_watch: Option<Spanned<HumanDuration>>,
}

/// `[defaults]` with every value filled in.
#[derive(Clone, Debug)]
pub struct ResolvedDefaults {
    pub interval: Duration,
    pub timeout: Duration,
    pub failures_before_alert: u32,
    pub successes_before_resolve: u32,
    pub concurrency: usize,
    pub thresholds: Arc<Thresholds>,
}

impl Defaults {
    pub fn resolve(self, errors: &mut Collector) -> ResolvedDefaults {
        let thresholds = match self.thresholds {
            Some(raw) => {
                Thresholds::builtin().layered(&thresholds("defaults.thresholds", raw, errors))
            }
            None => Thresholds::builtin(),
        };
        ResolvedDefaults {
            interval: self.interval.map_or(Duration::from_secs(30), |d| d.0),
            timeout: self.timeout.map_or(Duration::from_secs(10), |d| d.0),
            failures_before_alert: at_least_one(
                "defaults.failures_before_alert",
                self.failures_before_alert,
                errors,
            )
            .unwrap_or(2),
            successes_before_resolve: at_least_one(
                "defaults.successes_before_resolve",
                self.successes_before_resolve,
                errors,
            )
            .unwrap_or(2),
            concurrency: self.concurrency.unwrap_or(256).max(1),
            thresholds: Arc::new(thresholds),
        }
    }
}

fn at_least_one(key: &str, v: Option<Spanned<u32>>, errors: &mut Collector) -> Option<u32> {
    let v = v?;
    if *v.get_ref() == 0 {
        errors.at(v.span(), key, "must be at least 1".into());
        return None;
    }
    Some(v.into_inner())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityWindow {
    pub repeat: Option<HumanDuration>,
    pub digest: Option<Digest>,
}

/// `low.digest`: a crontab, or `"off"` (low incidents then page one by one
/// and repeat every `low.repeat`, like the other severities).
#[derive(Debug)]
pub enum Digest {
    Off,
    At(Crontab),
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let s = String::deserialize(de)?;
        if s == "off" {
            return Ok(Digest::Off);
        }
        s.parse().map(Digest::At).map_err(|e| {
            serde::de::Error::custom(format!("invalid crontab schedule (or \"off\") {s:?}: {e}"))
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Severities {
    pub critical: Option<SeverityWindow>,
    pub high: Option<SeverityWindow>,
    pub medium: Option<SeverityWindow>,
    pub low: Option<SeverityWindow>,
}

impl Severities {
    pub fn resolve(self) -> ResolvedSeverities {
        let defaults = [
            (Severity::Critical, self.critical, 5 * 60),
            (Severity::High, self.high, 30 * 60),
            (Severity::Medium, self.medium, 2 * 3600),
            (Severity::Low, self.low, 86_400),
        ];
        let mut repeat = BTreeMap::new();
        let mut low_digest = None;
        for (severity, window, default_s) in defaults {
            let window = window.unwrap_or_default();
            repeat.insert(
                severity,
                window
                    .repeat
                    .map_or(Duration::from_secs(default_s), |d| d.0),
            );
            if severity == Severity::Low {
                low_digest = match window.digest {
                    Some(Digest::Off) => None,
                    Some(Digest::At(at)) => Some(at),
                    None => "0 9 * * *".parse().ok(),
                };
            }
        }
        ResolvedSeverities { repeat, low_digest }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[serde(default)]
    pub severities: Vec<Severity>,
    pub channels: Vec<Spanned<String>>,
    #[serde(default, rename = "match")]
    pub matches: super::matching::RawMatch,
    pub group_wait: Option<HumanDuration>,
}

/// The keys every channel shares, whatever its kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelCommon {
    pub min_interval: Option<HumanDuration>,
}

impl ChannelCommon {
    pub const KEYS: &'static [&'static str] = &["min_interval"];
}

/// `[watchdog]`: keeper's checks of itself.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watchdog {
    pub enabled: Option<bool>,
    pub interval: Option<Spanned<HumanDuration>>,
    pub timeout: Option<HumanDuration>,
    pub failures_before_alert: Option<Spanned<u32>>,
    pub channel_failing_for: Option<HumanDuration>,
}

impl Watchdog {
    /// keeper's own checks (`crate::watchdog` says which), as checks with
    /// the `[watchdog]` schedule and the default thresholds; `regions`:
    /// some check is probed from regions.
    pub fn checks(
        self,
        channels: &[super::ChannelConfig],
        regions: bool,
        defaults: &ResolvedDefaults,
        errors: &mut Collector,
    ) -> Vec<CheckConfig> {
        if self.enabled == Some(false) {
            return Vec::new();
        }
        let mut settings = watchdog::Settings::default();
        match self.interval {
            Some(i) if i.get_ref().0.is_zero() => {
                errors.at(i.span(), "watchdog.interval", "must be above 0".into());
                return Vec::new();
            }
            Some(i) => settings.interval = i.into_inner().0,
            None => {}
        }
        if let Some(timeout) = self.timeout {
            settings.timeout = timeout.0;
        }
        if let Some(failures) = at_least_one(
            "watchdog.failures_before_alert",
            self.failures_before_alert,
            errors,
        ) {
            settings.failures_before_alert = failures;
        }
        if let Some(failing_for) = self.channel_failing_for {
            settings.channel_failing_for = failing_for.0;
        }
        let names = channels.iter().map(|c| &*c.name);
        watchdog::checks(&settings, names, regions)
            .into_iter()
            .map(|own| CheckConfig {
                name: own.name.into(),
                description: None,
                schedule: Schedule::Every(settings.interval),
                timeout: settings.timeout,
                labels: own.labels,
                depends_on: Vec::new(),
                down_severity: own.down_severity,
                thresholds: defaults.thresholds.clone(),
                failures_before_alert: own.failures_before_alert,
                successes_before_resolve: own.successes_before_resolve,
                enabled: true,
                regions: None,
                probe: probe::Spec::Keeper(own.spec),
            })
            .collect()
    }
}

/// `[[maintenance]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    pub schedule: Crontab,
    pub duration: Spanned<HumanDuration>,
    #[serde(default, rename = "match")]
    pub matches: super::matching::RawMatch,
    #[serde(default)]
    pub checks: Vec<Spanned<String>>,
    #[serde(default)]
    pub comment: String,
}

/// The keys every check shares, whatever its kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Common {
    pub interval: Option<Spanned<HumanDuration>>,
    pub schedule: Option<Spanned<Crontab>>,
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub depends_on: Vec<Spanned<String>>,
    pub down_severity: Option<Severity>,
    pub thresholds: Option<RawThresholds>,
    pub failures_before_alert: Option<Spanned<u32>>,
    pub successes_before_resolve: Option<Spanned<u32>>,
    pub description: Option<String>,
    /// `false`: read and validated, but not run.
    pub enabled: Option<bool>,
    pub regions: Option<Spanned<Vec<Spanned<String>>>>,
    pub quorum: Option<Spanned<u32>>,
}

impl Common {
    pub const KEYS: &'static [&'static str] = &[
        "interval",
        "schedule",
        "timeout",
        "labels",
        "depends_on",
        "down_severity",
        "thresholds",
        "failures_before_alert",
        "successes_before_resolve",
        "description",
        "enabled",
        "regions",
        "quorum",
    ];

    pub fn resolve(
        self,
        name: Spanned<String>,
        probe: probe::Spec,
        defaults: &ResolvedDefaults,
        known_checks: &BTreeSet<String>,
        errors: &mut Collector,
    ) -> Option<CheckConfig> {
        let key = format!("checks.{}", name.get_ref());
        let schedule = schedule(&key, self.interval, self.schedule, defaults, errors)?;
        for dep in &self.depends_on {
            if dep.get_ref() == name.get_ref() {
                errors.at(
                    dep.span(),
                    &format!("{key}.depends_on"),
                    "a check cannot depend on itself".into(),
                );
            } else if !known_checks.contains(dep.get_ref()) {
                errors.at(
                    dep.span(),
                    &format!("{key}.depends_on"),
                    format!("unknown check {:?}", dep.get_ref()),
                );
            }
        }
        let thresholds = match self.thresholds {
            Some(raw) => Arc::new(defaults.thresholds.layered(&thresholds(
                &format!("{key}.thresholds"),
                raw,
                errors,
            ))),
            None => defaults.thresholds.clone(),
        };
        let failures = at_least_one(
            &format!("{key}.failures_before_alert"),
            self.failures_before_alert,
            errors,
        );
        let successes = at_least_one(
            &format!("{key}.successes_before_resolve"),
            self.successes_before_resolve,
            errors,
        );
        let regions = super::regions::read(&key, self.regions, self.quorum, errors);
        Some(CheckConfig {
            name: name.into_inner().into(),
            description: self.description,
            schedule,
            timeout: self.timeout.map_or(defaults.timeout, |d| d.0),
            labels: self.labels,
            depends_on: self
                .depends_on
                .into_iter()
                .map(|d| d.into_inner().into())
                .collect(),
            down_severity: self.down_severity.unwrap_or(Severity::Critical),
            thresholds,
            failures_before_alert: failures.unwrap_or(defaults.failures_before_alert),
            successes_before_resolve: successes.unwrap_or(defaults.successes_before_resolve),
            enabled: self.enabled.unwrap_or(true),
            regions,
            probe,
        })
    }
}

/// When check `key` runs: its `interval` or its `schedule` (not both), else
/// the default interval.
fn schedule(
    key: &str,
    interval: Option<Spanned<HumanDuration>>,
    schedule: Option<Spanned<Crontab>>,
    defaults: &ResolvedDefaults,
    errors: &mut Collector,
) -> Option<Schedule> {
    match (interval, schedule) {
        (Some(_), Some(s)) => {
            errors.at(
                s.span(),
                &format!("{key}.schedule"),
                "set either interval or schedule, not both".into(),
            );
            None
        }
        (Some(i), None) if i.get_ref().0.is_zero() => {
            errors.at(
                i.span(),
                &format!("{key}.interval"),
                "interval must be above 0".into(),
            );
            None
        }
        (Some(i), None) => Some(Schedule::Every(i.into_inner().0)),
        (None, Some(s)) => Some(Schedule::Cron(s.into_inner())),
        (None, None) => Some(Schedule::Every(defaults.interval)),
    }
}

/// Reads a thresholds table: per metric, the short form `{ yellow, red }` or
/// the long form, a list of `{ above | below, color, severity }`.
fn thresholds(section: &str, raw: RawThresholds, errors: &mut Collector) -> Thresholds {
    let mut out = Thresholds::default();
    for (name, value) in raw {
        let key = format!("{section}.{}", name.get_ref());
        let metric: Metric = match name.get_ref().parse() {
            Ok(m) => m,
            Err(e) => {
                errors.at(name.span(), &key, e);
                continue;
            }
        };
        match levels(metric, value.get_ref()) {
            Ok(levels) => {
                out.0.insert(metric, levels);
            }
            Err(e) => errors.at(value.span(), &key, e),
        }
    }
    out
}

fn levels(metric: Metric, value: &toml::Value) -> Result<Levels, String> {
    match value {
        toml::Value::Table(t) => {
            let mut yellow = None;
            let mut red = None;
            for (k, v) in t {
                let n = number(v).ok_or_else(|| format!("{k} must be a number"))?;
                match k.as_str() {
                    "yellow" => yellow = Some(n),
                    "red" => red = Some(n),
                    other => return Err(format!("unknown key {other} (expected yellow and red)")),
                }
            }
            match (yellow, red) {
                (Some(y), Some(r)) => Ok(Levels::short(metric, y, r)),
                _ => Err("the short form needs both yellow and red".into()),
            }
        }
        toml::Value::Array(items) => items
            .iter()
            .map(|item| level(metric, item))
            .collect::<Result<Vec<_>, _>>()
            .map(Levels),
        _ => Err(
            "expected { yellow = …, red = … } or a list of { above|below = …, color, severity }"
                .into(),
        ),
    }
}

fn level(metric: Metric, item: &toml::Value) -> Result<Level, String> {
    let toml::Value::Table(t) = item else {
        return Err("each level must be a table { above|below = …, color, severity }".into());
    };
    let mut direction = None;
    let mut color = None;
    let mut severity = None;
    for (k, v) in t {
        match k.as_str() {
            "above" | "below" => {
                if direction.is_some() {
                    return Err("a level takes one of above or below".into());
                }
                let d = if k == "above" {
                    Direction::Above
                } else {
                    Direction::Below
                };
                direction = Some((d, number(v).ok_or_else(|| format!("{k} must be a number"))?));
            }
            "color" => {
                let c: Color = v.as_str().ok_or("color must be a string")?.parse()?;
                color = Some(c);
            }
            "severity" => {
                let s: Severity = v.as_str().ok_or("severity must be a string")?.parse()?;
                severity = Some(s);
            }
            other => {
                return Err(format!(
                    "unknown key {other} (expected above or below, color, severity)"
                ));
            }
        }
    }
    let (direction, bound) = direction.ok_or("a level needs above or below")?;
    let color = color.unwrap_or(Color::Red);
    if color == Color::Green {
        return Err("a level's color is yellow or red".into());
    }
    let severity = severity.unwrap_or_else(|| {
        let s = crate::classify::default_levels(metric);
        s.0.iter()
            .find(|l| l.color == color)
            .map_or(Severity::High, |l| l.severity)
    });
    Ok(Level {
        direction,
        bound,
        inclusive: false,
        color,
        severity,
    })
}

fn number(v: &toml::Value) -> Option<f64> {
    match v {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) => Some(*f),
        _ => None,
    }
}
