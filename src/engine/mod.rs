//! The engine: the one task that owns every check's state and incidents.
//! Samples come in through the [`Sink`] (which also feeds the metrics and the
//! sample writer); the engine applies hysteresis, asks the notification
//! policy ([`crate::notify::policy`]) what each incident change is, who hears
//! of it and what falls due as time passes, and commits each change with its
//! outbox rows in one transaction ([`commit`]; directly while storage is
//! away, [`offline`]). Nothing else mutates check state or incidents.

mod adopt;
mod board;
mod clock;
mod commit;
mod deploy;
mod offline;
mod regional;
mod regression;
mod reload;
mod requests;
mod shared;
mod sink;
#[cfg(test)]
mod tests;
mod watched;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, mpsc};

pub use board::Board;
pub use regional::Place;
pub use reload::Reshaped;
pub use requests::{AckError, Command, EngineHandle};
pub use shared::Reread;
pub use sink::Sink;

use crate::classify::Verdict;
use crate::config::CheckConfig;
use crate::core::ownership::Ownership;
use crate::core::{Color, EventKind, Sample, Severity};
use crate::incident::{self, Decision, Incident, IncidentChange, OpenIncident};
use crate::metrics::Metrics;
use crate::notify::outbox::Direct;
use crate::notify::policy::{self, Notice, Policy, Rules};
use crate::state::{CheckState, CheckStatus};
use crate::store::writer::SampleBuffer;
use crate::store::{Store, StoreError};

/// A classified sample on its way to the engine.
#[derive(Debug)]
pub struct Observation {
    pub check: usize,
    pub sample: Sample,
    pub verdict: Verdict,
}

struct CheckRuntime {
    config: Arc<CheckConfig>,
    /// Indices of the checks it `depends_on`.
    deps: Vec<usize>,
    state: CheckState,
    open: Option<OpenIncident>,
    /// A check with regions: each region's state ([`regional`]).
    regional: Option<regional::Regional>,
}

/// How often open incidents are looked at for reminders.
const REMINDER_TICK: Duration = Duration::from_secs(1);

pub struct Engine {
    checks: Vec<CheckRuntime>,
    /// Routes, holds, reminders, digest and resends: asked, never doing.
    policy: Policy,
    store: Store,
    board: Board,
    metrics: Metrics,
    outbox: Arc<Notify>,
    /// Sends without the store: `keeper:storage`'s incident while the store is
    /// away, and the re-sends of open incidents to forgetful channels.
    direct: Direct,
    /// Set while storage is away (see [`offline`]).
    away: Option<offline::Away>,
    /// Incident changes made while storage was away, to write down.
    unwritten: offline::Unwritten,
    /// Recent deployments: their apps' checks are watched closely.
    deploys: deploy::Watch,
    /// Checks that regressed after a deployment, by index ([`watched`]).
    regressions: BTreeMap<usize, watched::Regressed>,
    /// Which checks (and duties) this instance acts on as time passes: all
    /// alone, its share in a cluster (`crate::cluster`).
    ownership: Ownership,
    /// Where this instance probes checks with regions from.
    place: Place,
}

/// What the engine's parts are built from.
pub struct Parts {
    pub checks: Vec<Arc<CheckConfig>>,
    /// What the notification policy is built from ([`Config::policy_rules`](crate::config::Config::policy_rules)).
    pub rules: Rules,
    pub store: Store,
    pub buffer: SampleBuffer,
    pub metrics: Metrics,
    /// Woken after every commit that queued notifications.
    pub outbox: Arc<Notify>,
    /// The outbox worker's way around the store.
    pub direct: Direct,
    /// Samples that may wait for the engine.
    pub queue: usize,
    /// What follows a deployment, per app (`deploy_watch`, `rollback_hint`).
    pub deploys: crate::config::Deploys,
    /// Which checks and duties are this instance's.
    pub ownership: Ownership,
    /// Its region, for checks with regions.
    pub place: Place,
}

/// The engine's inputs, handed to [`Engine::run`].
pub struct Inputs {
    observations: mpsc::Receiver<Observation>,
    commands: mpsc::Receiver<Command>,
}

impl Engine {
    /// Builds the engine, the [`Sink`] probes feed, and the handle the API uses.
    pub fn new(parts: Parts) -> (Engine, Sink, EngineHandle, Inputs) {
        let (tx, observations) = mpsc::channel(parts.queue.max(1));
        let (commands_tx, commands) = mpsc::channel(64);
        let board = Board::new(&parts.checks);
        let sink = Sink {
            checks: parts.checks.clone().into(),
            metrics: parts.metrics.clone(),
            buffer: parts.buffer,
            engine: tx,
            region: parts.place.region.as_deref().map(Into::into),
        };
        let engine = Engine {
            checks: runtimes(parts.checks),
            policy: Policy::new(parts.rules, Utc::now()),
            store: parts.store,
            board,
            metrics: parts.metrics,
            outbox: parts.outbox,
            direct: parts.direct,
            away: None,
            unwritten: offline::Unwritten::default(),
            deploys: deploy::Watch::new(parts.deploys),
            regressions: BTreeMap::new(),
            ownership: parts.ownership,
            place: parts.place,
        };
        let handle = EngineHandle {
            commands: commands_tx,
        };
        (
            engine,
            sink,
            handle,
            Inputs {
                observations,
                commands,
            },
        )
    }

    pub fn board(&self) -> Board {
        self.board.clone()
    }

    /// Restores open incidents and the last sample of each check, so a restart
    /// while a check fails sends no second "opened" and the recovery resolves
    /// the same incident.
    pub async fn restore(&mut self) -> Result<(), StoreError> {
        let (open, orphans): (Vec<Incident>, Vec<Incident>) =
            offline::bounded(self.store.open_incidents())
                .await?
                .into_iter()
                .partition(|inc| self.checks.iter().any(|rt| *rt.config.name == inc.check));
        let latest = offline::bounded(self.store.latest_samples()).await?;
        let now = Utc::now();
        for orphan in &orphans {
            self.close_orphan(orphan, now).await?;
        }
        let silences = offline::bounded(self.store.silences(now)).await?;
        self.policy.set_silences(silences);
        // Deployments still watched (up to an hour ahead: `at` comes from the deployer's clock).
        let since = now - self.deploys.horizon();
        let until = now + chrono::Duration::hours(1);
        let deploys = offline::bounded(self.store.deployments(None, since, until, 1000)).await?;
        deploys.into_iter().for_each(|d| self.deployed(d, now));
        self.deploys.read_due(now);
        for (i, rt) in self.checks.iter_mut().enumerate() {
            if let Some(inc) = open.iter().find(|inc| inc.check == *rt.config.name) {
                rt.state = CheckState::restored(
                    inc.color,
                    inc.severity,
                    inc.message.clone(),
                    inc.started_at,
                );
                // The next reminder comes a full window after the restart.
                rt.open = Some(OpenIncident::new(inc, now));
            }
            let last = latest.iter().find(|s| s.check == rt.config.name);
            let state = rt.state.clone();
            let incident = rt.open.as_ref().map(|o| o.id);
            self.board.update(i, |s| {
                s.color = state.color;
                s.severity = state.severity;
                s.since = state.since;
                s.incident = incident;
                if let Some(last) = last {
                    s.message.clone_from(&last.message);
                    s.last_run_at = Some(last.at);
                    s.latency_ms = Some(last.latency_ms);
                } else if !state.is_healthy() {
                    s.message.clone_from(&state.reason);
                }
            });
            self.metrics.set_status(i, state.color);
        }
        self.publish_open_counts();
        Ok(())
    }

    /// Resolves an open incident whose check is no longer in the config:
    /// nothing would ever resolve it otherwise. Whoever heard it open hears why.
    async fn close_orphan(&mut self, inc: &Incident, now: DateTime<Utc>) -> Result<(), StoreError> {
        let message = "resolved: the check is no longer in the config".to_string();
        let heard = match inc.notified_at {
            Some(_) => offline::bounded(self.store.incident_channels(inc.id)).await?,
            None => Vec::new(),
        };
        let notice = Notice {
            kind: EventKind::Resolved,
            incident: inc.id,
            severity: inc.severity,
            color: Color::Green,
            message: message.clone(),
            started_at: inc.started_at,
            at: now,
            batch_at: None,
            heard,
        };
        let no_labels = BTreeMap::new();
        let event = notice.event(&inc.check, &no_labels);
        let rows = policy::route_with(&[], &event, &notice.heard);
        let queued = rows.len();
        let change = IncidentChange::Resolve {
            id: inc.id,
            message,
            at: now,
        };
        offline::bounded(self.store.record(change, rows)).await?;
        tracing::info!(check = %inc.check, incident = inc.id, notifications = queued, "incident of a check no longer configured resolved");
        if queued > 0 {
            self.outbox.notify_one();
        }
        Ok(())
    }

    /// Runs until every [`Sink`] is dropped and the sample queue is drained;
    /// returns itself, for a config reload ([`Engine::reshape`]).
    pub async fn run(mut self, inputs: Inputs) -> Engine {
        let Inputs {
            mut observations,
            mut commands,
        } = inputs;
        let mut tick = tokio::time::interval(REMINDER_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                obs = observations.recv() => match obs {
                    Some(obs) => self.handle(obs).await,
                    None => break,
                },
                Some(command) = commands.recv() => self.command(command).await,
                _ = tick.tick() => self.tick(Utc::now()).await,
            }
        }
        self
    }

    /// One step: takes one observation into account.
    pub async fn handle(&mut self, obs: Observation) {
        self.observe(obs, Utc::now()).await;
    }

    /// [`Engine::handle`] with the clock read by the caller: `now` is when
    /// the incident changes it makes happen.
    async fn observe(&mut self, obs: Observation, now: DateTime<Utc>) {
        let Some(rt) = self.checks.get_mut(obs.check) else {
            return;
        };
        if rt.regional.is_some() {
            return self.observe_regional(obs, now).await;
        }
        let config = &rt.config;
        // Just after a deployment of its app, one failure is enough; a
        // regression since one stands for the sample while it is worse.
        let mut failures =
            (self.deploys).failures_before_alert(config.app(), config.failures_before_alert, now);
        let verdict = match self.regressions.get(&obs.check) {
            Some(r) if r.verdict.color > obs.verdict.color => {
                failures = 1;
                &r.verdict
            }
            _ => &obs.verdict,
        };
        rt.state.observe(
            verdict,
            obs.sample.at,
            failures,
            config.successes_before_resolve,
        );
        self.metrics.set_status(obs.check, rt.state.color);
        // keeper:storage seeing the database away spares every other check
        // the wait for a database that will not answer.
        if self.watches_storage(obs.check) {
            self.storage_seen(&obs.sample);
        }
        let rt = &self.checks[obs.check];
        if let Some(decision) = incident::decide(&rt.state, rt.open.as_ref()) {
            // Boxed: deciding commits through the store, a future of tens of
            // kilobytes; inline, every observation's future would be that
            // large and copied whole on each call (callgrind: 47 KB memcpy
            // per sample), though a decision comes with few samples.
            Box::pin(self.decided(obs.check, decision, now)).await;
        }
        // A regression standing for the sample is what the check shows.
        let message = match self.regressions.get(&obs.check) {
            Some(r) if r.verdict.color > obs.verdict.color => &r.verdict.reason,
            _ => &obs.sample.message,
        };
        let (at, latency_ms) = (obs.sample.at, obs.sample.latency_ms());
        self.show_state(obs.check, |s| {
            s.message.clone_from(message);
            s.last_run_at = Some(at);
            s.latency_ms = Some(latency_ms);
        });
    }

    /// Shows check `i`'s state and incident as they are now, and what
    /// `ran` writes of its latest run.
    fn show_state(&self, i: usize, ran: impl FnOnce(&mut CheckStatus)) {
        let rt = &self.checks[i];
        // An incident opened while storage is away has no id to show yet.
        let incident = (rt.open.as_ref())
            .map(|o| o.id)
            .filter(|&id| id != offline::OFFLINE);
        let state = &rt.state;
        self.board.update(i, |s| {
            s.color = state.color;
            s.severity = state.severity;
            s.since = state.since;
            s.incident = incident;
            s.streaks = state.streaks();
            ran(s);
        });
    }

    /// Why check `i`'s notifications about an incident of `severity` are held
    /// back at `now`, if they are: the policy's answer given its dependencies' states.
    fn hold(&self, i: usize, severity: Severity, now: DateTime<Utc>) -> Option<String> {
        let rt = &self.checks[i];
        let dependencies: Vec<policy::Dependency<'_>> = rt
            .deps
            .iter()
            .map(|&d| policy::Dependency {
                name: &self.checks[d].config.name,
                state: &self.checks[d].state,
            })
            .collect();
        let subject = policy::Subject {
            name: &rt.config.name,
            labels: &rt.config.labels,
            state: &rt.state,
            dependencies: &dependencies,
        };
        self.policy.hold(&subject, severity, now)
    }

    /// Turns a decision into an incident change, as the policy says, and commits it.
    async fn decided(&mut self, check: usize, mut decision: Decision, now: DateTime<Utc>) {
        let open = self.checks[check].open.clone();
        // An incident starting soon after a deployment of its app says so.
        let app = self.checks[check].config.app();
        match &mut decision {
            Decision::Open { message, .. } => *message = self.deploys.annotate(app, message, now),
            Decision::Escalate { message, .. } => {
                let started_at = open.as_ref().map_or(now, |o| o.started_at);
                *message = self.deploys.annotate(app, message, started_at);
            }
            Decision::Resolve { .. } => {}
        }
        let severity = policy::changes::severity_of(&decision, open.as_ref());
        let hold = self.hold(check, severity, now);
        let name = &self.checks[check].config.name;
        let planned = policy::changes::decided(name, decision, open.as_ref(), hold, now);
        self.settle(check, planned).await;
    }

    fn publish_open_counts(&self) {
        for severity in Severity::ALL {
            let n = self
                .checks
                .iter()
                .filter(|rt| rt.open.as_ref().is_some_and(|o| o.severity == severity))
                .count();
            self.metrics.set_incidents_open(severity, n as i64);
        }
    }
}

/// Each check's runtime, its `depends_on` resolved to indices.
fn runtimes(checks: Vec<Arc<CheckConfig>>) -> Vec<CheckRuntime> {
    let index: std::collections::HashMap<&str, usize> = checks
        .iter()
        .enumerate()
        .map(|(i, c)| (&*c.name, i))
        .collect();
    let deps: Vec<Vec<usize>> = checks
        .iter()
        .map(|c| {
            c.depends_on
                .iter()
                .filter_map(|d| index.get(&**d).copied())
                .collect()
        })
        .collect();
    checks
        .into_iter()
        .zip(deps)
        .map(|(config, deps)| CheckRuntime {
            regional: config.regions.is_some().then(Default::default),
            config,
            deps,
            state: CheckState::default(),
            open: None,
        })
        .collect()
}
