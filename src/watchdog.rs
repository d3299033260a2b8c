//! keeper watching itself (DESIGN.md §4): its storage, each channel and its
//! scheduler are checks of their own (`keeper:storage`, `keeper:channel:NAME`,
//! `keeper:scheduler`; and `keeper:regions` when checks are probed from
//! regions, DESIGN.md §11), made from `[watchdog]` rather than written as checks,
//! and probed like any other — so they are scheduled, classified, turned into
//! incidents, silenced and acknowledged the same way.
//!
//! This module owns which checks keeper makes of itself ([`checks`]: names,
//! labels, severities, streaks) and how they look at the running daemon
//! ([`Sources`]). `config` reads the `[watchdog]` keys and calls [`checks`];
//! `app` hands [`Sources`] to the probe context. The probe layer only
//! carries the kind (`probe::keeper`).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::time::{Instant, timeout_at};

use crate::core::health::{
    ChannelHealth, RegionMembers, STORAGE_UNREACHABLE, SchedulerLag, WriteHealth,
};
use crate::core::{Sample, Severity};
use crate::probe::keeper::{Look, Spec};
use crate::store::Store;

/// The prefix of every check keeper makes about itself; not allowed in check names.
pub const PREFIX: &str = "keeper:";

/// The check name of a self-check.
pub fn name(spec: &Spec) -> String {
    match spec {
        Spec::Storage => format!("{PREFIX}storage"),
        Spec::Channel { name, .. } => format!("{PREFIX}channel:{name}"),
        Spec::Scheduler => format!("{PREFIX}scheduler"),
        Spec::Regions => format!("{PREFIX}regions"),
    }
}

/// `[watchdog]` once read and validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// How often each self-check runs.
    pub interval: Duration,
    pub timeout: Duration,
    /// Red looks before storage and scheduler incidents open.
    pub failures_before_alert: u32,
    /// How long a channel fails every delivery before its check turns red.
    pub channel_failing_for: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(5),
            failures_before_alert: 4,
            channel_failing_for: Duration::from_secs(600),
        }
    }
}

/// One check keeper makes of itself; `config` gives it a schedule
/// ([`Settings::interval`]) and the default thresholds.
#[derive(Clone, Debug, PartialEq)]
pub struct Own {
    pub name: String,
    pub spec: Spec,
    pub labels: BTreeMap<String, String>,
    pub down_severity: Severity,
    pub failures_before_alert: u32,
    pub successes_before_resolve: u32,
}

/// keeper's own checks: its storage, its scheduler, each of `channels`,
/// and with `regions` (some check is probed from regions) its regions.
pub fn checks<'a>(
    settings: &Settings,
    channels: impl IntoIterator<Item = &'a str>,
    regions: bool,
) -> Vec<Own> {
    let own = |spec: Spec, down_severity, failures, successes| {
        let mut labels = BTreeMap::new();
        let what = match &spec {
            Spec::Storage => "storage",
            Spec::Scheduler => "scheduler",
            Spec::Regions => "regions",
            Spec::Channel { name, .. } => {
                labels.insert("channel".to_string(), name.clone());
                "channel"
            }
        };
        labels.insert("keeper".to_string(), what.to_string());
        Own {
            name: name(&spec),
            spec,
            labels,
            down_severity,
            failures_before_alert: failures,
            successes_before_resolve: successes,
        }
    };
    let failures = settings.failures_before_alert;
    let mut checks = vec![
        own(Spec::Storage, Severity::Critical, failures, 2),
        own(Spec::Scheduler, Severity::High, failures, 2),
    ];
    // A region nobody probes from may keep a quorum from being reached.
    if regions {
        checks.push(own(Spec::Regions, Severity::High, failures, 2));
    }
    // The streak's length is the grace: one look past it is enough, and
    // one delivery that works ends it.
    checks.extend(channels.into_iter().map(|c| {
        let spec = Spec::Channel {
            name: c.to_string(),
            failing_for: settings.channel_failing_for,
        };
        own(spec, Severity::High, 1, 1)
    }));
    checks
}

/// The parts of the running daemon the self-checks read.
#[derive(Clone, Debug)]
pub struct Sources {
    pub store: Store,
    /// The sample writer's: whether the database takes the samples.
    pub writes: WriteHealth,
    pub channels: ChannelHealth,
    pub scheduler_lag: SchedulerLag,
    pub regions: RegionMembers,
}

/// Scheduler lag past this is a warning (yellow)…
const LAG_WARN: Duration = Duration::from_secs(5);
/// …and past this, keeper is falling behind (red).
const LAG_DOWN: Duration = Duration::from_secs(30);

impl Look for Sources {
    fn look<'a>(&'a self, spec: &'a Spec, deadline: Instant) -> BoxFuture<'a, Sample> {
        match spec {
            Spec::Storage => self.storage(deadline).boxed(),
            Spec::Channel { name, failing_for } => {
                std::future::ready(self.channel(name, *failing_for)).boxed()
            }
            Spec::Scheduler => std::future::ready(self.scheduler()).boxed(),
            Spec::Regions => std::future::ready(self.regions()).boxed(),
        }
    }
}

impl Sources {
    async fn storage(&self, deadline: Instant) -> Sample {
        match timeout_at(deadline, self.store.ping()).await {
            Ok(Ok(())) => match self.writes.failing() {
                None => Sample::up("storage answers"),
                Some(streak) => Sample::down(format!(
                    "storage answers but takes no samples: {} writes failed since {}, the last: {}",
                    streak.attempts,
                    streak.since.format("%Y-%m-%d %H:%M:%S UTC"),
                    streak.error
                )),
            },
            Ok(Err(e)) => Sample::down(format!("{STORAGE_UNREACHABLE}: {e}")),
            Err(_) => Sample::down(format!(
                "{STORAGE_UNREACHABLE}: no answer within the timeout"
            )),
        }
    }

    fn channel(&self, name: &str, failing_for: Duration) -> Sample {
        let Some(failing) = self.channels.failing(name) else {
            return Sample::up(format!("channel {name} delivers"));
        };
        let for_ = (Utc::now() - failing.since).to_std().unwrap_or_default();
        let message = format!(
            "channel {name} failing for {} ({} attempts): {}",
            humantime::format_duration(Duration::from_secs(for_.as_secs())),
            failing.attempts,
            failing.error
        );
        if for_ >= failing_for {
            Sample::down(message)
        } else {
            Sample::up(message)
        }
    }

    /// Red while a region checks are probed from has no live instance:
    /// those checks count it as unknown, and may not reach their quorum.
    fn regions(&self) -> Sample {
        Sources::regions_of(&self.regions)
    }

    fn regions_of(members: &RegionMembers) -> Sample {
        let Some(regions) = members.get() else {
            return Sample::up("regions not looked at yet");
        };
        let empty: Vec<&str> = (regions.iter())
            .filter(|(_, members)| *members == 0)
            .map(|(r, _)| r.as_str())
            .collect();
        if !empty.is_empty() {
            return Sample::down(format!(
                "no live instance in region {}: checks probed from there count it as unknown",
                empty.join(", ")
            ));
        }
        let live: Vec<String> = (regions.iter())
            .map(|(r, n)| format!("{r} ({n})"))
            .collect();
        Sample::up(format!(
            "live instances in every region: {}",
            live.join(", ")
        ))
    }

    fn scheduler(&self) -> Sample {
        let lag = self.scheduler_lag.take();
        let message = format!("worst start lag {} ms", lag.as_millis());
        if lag > LAG_DOWN {
            Sample::down(format!("scheduler falling behind: {message}"))
        } else if lag > LAG_WARN {
            Sample::warn(format!("scheduler lagging: {message}"))
        } else {
            Sample::up(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_lag_keeps_the_worst_until_taken() {
        let lag = SchedulerLag::default();
        lag.observe(Duration::from_millis(3));
        lag.observe(Duration::from_millis(40));
        lag.observe(Duration::from_millis(7));
        assert_eq!(lag.take(), Duration::from_millis(40));
        assert_eq!(lag.take(), Duration::ZERO);
    }

    #[test]
    fn names_and_the_avoided_channel() {
        let ch = Spec::Channel {
            name: "slack".into(),
            failing_for: Duration::from_secs(600),
        };
        assert_eq!(name(&ch), "keeper:channel:slack");
        assert_eq!(ch.avoids_channel(), Some("slack"));
        assert_eq!(name(&Spec::Storage), "keeper:storage");
        assert_eq!(Spec::Storage.avoids_channel(), None);
    }

    #[test]
    fn storage_scheduler_then_each_channel() {
        let own = checks(&Settings::default(), ["ops"], false);
        let names: Vec<&str> = own.iter().map(|c| &*c.name).collect();
        assert_eq!(
            names,
            ["keeper:storage", "keeper:scheduler", "keeper:channel:ops"]
        );
        assert_eq!(own[0].down_severity, Severity::Critical);
        assert_eq!(own[2].labels["channel"], "ops");
        assert_eq!(own[2].failures_before_alert, 1);
        let own = checks(&Settings::default(), ["ops"], true);
        assert_eq!(own[2].name, "keeper:regions");
        assert_eq!(own[2].down_severity, Severity::High);
    }

    #[test]
    fn regions_without_a_live_instance_are_red_and_named() {
        let sources = |regions: Option<Vec<(&str, usize)>>| {
            let members = RegionMembers::default();
            if let Some(r) = regions {
                members.set(r.into_iter().map(|(n, c)| (n.to_string(), c)).collect());
            }
            members
        };
        let look = |members: RegionMembers| {
            let sample = Sources::regions_of(&members);
            (sample.is_up(), sample.message)
        };
        assert!(look(sources(None)).0, "not known yet is no alarm");
        let (up, message) = look(sources(Some(vec![("fra", 1), ("syd", 0)])));
        assert!(!up);
        assert_eq!(
            message,
            "no live instance in region syd: checks probed from there count it as unknown"
        );
        let (up, message) = look(sources(Some(vec![("fra", 2), ("syd", 1)])));
        assert!(up);
        assert_eq!(message, "live instances in every region: fra (2), syd (1)");
    }
}
