//! The engine while storage is away. Nothing a person should hear waits for
//! the database: when it stops answering (a connection lost, no answer within
//! [`STORE_TIMEOUT`], `keeper:storage` red), every incident change is made in
//! memory, its notifications go straight to the outbox worker
//! ([`crate::notify::outbox::Direct`]), and the change waits in a bounded
//! queue. On the clock's tick, once the database answers again, the queue is
//! written down in order, as it happened; an incident opened meanwhile (id
//! [`OFFLINE`] until then) gets its real id.
//!
//! Every store call of the engine goes through [`Engine::guarded`]: bounded in
//! time, failing at once while the store is away, and switching to this mode
//! when the database is the problem.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::Engine;
use crate::core::health::STORAGE_UNREACHABLE;
use crate::incident::IncidentChange;
use crate::store::StoreError;

/// The id of an incident held in memory only: opened while storage was away.
pub const OFFLINE: i64 = 0;
/// The longest the engine waits for the database to take one call.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the question "are you back?" may take: the engine waits for it.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// The first wait before trying the database again; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Incident changes kept for writing down; past it, new ones are only sent.
const QUEUE_MAX: usize = 10_000;

/// Storage is away: since when, and when to try it again.
#[derive(Debug)]
pub(super) struct Away {
    retry_at: Instant,
    backoff: Duration,
}

/// Incident changes made while storage was away, to write down in order.
#[derive(Debug, Default)]
pub(super) struct Unwritten {
    /// Check index and the change, oldest first.
    changes: VecDeque<(usize, IncidentChange)>,
    /// The ids incidents opened while away got once written, by check.
    ids: HashMap<usize, i64>,
}

impl Unwritten {
    /// The changes at their checks' new places (a config reload); those of
    /// a check no longer there are dropped, and said so.
    pub(super) fn remap(&mut self, new_place: impl Fn(usize) -> Option<usize>) {
        let changes = std::mem::take(&mut self.changes);
        for (check, change) in changes {
            match new_place(check) {
                Some(i) => self.changes.push_back((i, change)),
                None => tracing::error!(
                    ?change,
                    "an incident change of a check the reload removed, made while storage was away, will not be recorded"
                ),
            }
        }
        self.ids = std::mem::take(&mut self.ids)
            .into_iter()
            .filter_map(|(check, id)| Some((new_place(check)?, id)))
            .collect();
    }
}

/// Runs one store call bounded by [`STORE_TIMEOUT`].
pub(super) async fn bounded<T>(
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(STORE_TIMEOUT, call)
        .await
        .unwrap_or(Err(StoreError::Timeout(STORE_TIMEOUT)))
}

/// `change` with an incident opened while away named by the id it got.
fn with_id(change: IncidentChange, id: i64) -> IncidentChange {
    match change {
        IncidentChange::Escalate {
            severity,
            color,
            message,
            at,
            ..
        } => IncidentChange::Escalate {
            id,
            severity,
            color,
            message,
            at,
        },
        IncidentChange::Resolve { message, at, .. } => IncidentChange::Resolve { id, message, at },
        IncidentChange::Acknowledge { by, at, .. } => IncidentChange::Acknowledge { id, by, at },
        IncidentChange::Remind { at, .. } => IncidentChange::Remind { id, at },
        IncidentChange::Notify { reason, at, .. } => IncidentChange::Notify { id, reason, at },
        open @ IncidentChange::Open { .. } => open,
    }
}

/// The incident a change is about; `None` for an opening.
fn incident_of(change: &IncidentChange) -> Option<i64> {
    match change {
        IncidentChange::Open { .. } => None,
        IncidentChange::Escalate { id, .. }
        | IncidentChange::Resolve { id, .. }
        | IncidentChange::Acknowledge { id, .. }
        | IncidentChange::Remind { id, .. }
        | IncidentChange::Notify { id, .. } => Some(*id),
    }
}

impl Engine {
    /// Whether check `i` is keeper's check of its own storage.
    pub(super) fn watches_storage(&self, i: usize) -> bool {
        self.checks[i].config.probe.watches_storage()
    }

    /// Whether the engine treats storage as away.
    pub(super) fn store_away(&self) -> bool {
        self.away.is_some()
    }

    /// One store call of the engine: fails at once while storage is away,
    /// bounded in time otherwise; a failure of the database itself (not of
    /// the call's data) makes the engine treat storage as away.
    pub(super) async fn guarded<T>(
        &mut self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if self.store_away() {
            return Err(StoreError::Away);
        }
        let result = bounded(call).await;
        if let Err(e) = &result
            && e.is_unavailable()
        {
            self.went_away(e);
        }
        result
    }

    /// Storage stopped answering (or answered an attempt to come back with
    /// another failure): incident changes go out directly until it returns.
    pub(super) fn went_away(&mut self, e: &dyn std::fmt::Display) {
        self.metrics.store_errors.inc();
        let backoff = match &self.away {
            None => {
                tracing::error!(error = %e, "storage is away: incident changes go out directly and are written down once it is back");
                RETRY_FIRST
            }
            Some(away) => (away.backoff * 2).min(RETRY_MAX),
        };
        self.away = Some(Away {
            retry_at: Instant::now() + backoff,
            backoff,
        });
    }

    /// What `keeper:storage` saw: the database away spares every other check
    /// the wait for a database that will not answer; the database answering
    /// again brings the next attempt to write down forward. A database that
    /// answers but refuses samples is the writer's trouble, not the engine's.
    pub(super) fn storage_seen(&mut self, sample: &crate::core::Sample) {
        let unreachable = sample.message.starts_with(STORAGE_UNREACHABLE);
        match (&mut self.away, sample.is_up()) {
            (None, false) if unreachable => self.went_away(&sample.message),
            (Some(away), _) if !unreachable => away.retry_at = Instant::now(),
            _ => {}
        }
    }

    /// Keeps `change` of check `check` for writing down once storage is back.
    pub(super) fn keep_unwritten(&mut self, check: usize, change: IncidentChange) {
        if self.unwritten.changes.len() >= QUEUE_MAX {
            tracing::error!(check = %self.checks[check].config.name, ?change, "too many incident changes waiting for storage; this one is sent but will not be recorded");
            return;
        }
        self.unwritten.changes.push_back((check, change));
        self.metrics
            .unwritten
            .set(self.unwritten.changes.len() as i64);
    }

    /// One step of coming back, on the clock's tick: when the retry is due,
    /// asks the database, then writes the waiting changes down in order.
    /// Stops at the first failure of the database (tried again later); a
    /// change the database refuses for its data is logged and dropped.
    pub(super) async fn catch_up(&mut self) {
        let Some(away) = &self.away else {
            return;
        };
        if Instant::now() < away.retry_at {
            return;
        }
        let ping = tokio::time::timeout(PING_TIMEOUT, self.store.ping()).await;
        if let Err(e) = ping.unwrap_or(Err(StoreError::Timeout(PING_TIMEOUT))) {
            self.went_away(&e);
            return;
        }
        let waiting = self.unwritten.changes.len();
        while let Some((check, change)) = self.unwritten.changes.front().cloned() {
            let change = match incident_of(&change) {
                Some(OFFLINE) => match self.unwritten.ids.get(&check) {
                    Some(&id) => with_id(change, id),
                    None => {
                        // Its opening was refused: nothing to attach it to.
                        self.unwritten.changes.pop_front();
                        continue;
                    }
                },
                _ => change,
            };
            let opening = matches!(change, IncidentChange::Open { .. });
            match bounded(self.store.record(change.clone(), Vec::new())).await {
                Ok(incident) => {
                    if opening {
                        self.unwritten.ids.insert(check, incident.id);
                    }
                }
                Err(e) if e.is_unavailable() => {
                    self.went_away(&e);
                    return;
                }
                Err(e) => {
                    tracing::warn!(check = %self.checks[check].config.name, error = %e, ?change, "an incident change made while storage was away was refused; dropped");
                    if opening {
                        self.unwritten.ids.remove(&check);
                    }
                }
            }
            self.unwritten.changes.pop_front();
            self.metrics
                .unwritten
                .set(self.unwritten.changes.len() as i64);
        }
        // Incidents still open get the ids their openings were written with.
        for (check, id) in std::mem::take(&mut self.unwritten.ids) {
            if let Some(open) = &mut self.checks[check].open
                && open.id == OFFLINE
            {
                open.id = id;
            }
        }
        // Silences and acknowledgements made elsewhere meanwhile.
        if let Ok(silences) = bounded(self.store.silences(chrono::Utc::now())).await {
            self.policy.set_silences(silences);
        }
        self.away = None;
        tracing::info!(
            written = waiting,
            "storage is back: incident changes made while it was away are written down"
        );
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    #[test]
    fn changes_of_an_incident_opened_while_away_get_its_id() {
        let at = Utc::now();
        let resolve = IncidentChange::Resolve {
            id: OFFLINE,
            message: "ok".into(),
            at,
        };
        assert_eq!(incident_of(&resolve), Some(OFFLINE));
        assert_eq!(
            with_id(resolve, 42),
            IncidentChange::Resolve {
                id: 42,
                message: "ok".into(),
                at
            }
        );
        let remind = with_id(IncidentChange::Remind { id: OFFLINE, at }, 7);
        assert_eq!(incident_of(&remind), Some(7));
    }
}
