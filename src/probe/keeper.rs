//! The probe kind of keeper's own checks (`keeper:*`), as far as the probe
//! layer sees it: which part a check looks at ([`Spec`], carried by
//! `probe::Spec` like every kind's keys) and the seam it looks through
//! ([`Look`]). What the checks are, how they are made from `[watchdog]` and
//! how they look at the storage, the channels and the scheduler is
//! `crate::watchdog`'s, which sits above and implements [`Look`].

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::Instant;

use super::{BuildError, Context, Kind};
use crate::core::Sample;
use crate::core::SpecProblem;

/// What a self-check looks at.
#[derive(Clone, Debug, PartialEq)]
pub enum Spec {
    /// The database answers.
    Storage,
    /// The channel's deliveries have not all been failing for `failing_for`.
    Channel { name: String, failing_for: Duration },
    /// Probes start on time.
    Scheduler,
    /// Every region a check is probed from has a live instance.
    Regions,
}

impl Spec {
    pub fn target(&self) -> String {
        match self {
            Spec::Storage => "storage".into(),
            Spec::Channel { name, .. } => format!("channel {name}"),
            Spec::Scheduler => "scheduler".into(),
            Spec::Regions => "regions".into(),
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

    /// The probe, looking through `look` (the running daemon's parts).
    pub fn build(&self, look: Option<&Arc<dyn Look>>) -> Result<Probe, BuildError> {
        let look =
            look.ok_or_else(|| BuildError("keeper's own checks need the running daemon".into()))?;
        Ok(Probe {
            spec: self.clone(),
            look: look.clone(),
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

/// How a self-check looks at the running daemon: `crate::watchdog::Sources`.
pub trait Look: std::fmt::Debug + Send + Sync {
    /// The sample of the part `spec` names, by `deadline`.
    fn look<'a>(&'a self, spec: &'a Spec, deadline: Instant) -> BoxFuture<'a, Sample>;
}

#[derive(Debug)]
pub struct Probe {
    spec: Spec,
    look: Arc<dyn Look>,
}

impl Probe {
    pub async fn run(&self, deadline: Instant) -> Sample {
        self.look.look(&self.spec, deadline).await
    }
}
