//! The engine: the one task that owns every check's state and incidents.
//! Samples come in through the [`Sink`] (which also feeds the metrics and the
//! sample writer); the engine applies hysteresis, decides incident changes,
//! sends reminders when a response window passes, takes acknowledgements,
//! and commits each change with its outbox rows in one transaction. Nothing
//! else mutates check state or incidents.

mod board;
mod clock;
mod offline;
mod requests;
mod sink;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, mpsc};

pub use board::Board;
pub use requests::{AckError, Command, EngineHandle};
pub use sink::Sink;

use crate::classify::Verdict;
use crate::config::CheckConfig;
use crate::core::EventKind;
use crate::core::Sample;
use crate::core::value::Crontab;
use crate::core::{Color, Severity};
use crate::incident::{self, Decision, OpenIncident};
use crate::incident::{Incident, IncidentChange, Silence};
use crate::metrics::Metrics;
use crate::notify::outbox::Direct;
use crate::notify::policy;
use crate::notify::policy::{Maintenance, Route};
use crate::state::CheckState;
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
}

/// How often open incidents are looked at for reminders.
const REMINDER_TICK: Duration = Duration::from_secs(1);

pub struct Engine {
    checks: Vec<CheckRuntime>,
    routes: Vec<Route>,
    /// Response window per severity: an unacknowledged open incident is sent again after it.
    repeat: BTreeMap<Severity, Duration>,
    /// Silences not yet ended, as the store has them.
    silences: Vec<Silence>,
    maintenance: Vec<Maintenance>,
    /// Grouping windows per channel (a route's `group_wait`).
    windows: policy::Windows,
    /// When low incidents go out, all in one message (`[severities] low.digest`).
    digest: Option<Crontab>,
    next_digest: Option<DateTime<Utc>>,
    store: Store,
    board: Board,
    metrics: Metrics,
    outbox: Arc<Notify>,
    /// Sends without the store: `keeper:storage`'s incident while the store is
    /// away, and the re-sends of open incidents to forgetful channels.
    direct: Direct,
    /// Per forgetful channel: how often, and when next.
    resend: Vec<(String, Duration, DateTime<Utc>)>,
    /// Set while storage is away (see [`offline`]).
    away: Option<offline::Away>,
    /// Incident changes made while storage was away, to write down.
    unwritten: offline::Unwritten,
}

/// How an incident change ended.
#[derive(Debug)]
pub(super) enum Commit {
    /// Stored with its notifications: the incident as it stands now.
    Stored(Incident),
    /// Storage is away: the notifications went out directly and the change
    /// waits in memory to be written down.
    Deferred,
    /// The database refused this change for its data (the incident was
    /// resolved elsewhere, say): the check's incident was reloaded instead.
    Refused(StoreError),
}

impl Commit {
    /// Whether the change took effect (now or, written later, as it happened).
    fn took(&self) -> bool {
        !matches!(self, Commit::Refused(_))
    }
}

/// What the engine's parts are built from.
pub struct Parts {
    pub checks: Vec<Arc<CheckConfig>>,
    pub routes: Vec<Route>,
    pub repeat: BTreeMap<Severity, Duration>,
    pub maintenance: Vec<Maintenance>,
    /// `[severities] low.digest`: low incidents wait for it instead of paging one by one.
    pub digest: Option<Crontab>,
    pub store: Store,
    pub buffer: SampleBuffer,
    pub metrics: Metrics,
    /// Woken after every commit that queued notifications.
    pub outbox: Arc<Notify>,
    /// The outbox worker's way around the store.
    pub direct: Direct,
    /// Channels that forget an incident unless told again, and how often
    /// (Alertmanager's `resend`).
    pub resend: Vec<(String, Duration)>,
    /// Samples that may wait for the engine.
    pub queue: usize,
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
        };
        let index: std::collections::HashMap<&str, usize> = parts
            .checks
            .iter()
            .enumerate()
            .map(|(i, c)| (&*c.name, i))
            .collect();
        let deps: Vec<Vec<usize>> = parts
            .checks
            .iter()
            .map(|c| {
                c.depends_on
                    .iter()
                    .filter_map(|d| index.get(&**d).copied())
                    .collect()
            })
            .collect();
        let engine = Engine {
            checks: parts
                .checks
                .into_iter()
                .zip(deps)
                .map(|(config, deps)| CheckRuntime {
                    config,
                    deps,
                    state: CheckState::default(),
                    open: None,
                })
                .collect(),
            silences: Vec::new(),
            maintenance: parts.maintenance,
            windows: policy::Windows::default(),
            next_digest: parts.digest.as_ref().and_then(|d| d.next_after(Utc::now())),
            digest: parts.digest,
            routes: parts.routes,
            repeat: parts.repeat,
            store: parts.store,
            board,
            metrics: parts.metrics,
            outbox: parts.outbox,
            direct: parts.direct,
            resend: parts
                .resend
                .into_iter()
                .map(|(channel, every)| {
                    let next = Utc::now() + chrono::Duration::from_std(every).unwrap_or_default();
                    (channel, every, next)
                })
                .collect(),
            away: None,
            unwritten: offline::Unwritten::default(),
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
        self.silences = offline::bounded(self.store.silences(now)).await?;
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
        let facts = EventFacts {
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
        let rows = policy::route_with(
            &[],
            &facts.event(&inc.check, &BTreeMap::new()),
            &facts.heard,
        );
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

    /// Runs until every [`Sink`] is dropped and the sample queue is drained.
    pub async fn run(mut self, inputs: Inputs) {
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
    }

    /// One step: takes one observation into account.
    pub async fn handle(&mut self, obs: Observation) {
        let Some(rt) = self.checks.get_mut(obs.check) else {
            return;
        };
        let config = &rt.config;
        rt.state.observe(
            &obs.verdict,
            obs.sample.at,
            config.failures_before_alert,
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
            self.decided(obs.check, decision).await;
        }
        let rt = &self.checks[obs.check];
        let state = rt.state.clone();
        // An incident opened while storage is away has no id to show yet.
        let incident = rt
            .open
            .as_ref()
            .map(|o| o.id)
            .filter(|&id| id != offline::OFFLINE);
        self.board.update(obs.check, |s| {
            s.color = state.color;
            s.severity = state.severity;
            s.since = state.since;
            s.message.clone_from(&obs.sample.message);
            s.last_run_at = Some(obs.sample.at);
            s.latency_ms = Some(obs.sample.latency_ms());
            s.incident = incident;
        });
    }

    /// Why check `i`'s notifications about an incident of `severity` are held
    /// back at `now`, if they are: low incidents wait for the daily digest,
    /// then the policy's holds (dependencies, silences, maintenance).
    fn hold(&self, i: usize, severity: Severity, now: DateTime<Utc>) -> Option<String> {
        if severity == Severity::Low && self.digest.is_some() {
            return Some("low: waiting for the daily digest".into());
        }
        let rt = &self.checks[i];
        let deps: Vec<policy::Dependency<'_>> = rt
            .deps
            .iter()
            .map(|&d| policy::Dependency {
                name: &self.checks[d].config.name,
                state: &self.checks[d].state,
            })
            .collect();
        policy::hold(
            &rt.config.name,
            &rt.config.labels,
            &rt.state,
            &deps,
            &self.silences,
            &self.maintenance,
            now,
        )
    }

    /// Turns a decision into an incident change and commits it, notifying
    /// people unless the check is held back (a dependency failing, a silence).
    /// A resolve is always notified when the opening was.
    async fn decided(&mut self, check: usize, decision: Decision) {
        let now = Utc::now();
        let open = self.checks[check].open.clone();
        let severity = match &decision {
            Decision::Open { severity, .. } | Decision::Escalate { severity, .. } => *severity,
            Decision::Resolve { .. } => open.as_ref().map_or(Severity::Low, |o| o.severity),
        };
        let hold = self.hold(check, severity, now);
        let notified = open.as_ref().is_some_and(|o| o.notified);
        let started_at = open.as_ref().map_or(now, |o| o.started_at);
        let heard = match (&decision, &open) {
            (Decision::Resolve { .. }, Some(open)) if notified => self.heard_of(open.id).await,
            _ => Vec::new(),
        };
        let facts = |kind, incident, severity, color, message, started_at| EventFacts {
            kind,
            incident,
            severity,
            color,
            message,
            started_at,
            at: now,
            batch_at: None,
            heard: Vec::new(),
        };
        let (change, event) = match decision {
            Decision::Open {
                severity,
                color,
                message,
            } => (
                IncidentChange::Open {
                    check: self.checks[check].config.name.to_string(),
                    severity,
                    color,
                    message: message.clone(),
                    at: now,
                    notify: hold.is_none(),
                },
                hold.is_none()
                    .then(|| facts(EventKind::Opened, 0, severity, color, message, now)),
            ),
            Decision::Escalate {
                id,
                severity,
                color,
                message,
            } => (
                IncidentChange::Escalate {
                    id,
                    severity,
                    color,
                    message: message.clone(),
                    at: now,
                },
                (notified && hold.is_none()).then(|| {
                    facts(
                        EventKind::Escalated,
                        id,
                        severity,
                        color,
                        message,
                        started_at,
                    )
                }),
            ),
            Decision::Resolve { id, message } => (
                IncidentChange::Resolve {
                    id,
                    message: message.clone(),
                    at: now,
                },
                notified.then(|| EventFacts {
                    heard,
                    ..facts(
                        EventKind::Resolved,
                        id,
                        severity,
                        Color::Green,
                        message,
                        started_at,
                    )
                }),
            ),
        };
        let mut next = incident::after(open.as_ref(), &change, hold);
        match self.commit(check, change, event).await {
            Commit::Stored(incident) => {
                if let Some(next) = &mut next {
                    next.id = incident.id;
                }
            }
            Commit::Deferred => {}
            Commit::Refused(_) => return,
        }
        self.checks[check].open = next;
        self.publish_open_counts();
    }

    /// The channels incident `id`'s notifications went to so far; on a store
    /// error, none (the routes still apply).
    async fn heard_of(&mut self, id: i64) -> Vec<String> {
        if id == offline::OFFLINE {
            return Vec::new();
        }
        let store = self.store.clone();
        match self.guarded(store.incident_channels(id)).await {
            Ok(channels) => channels,
            Err(e) => {
                tracing::warn!(incident = id, error = %e, "reading who heard of an incident; routing by severity alone");
                Vec::new()
            }
        }
    }

    /// Whether any route sends check `check`'s notifications of `severity` anywhere.
    fn routed(&self, check: usize, severity: Severity) -> bool {
        let labels = &self.checks[check].config.labels;
        self.routes.iter().any(|r| r.matches(severity, labels))
    }

    /// One row per channel that hears of an event of check `check`: the
    /// routes' and those that heard of the incident before, each once, each
    /// going out at once.
    fn recipients(&self, check: usize, facts: &EventFacts) -> Vec<crate::core::Outgoing> {
        let config = &self.checks[check].config;
        let event = facts.event(&config.name, &config.labels);
        let mut rows = policy::route_with(&self.routes, &event, &facts.heard);
        // keeper:channel:NAME is not sent through NAME, the channel it says is failing.
        if let crate::probe::Spec::Keeper(own) = &config.probe
            && let Some(avoid) = own.avoids_channel()
        {
            rows.retain(|row| row.channel != avoid);
        }
        rows
    }

    /// The outbox rows an event of check `check` makes, by the routes; rows
    /// for a channel with a `group_wait` join its open window.
    fn outgoing(&mut self, check: usize, facts: &EventFacts) -> Vec<crate::core::Outgoing> {
        let mut rows = self.recipients(check, facts);
        let config = &self.checks[check].config;
        let event = facts.event(&config.name, &config.labels);
        for row in &mut rows {
            let wait = policy::group_wait(&self.routes, &event, &row.channel);
            row.batch_at = match facts.batch_at {
                Some(at) => Some(at),
                None if wait.is_zero() => None,
                None => Some(self.windows.batch_at(&row.channel, wait, event.at)),
            };
        }
        rows
    }

    /// Commits one incident change with the notifications of `event` (none
    /// when `None`), in one transaction, and wakes the outbox. While storage
    /// is away (or when this commit finds it away), the notifications go out
    /// directly and the change is kept for writing down later. A change the
    /// database refuses for its data reloads the check's incident and leaves
    /// every other check alone.
    async fn commit(
        &mut self,
        check: usize,
        change: IncidentChange,
        event: Option<EventFacts>,
    ) -> Commit {
        if self.store_away() {
            return self.defer(check, change, event);
        }
        let outgoing = event
            .as_ref()
            .map_or_else(Vec::new, |e| self.outgoing(check, e));
        let queued = outgoing.len();
        let (kind, _) = crate::incident::event_of(&change);
        let store = self.store.clone();
        match self.guarded(store.record(change.clone(), outgoing)).await {
            Ok(incident) => {
                tracing::info!(
                    check = %self.checks[check].config.name,
                    incident = incident.id,
                    event = kind,
                    severity = %incident.severity,
                    notifications = queued,
                    "incident {kind}"
                );
                if queued > 0 {
                    self.outbox.notify_one();
                }
                Commit::Stored(incident)
            }
            Err(e) if e.is_unavailable() => self.defer(check, change, event),
            Err(e) => {
                self.refused(check, &e, &change).await;
                Commit::Refused(e)
            }
        }
    }

    /// Storage is away: sends `event` directly and keeps `change` to write later.
    fn defer(&mut self, check: usize, change: IncidentChange, event: Option<EventFacts>) -> Commit {
        if let Some(event) = &event {
            let rows = self.recipients(check, event);
            tracing::warn!(
                check = %self.checks[check].config.name,
                event = crate::incident::event_of(&change).0,
                notifications = rows.len(),
                "storage is away: incident change sent directly, recorded once it is back"
            );
            self.direct.send(rows);
        }
        self.keep_unwritten(check, change);
        Commit::Deferred
    }

    /// The database refused `change` of check `check` for its data (not for
    /// being away): whatever the engine believed about the check's incident
    /// is replaced by what the store holds. Only this check is concerned.
    async fn refused(&mut self, check: usize, e: &StoreError, change: &IncidentChange) {
        let name = self.checks[check].config.name.clone();
        if !matches!(e, StoreError::AlreadyOpen(_)) {
            self.metrics.store_errors.inc();
            tracing::warn!(check = %name, error = %e, ?change, "the store refused an incident change; reloading the check's incident");
        }
        let store = self.store.clone();
        let Ok(open) = self.guarded(store.open_incidents()).await else {
            return;
        };
        let now = Utc::now();
        let rt = &mut self.checks[check];
        rt.open = open
            .iter()
            .find(|i| i.check == *name)
            .map(|i| OpenIncident::new(i, now));
        self.publish_open_counts();
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

/// The facts a notification is made from, owned.
struct EventFacts {
    kind: EventKind,
    /// 0 for a new incident: the store fills in its id.
    incident: i64,
    severity: Severity,
    color: Color,
    message: String,
    started_at: DateTime<Utc>,
    at: DateTime<Utc>,
    /// Goes out in this batch rather than by the routes' grouping windows.
    batch_at: Option<DateTime<Utc>>,
    /// Channels that heard of the incident before: they hear this too.
    heard: Vec<String>,
}

impl EventFacts {
    /// The policy's view of these facts about check `check`.
    fn event<'a>(
        &'a self,
        check: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> policy::Event<'a> {
        policy::Event {
            check,
            labels,
            kind: self.kind,
            incident: self.incident,
            severity: self.severity,
            color: self.color,
            message: &self.message,
            started_at: self.started_at,
            at: self.at,
        }
    }

    /// An event about an open incident as it stands.
    fn of(open: &OpenIncident, kind: EventKind, at: DateTime<Utc>) -> EventFacts {
        EventFacts {
            kind,
            incident: open.id,
            severity: open.severity,
            color: open.color,
            message: open.message.clone(),
            started_at: open.started_at,
            at,
            batch_at: None,
            heard: Vec::new(),
        }
    }
}
