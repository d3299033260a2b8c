//! keeper watching itself (DESIGN.md §4): its storage, each channel and its
//! scheduler are checks of their own (`keeper:storage`, `keeper:channel:NAME`,
//! `keeper:scheduler`), made from `[watchdog]` rather than written as checks,
//! and probed like any other — so they are scheduled, classified, turned into
//! incidents, silenced and acknowledged the same way.

use std::time::Duration;

use chrono::Utc;
use tokio::time::{Instant, timeout_at};

use super::{BuildError, Context, Kind};
use crate::core::Sample;
use crate::core::SpecProblem;
use crate::core::health::{ChannelHealth, SchedulerLag};
use crate::store::Store;

/// The prefix of every check keeper makes about itself; not allowed in check names.
pub const PREFIX: &str = "keeper:";

/// What a self-check looks at.
#[derive(Clone, Debug, PartialEq)]
pub enum Spec {
    /// The database answers.
    Storage,
    /// The channel's deliveries have not all been failing for `failing_for`.
    Channel { name: String, failing_for: Duration },
    /// Probes start on time.
    Scheduler,
}

impl Spec {
    pub fn check_name(&self) -> String {
        match self {
            Spec::Storage => format!("{PREFIX}storage"),
            Spec::Channel { name, .. } => format!("{PREFIX}channel:{name}"),
            Spec::Scheduler => format!("{PREFIX}scheduler"),
        }
    }

    pub fn target(&self) -> String {
        match self {
            Spec::Storage => "storage".into(),
            Spec::Channel { name, .. } => format!("channel {name}"),
            Spec::Scheduler => "scheduler".into(),
        }
    }

    /// The channel a notification about this check must not go through:
    /// the one it says is failing.
    pub fn avoids_channel(&self) -> Option<&str> {
        match self {
            Spec::Channel { name, .. } => Some(name),
            _ => None,
        }
    }

    pub fn build(&self, sources: Option<&Sources>) -> Result<Probe, BuildError> {
        let sources = sources
            .ok_or_else(|| BuildError("keeper's own checks need the running daemon".into()))?;
        Ok(Probe {
            spec: self.clone(),
            sources: sources.clone(),
        })
    }
}

impl Kind for Spec {
    const NAME: &'static str = "keeper";
    type Probe = Probe;

    fn target(&self) -> String {
        Spec::target(self)
    }

    /// Made by keeper from `[watchdog]`, already checked there.
    fn problems(&self) -> Vec<SpecProblem> {
        Vec::new()
    }

    /// Fails outside the daemon only: the config cannot cause it.
    fn build(&self, _check: &str, ctx: &Context) -> Result<Probe, BuildError> {
        Spec::build(self, ctx.keeper.as_ref())
    }
}

/// The parts of the running daemon the self-checks read.
#[derive(Clone, Debug)]
pub struct Sources {
    pub store: Store,
    pub channels: ChannelHealth,
    pub scheduler_lag: SchedulerLag,
}

/// Scheduler lag past this is a warning (yellow)…
const LAG_WARN: Duration = Duration::from_secs(5);
/// …and past this, keeper is falling behind (red).
const LAG_DOWN: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Probe {
    spec: Spec,
    sources: Sources,
}

impl Probe {
    pub async fn run(&self, deadline: Instant) -> Sample {
        match &self.spec {
            Spec::Storage => match timeout_at(deadline, self.sources.store.ping()).await {
                Ok(Ok(())) => Sample::up("storage answers"),
                Ok(Err(e)) => Sample::down(format!("storage unreachable: {e}")),
                Err(_) => Sample::down("storage unreachable: no answer within the timeout"),
            },
            Spec::Channel { name, failing_for } => {
                let Some(failing) = self.sources.channels.failing(name) else {
                    return Sample::up(format!("channel {name} delivers"));
                };
                let for_ = (Utc::now() - failing.since).to_std().unwrap_or_default();
                let message = format!(
                    "channel {name} failing for {} ({} attempts): {}",
                    humantime::format_duration(Duration::from_secs(for_.as_secs())),
                    failing.attempts,
                    failing.error
                );
                if for_ >= *failing_for {
                    Sample::down(message)
                } else {
                    Sample::up(message)
                }
            }
            Spec::Scheduler => {
                let lag = self.sources.scheduler_lag.take();
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
        assert_eq!(ch.check_name(), "keeper:channel:slack");
        assert_eq!(ch.avoids_channel(), Some("slack"));
        assert_eq!(Spec::Storage.check_name(), "keeper:storage");
        assert_eq!(Spec::Storage.avoids_channel(), None);
    }
}
