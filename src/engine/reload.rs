//! A config reload as the engine sees it: the same engine, stopped (its
//! samples all taken in), takes the new checks and rules. A check whose kind
//! and target are unchanged keeps its state (hysteresis counts included), its
//! open incident and its place on the board; a check removed, or whose kind
//! or target changed, has its open incident resolved as at start; a new check
//! starts fresh. Silences, grouping windows and deployments are kept.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{CheckRuntime, Engine, EngineHandle, Inputs, Parts, Sink};
use crate::config::CheckConfig;
use crate::incident::{Incident, OpenIncident};
use crate::state::CheckStatus;

/// What a reload did to the checks, by name.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Reshaped {
    /// New in the config: they start fresh.
    pub added: Vec<String>,
    /// Gone from the config, or their kind or target changed: their open
    /// incidents were resolved.
    pub removed: Vec<String>,
    /// Kind and target unchanged: state, history and open incident kept.
    pub kept: Vec<String>,
}

impl Engine {
    /// The engine after [`Engine::run`] ended, on `parts`' checks and rules,
    /// with a new sample queue, [`Sink`] and handle. `parts.store` and
    /// `parts.buffer` are the running ones; the metrics are the new config's.
    pub async fn reshape(mut self, parts: Parts) -> (Engine, Sink, EngineHandle, Inputs, Reshaped) {
        let now = Utc::now();
        let deploys = parts.deploys.clone();
        let (fresh, sink, handle, inputs) = Engine::new(Parts {
            store: self.store.clone(),
            ..parts
        });
        let old_names: Vec<String> = (self.checks.iter())
            .map(|rt| rt.config.name.to_string())
            .collect();
        let rows: HashMap<String, CheckStatus> = (self.board.all().into_iter())
            .map(|s| (s.name.clone(), s))
            .collect();
        let mut old: HashMap<String, CheckRuntime> = std::mem::take(&mut self.checks)
            .into_iter()
            .map(|rt| (rt.config.name.to_string(), rt))
            .collect();
        let mut checks = fresh.checks;
        let mut statuses = fresh.board.all();
        let (mut reshaped, moved) = carry(&mut old, &mut checks, &rows, &mut statuses);
        let new_place = |i: usize| moved.get(old_names.get(i)?).copied();
        self.regressions = (std::mem::take(&mut self.regressions).into_iter())
            .filter_map(|(i, r)| Some((new_place(i)?, r)))
            .collect();
        self.unwritten.remap(new_place);
        let mut dropped: Vec<CheckRuntime> = old.into_values().collect();
        dropped.sort_by(|a, b| a.config.name.cmp(&b.config.name));
        for rt in dropped {
            if let Some(open) = &rt.open {
                self.resolve_dropped(&rt, open, now).await;
            }
            reshaped.removed.push(rt.config.name.to_string());
        }
        self.checks = checks;
        self.board.replace(statuses);
        self.policy.adopt(fresh.policy);
        self.deploys.set_rules(deploys);
        self.metrics = fresh.metrics;
        self.outbox = fresh.outbox;
        self.direct = fresh.direct;
        self.ownership = fresh.ownership;
        self.place = fresh.place;
        for (i, rt) in self.checks.iter().enumerate() {
            self.metrics.set_status(i, rt.state.color);
        }
        self.publish_open_counts();
        (self, sink, handle, inputs, reshaped)
    }

    /// Resolves the open incident of a check the new config drops, as
    /// [`Engine::restore`] resolves one whose check is gone at start.
    async fn resolve_dropped(
        &mut self,
        rt: &CheckRuntime,
        open: &OpenIncident,
        now: DateTime<Utc>,
    ) {
        let incident = Incident {
            id: open.id,
            check: rt.config.name.to_string(),
            severity: open.severity,
            color: open.color,
            message: open.message.clone(),
            started_at: open.started_at,
            acknowledged_at: open.acknowledged_at,
            resolved_at: None,
            notified_at: open.notified.then_some(open.last_notified_at),
        };
        if let Err(e) = self.close_orphan(&incident, now).await {
            // Still open in the store: the next start or reload resolves it.
            tracing::error!(check = %incident.check, incident = incident.id, error = %e, "resolving the incident of a check no longer configured");
        }
    }
}

/// Whether a check's probe is the same in both configs: kind and target.
fn same_probe(old: &CheckConfig, new: &CheckConfig) -> bool {
    old.probe.kind() == new.probe.kind() && old.probe.target() == new.probe.target()
}

/// Moves the state and open incident of each check of `old` whose kind and
/// target are unchanged into `checks` (and its status row into `statuses`),
/// leaving in `old` the checks the new config drops. Returns what became of
/// each check and where each kept one went.
fn carry(
    old: &mut HashMap<String, CheckRuntime>,
    checks: &mut [CheckRuntime],
    rows: &HashMap<String, CheckStatus>,
    statuses: &mut [CheckStatus],
) -> (Reshaped, HashMap<String, usize>) {
    let mut reshaped = Reshaped::default();
    let mut moved = HashMap::new();
    for (i, rt) in checks.iter_mut().enumerate() {
        let name = rt.config.name.to_string();
        let Some(was) = old.remove(&name) else {
            reshaped.added.push(name);
            continue;
        };
        if !same_probe(&was.config, &rt.config) {
            old.insert(name.clone(), was);
            reshaped.added.push(name);
            continue;
        }
        rt.state = was.state;
        rt.open = was.open;
        if rt.regional.is_some() && was.regional.is_some() {
            rt.regional = was.regional;
        }
        if let Some(row) = rows.get(&name) {
            statuses[i] = CheckStatus {
                description: rt.config.description.clone(),
                labels: rt.config.labels.clone(),
                ..row.clone()
            };
        }
        moved.insert(name.clone(), i);
        reshaped.kept.push(name);
    }
    (reshaped, moved)
}
