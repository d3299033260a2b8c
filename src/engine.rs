//! The engine: the one task that owns every check's state and incidents.
//! Samples come in through the [`Sink`] (which also feeds the metrics and the
//! sample writer); the engine classifies them, applies hysteresis, decides
//! incident changes, and commits each change with its outbox rows in one
//! transaction. Nothing else mutates check state.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::classify::{Verdict, classify};
use crate::config::{CheckConfig, Route};
use crate::incident::{self, Decision, OpenIncident};
use crate::metrics::Metrics;
use crate::notify::{EventKind, policy};
use crate::probe::Sample;
use crate::state::{CheckState, CheckStatus};
use crate::store::writer::SampleBuffer;
use crate::store::{IncidentChange, SampleRow, Store, StoreError};

/// A classified sample on its way to the engine.
#[derive(Debug)]
pub struct Observation {
    pub check: usize,
    pub sample: Sample,
    pub verdict: Verdict,
}

/// The scheduler's output: fans each sample out to the metrics, the sample
/// writer and the engine. Cheap to clone.
#[derive(Clone)]
pub struct Sink {
    checks: Arc<[Arc<CheckConfig>]>,
    metrics: Metrics,
    buffer: SampleBuffer,
    engine: mpsc::Sender<Observation>,
}

impl Sink {
    pub async fn deliver(&self, check: usize, sample: Sample) {
        let config = &self.checks[check];
        let verdict = classify(&sample, &config.thresholds, config.down_severity);
        self.metrics.observe_sample(check, &sample);
        self.buffer.push(SampleRow {
            check: config.name.clone(),
            at: sample.at,
            duration_ms: sample.duration.as_secs_f64() * 1000.0,
            up: sample.is_up(),
            color: verdict.color,
            status_code: sample.http.as_ref().map(|h| h.status),
            latency_ms: sample.latency_ms(),
            message: sample.message.clone(),
        });
        // The engine only does memory work and rare transactions: waiting here is brief.
        let observation = Observation {
            check,
            sample,
            verdict,
        };
        if self.engine.send(observation).await.is_err() {
            // Only while shutting down: the sample itself is already buffered for the store.
            tracing::debug!(check = %config.name, "engine stopped; sample not classified");
        }
    }
}

/// The current status of every check, for the API and status page.
#[derive(Clone, Default)]
pub struct Board {
    inner: Arc<RwLock<BoardInner>>,
}

#[derive(Default)]
struct BoardInner {
    checks: Vec<CheckStatus>,
    by_name: HashMap<String, usize>,
}

impl Board {
    fn new(checks: &[Arc<CheckConfig>]) -> Board {
        let statuses: Vec<CheckStatus> = checks
            .iter()
            .map(|c| CheckStatus {
                name: c.name.to_string(),
                kind: c.probe.kind(),
                target: c.probe.target(),
                description: c.description.clone(),
                labels: c.labels.clone(),
                color: crate::classify::Color::Green,
                severity: None,
                message: "not run yet".into(),
                since: None,
                last_run_at: None,
                latency_ms: None,
                incident: None,
            })
            .collect();
        let by_name = statuses
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        Board {
            inner: Arc::new(RwLock::new(BoardInner {
                checks: statuses,
                by_name,
            })),
        }
    }

    pub fn all(&self) -> Vec<CheckStatus> {
        self.inner
            .read()
            .map(|b| b.checks.clone())
            .unwrap_or_default()
    }

    pub fn get(&self, name: &str) -> Option<CheckStatus> {
        let b = self.inner.read().ok()?;
        b.by_name.get(name).map(|&i| b.checks[i].clone())
    }

    fn update(&self, i: usize, f: impl FnOnce(&mut CheckStatus)) {
        if let Ok(mut b) = self.inner.write()
            && let Some(s) = b.checks.get_mut(i)
        {
            f(s);
        }
    }
}

struct CheckRuntime {
    config: Arc<CheckConfig>,
    state: CheckState,
    open: Option<OpenIncident>,
}

/// How long the engine leaves the database alone after it failed a change.
const STORE_BACKOFF: Duration = Duration::from_secs(2);
/// The longest the engine waits for the database to take one incident change.
const STORE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Engine {
    checks: Vec<CheckRuntime>,
    routes: Vec<Route>,
    store: Store,
    board: Board,
    metrics: Metrics,
    outbox: Arc<Notify>,
    store_backoff_until: Option<Instant>,
}

impl Engine {
    /// Builds the engine and its [`Sink`]; `queue` bounds the samples waiting for the engine.
    pub fn new(
        checks: Vec<Arc<CheckConfig>>,
        routes: Vec<Route>,
        store: Store,
        buffer: SampleBuffer,
        metrics: Metrics,
        outbox: Arc<Notify>,
        queue: usize,
    ) -> (Engine, Sink, mpsc::Receiver<Observation>) {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let board = Board::new(&checks);
        let sink = Sink {
            checks: checks.clone().into(),
            metrics: metrics.clone(),
            buffer,
            engine: tx,
        };
        let engine = Engine {
            checks: checks
                .into_iter()
                .map(|config| CheckRuntime {
                    config,
                    state: CheckState::default(),
                    open: None,
                })
                .collect(),
            routes,
            store,
            board,
            metrics,
            outbox,
            store_backoff_until: None,
        };
        (engine, sink, rx)
    }

    pub fn board(&self) -> Board {
        self.board.clone()
    }

    /// Restores open incidents and the last sample of each check, so a restart
    /// while a check fails sends no second "opened" and the recovery resolves
    /// the same incident.
    pub async fn restore(&mut self) -> Result<(), StoreError> {
        let open = self.store.open_incidents().await?;
        let latest = self.store.latest_samples().await?;
        for (i, rt) in self.checks.iter_mut().enumerate() {
            if let Some(inc) = open.iter().find(|inc| inc.check == *rt.config.name) {
                rt.state = CheckState::restored(
                    inc.color,
                    inc.severity,
                    inc.message.clone(),
                    inc.started_at,
                );
                rt.open = Some(OpenIncident::from(inc));
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

    /// Runs until every [`Sink`] is dropped and the queue is drained.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Observation>) {
        while let Some(obs) = rx.recv().await {
            self.handle(obs).await;
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
        if let Some(decision) = incident::decide(&rt.state, rt.open.as_ref()) {
            self.apply(obs.check, decision).await;
        }
        let rt = &self.checks[obs.check];
        let state = rt.state.clone();
        let incident = rt.open.as_ref().map(|o| o.id);
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

    /// Commits a decision with its notifications; on a database failure the
    /// decision is dropped and made again on a later sample.
    async fn apply(&mut self, check: usize, decision: Decision) {
        if let Some(until) = self.store_backoff_until {
            if Instant::now() < until {
                return;
            }
            self.store_backoff_until = None;
        }
        let rt = &self.checks[check];
        let config = &rt.config;
        let now = Utc::now();
        let (change, kind, severity, color, message, started_at) = match &decision {
            Decision::Open {
                severity,
                color,
                message,
            } => (
                IncidentChange::Open {
                    check: config.name.to_string(),
                    severity: *severity,
                    color: *color,
                    message: message.clone(),
                    at: now,
                },
                EventKind::Opened,
                *severity,
                *color,
                message,
                now,
            ),
            Decision::Escalate {
                id,
                severity,
                color,
                message,
            } => (
                IncidentChange::Escalate {
                    id: *id,
                    severity: *severity,
                    color: *color,
                    message: message.clone(),
                    at: now,
                },
                EventKind::Escalated,
                *severity,
                *color,
                message,
                rt.open.as_ref().map_or(now, |o| o.started_at),
            ),
            Decision::Resolve { id, message } => (
                IncidentChange::Resolve {
                    id: *id,
                    message: message.clone(),
                    at: now,
                },
                EventKind::Resolved,
                rt.open
                    .as_ref()
                    .map_or(crate::classify::Severity::Low, |o| o.severity),
                crate::classify::Color::Green,
                message,
                rt.open.as_ref().map_or(now, |o| o.started_at),
            ),
        };
        let event = policy::Event {
            check: &config.name,
            labels: &config.labels,
            kind,
            incident: rt.open.as_ref().map_or(0, |o| o.id),
            severity,
            color,
            message,
            started_at,
            at: now,
        };
        let outgoing = policy::route(&self.routes, &event);
        let queued = outgoing.len();
        let recorded = tokio::time::timeout(STORE_TIMEOUT, self.store.record(change, outgoing))
            .await
            .unwrap_or(Err(StoreError::Timeout(STORE_TIMEOUT)));
        match recorded {
            Ok(incident) => {
                tracing::info!(check = %config.name, incident = incident.id, event = %kind, severity = %severity, notifications = queued, "incident {kind}");
                let rt = &mut self.checks[check];
                rt.open = (kind != EventKind::Resolved).then(|| OpenIncident::from(&incident));
                if queued > 0 {
                    self.outbox.notify_one();
                }
                self.publish_open_counts();
            }
            Err(StoreError::AlreadyOpen(_)) => {
                // Another writer opened one first: adopt it.
                match self.store.open_incidents().await {
                    Ok(open) => {
                        let rt = &mut self.checks[check];
                        rt.open = open
                            .iter()
                            .find(|i| i.check == *rt.config.name)
                            .map(OpenIncident::from);
                    }
                    Err(e) => self.store_failed(&e),
                }
            }
            Err(e) => self.store_failed(&e),
        }
    }

    fn store_failed(&mut self, e: &StoreError) {
        tracing::error!(error = %e, "could not record an incident change; will retry");
        self.metrics.store_errors.inc();
        self.store_backoff_until = Some(Instant::now() + STORE_BACKOFF);
    }

    fn publish_open_counts(&self) {
        for severity in crate::classify::Severity::ALL {
            let n = self
                .checks
                .iter()
                .filter(|rt| rt.open.as_ref().is_some_and(|o| o.severity == severity))
                .count();
            self.metrics.set_incidents_open(severity, n as i64);
        }
    }
}
