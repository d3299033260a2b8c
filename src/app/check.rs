//! The one step that accepts or refuses a config beyond its loader: every
//! check's probe and every channel built. keeper's start, a config reload and
//! `keeper check-config` all go through [`built`], so they accept and refuse
//! the same files; what it refuses is reported like the loader's errors, at
//! the section's place in the file (`file:line:column: checks.web: …`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::AppError;
use crate::config::{Config, ConfigError, ConfigErrors};
use crate::core::Sample;
use crate::metrics::Metrics;
use crate::notify::Channel;
use crate::probe::{self, keeper};
use crate::scheduler::Job;

/// Every check's job and every channel of `config`, built with `probes`;
/// or every one that could not be built, all named at once. Channels are
/// declared in `metrics` when given.
pub(super) fn built(
    config: &Config,
    probes: &probe::Context,
    metrics: Option<&Metrics>,
) -> Result<(Vec<Job>, BTreeMap<String, Channel>), AppError> {
    let (jobs, mut problems) = jobs(config, probes);
    let (channels, channel_problems) = channels(config, metrics)?;
    problems.extend(channel_problems);
    if !problems.is_empty() {
        return Err(AppError::Invalid(located(&config.path, problems)));
    }
    Ok((jobs, channels))
}

/// What `keeper check-config` runs after the loader: `built`, with the
/// probes' context as the daemon's but looking at no running keeper.
pub async fn check(config: &Config) -> Result<(), ConfigErrors> {
    // Reads and parses the system CA bundle: off the async runtime.
    let mut probes = tokio::task::spawn_blocking(probe::Context::system)
        .await
        .map_err(|e| {
            ConfigErrors::single(
                &config.path,
                format!("loading the system CA certificates: {e}"),
            )
        })?;
    probes.keeper = Some(Arc::new(NotRunning));
    match built(config, &probes, None) {
        Ok(_) => Ok(()),
        Err(AppError::Invalid(errors)) => Err(errors),
        Err(e) => Err(ConfigErrors::single(&config.path, e.to_string())),
    }
}

/// keeper's own checks, built for `check-config`: never run.
#[derive(Debug)]
struct NotRunning;

impl keeper::Look for NotRunning {
    fn look<'a>(&'a self, _: &'a keeper::Spec, _: tokio::time::Instant) -> BoxFuture<'a, Sample> {
        Box::pin(async { Sample::down("keeper is not running") })
    }
}

/// A problem of the build step: the section's key and what is wrong.
type Problem = (String, String);

/// Each check's probe, built, as a scheduler job; and what could not be built.
fn jobs(config: &Config, ctx: &probe::Context) -> (Vec<Job>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut jobs = Vec::with_capacity(config.checks.len());
    let shared = config.storage.url.starts_with("postgres");
    for check in &config.checks {
        if check.regions.is_some() && !shared {
            let why = "regions need several instances on one PostgreSQL database ([storage] url); SQLite is for one instance";
            problems.push((format!("checks.{}", check.name), why.into()));
        }
        match check.probe.build(&check.name, ctx) {
            Ok(probe) => jobs.push(Job {
                name: check.name.clone(),
                probe: Arc::new(probe),
                timeout: check.timeout,
                running: Arc::new(AtomicBool::new(false)),
            }),
            Err(e) => problems.push((format!("checks.{}", check.name), e.to_string())),
        }
    }
    (jobs, problems)
}

/// Every channel, built, by name; and what could not be built.
fn channels(
    config: &Config,
    metrics: Option<&Metrics>,
) -> Result<(BTreeMap<String, Channel>, Vec<Problem>), AppError> {
    let http_client = reqwest::Client::builder()
        .user_agent(concat!("keeper/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| AppError::Build(format!("building the HTTP client: {e}")))?;
    let mut problems = Vec::new();
    let mut channels = BTreeMap::new();
    for ch in &config.channels {
        match ch.spec.build(&http_client) {
            Ok(c) => {
                if let Some(metrics) = metrics {
                    metrics.declare_channel(&ch.name);
                }
                channels.insert(ch.name.clone(), c);
            }
            Err(e) => problems.push((format!("channels.{}", ch.name), e)),
        }
    }
    Ok((channels, problems))
}

/// The problems as config errors, each at its section's header in `file`
/// (line 0 when the file cannot be read again or has no such header).
fn located(file: &Path, problems: Vec<Problem>) -> ConfigErrors {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    ConfigErrors(
        problems
            .into_iter()
            .map(|(key, message)| {
                let (line, column) = header_of(&text, &key).unwrap_or((0, 0));
                ConfigError {
                    file: file.to_path_buf(),
                    line,
                    column,
                    key,
                    message,
                }
            })
            .collect(),
    )
}

/// Line and column (1-based) of the table header `[key]` in `text`, quotes
/// and spaces around the dotted parts aside.
fn header_of(text: &str, key: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(i, line)| {
        let column = line.len() - line.trim_start().len() + 1;
        let inner = line.trim().strip_prefix('[')?.split(']').next()?;
        let parts: Vec<String> = inner
            .split('.')
            .map(|p| p.trim().trim_matches('"').trim_matches('\'').to_string())
            .collect();
        (parts.join(".") == key).then_some((i + 1, column))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_found_at_its_header() {
        let text = "[server]\nlisten = \"x\"\n\n  [checks.\"web\"]\nkind = \"http\"\n[checks.web.thresholds]\n";
        assert_eq!(header_of(text, "checks.web"), Some((4, 3)));
        assert_eq!(header_of(text, "checks.api"), None);
    }
}
