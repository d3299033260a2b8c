//! Checks with regions (DESIGN.md §11) in the engine. The instance probing
//! a check from its region applies the check's hysteresis to its own samples
//! and publishes the resulting state (through the check's regional lease,
//! see `crate::cluster`); the instance deciding the check gathers every
//! region's state and opens, escalates or resolves its incident by quorum
//! ([`crate::state::quorum`]). One instance may do both.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Engine, Observation};
use crate::config::{CheckConfig, Schedule};
use crate::incident;
use crate::state::quorum::{self, Combined};
use crate::state::{CheckState, Seen};

/// Where this instance probes from, and how long a region's state counts.
#[derive(Clone, Debug, Default)]
pub struct Place {
    /// `[cluster] region`.
    pub region: Option<String>,
    /// `[cluster] lease`: a region's state reaches the decider within two
    /// thirds of it.
    pub lease: Duration,
}

/// A check with regions, as this instance knows it.
#[derive(Clone, Debug, Default)]
pub(super) struct Regional {
    /// Its state as seen from this instance's region, when it probes it.
    mine: CheckState,
    /// Each region's state as its prober last published it.
    views: BTreeMap<String, Seen>,
}

impl Engine {
    /// A sample of check `obs.check` probed from this instance's region:
    /// that region's state moves, and the decider hears of it.
    pub(super) async fn observe_regional(&mut self, obs: Observation, now: DateTime<Utc>) {
        let i = obs.check;
        let rt = &mut self.checks[i];
        let config = &rt.config;
        let failures =
            (self.deploys).failures_before_alert(config.app(), config.failures_before_alert, now);
        let successes = config.successes_before_resolve;
        let Some(regional) = rt.regional.as_mut() else {
            return;
        };
        let mine = &mut regional.mine;
        mine.observe(&obs.verdict, obs.sample.at, failures, successes);
        let latency_ms = Some(obs.sample.latency_ms());
        let seen = Seen {
            color: mine.color,
            severity: mine.severity,
            message: obs.sample.message,
            since: mine.since,
            last_run_at: Some(obs.sample.at),
            latency_ms,
            incident: None,
            streaks: mine.streaks(),
        };
        self.board.set_regional(i, seen.clone());
        if let Some(region) = self.place.region.clone() {
            self.regions_seen(vec![(i, region, seen)], now).await;
        }
    }

    /// Regions' states of checks (by index), from this instance's probes or
    /// the others' leases: each kept when newer than the one known, and the
    /// checks this instance decides decided again.
    pub(super) async fn regions_seen(
        &mut self,
        seen: Vec<(usize, String, Seen)>,
        now: DateTime<Utc>,
    ) {
        let mut touched = Vec::new();
        for (i, region, view) in seen {
            let Some(regional) = self.checks.get_mut(i).and_then(|rt| rt.regional.as_mut()) else {
                continue;
            };
            let known = regional.views.get(&region).and_then(|v| v.last_run_at);
            if known >= view.last_run_at {
                continue;
            }
            regional.views.insert(region, view);
            if !touched.contains(&i) {
                touched.push(i);
            }
        }
        for i in touched {
            if self.ownership.owns(i) {
                self.decide_by_quorum(i, now).await;
            }
        }
    }

    /// Check `i`'s state from its regions' states, and what follows for its incident.
    async fn decide_by_quorum(&mut self, i: usize, now: DateTime<Utc>) {
        let rt = &mut self.checks[i];
        let (Some(regions), Some(regional)) = (&rt.config.regions, &rt.regional) else {
            return;
        };
        let fresh_since = now - counts_for(&rt.config, self.place.lease);
        let combined = quorum::combine(regions, &regional.views, fresh_since);
        let last_run_at = (regional.views.values())
            .filter_map(|v| v.last_run_at)
            .max();
        let message = match combined {
            // Hysteresis was applied in each region.
            Combined::Decided(verdict) => {
                rt.state.observe(&verdict, now, 1, 1);
                verdict.reason
            }
            Combined::Undecided(why) => why,
        };
        self.metrics.set_status(i, rt.state.color);
        let rt = &self.checks[i];
        if let Some(decision) = incident::decide(&rt.state, rt.open.as_ref()) {
            Box::pin(self.decided(i, decision, now)).await;
        }
        self.show_state(i, |s| {
            s.message = message;
            s.last_run_at = last_run_at;
        });
    }
}

/// How long a region's state counts for check `config`: two of its runs
/// and the time its publication may take (two renewals). Older, the region
/// is unknown.
fn counts_for(config: &CheckConfig, lease: Duration) -> chrono::Duration {
    let period = match &config.schedule {
        Schedule::Every(every) => *every,
        Schedule::Cron(cron) => {
            let now = Utc::now();
            let next = cron.next_after(now);
            let after = next.and_then(|n| cron.next_after(n).map(|a| a - n));
            (after.and_then(|d| d.to_std().ok())).unwrap_or(Duration::from_secs(3600))
        }
    };
    chrono::Duration::from_std(2 * period + 2 * lease).unwrap_or(chrono::Duration::days(1))
}
