//! What the API asks of the engine (acknowledge an incident, create or end a
//! silence, watch a deployment's app), through [`EngineHandle`]: the engine owns incidents and
//! silences, so changes to them go through its queue.

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::Engine;
use super::commit::Commit;
use crate::core::deployment::Deployment;
use crate::incident::{Incident, NewSilence, Silence};
use crate::notify::policy::changes;
use crate::state::Seen;
use crate::store::StoreError;

/// Why an acknowledgement was refused.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error("no incident {0}")]
    NotFound(i64),
    #[error("incident {0} is already resolved")]
    Resolved(i64),
    #[error("keeper is shutting down")]
    Stopped,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Requests to the engine from the API.
#[derive(Debug)]
pub enum Command {
    Acknowledge {
        id: i64,
        by: Option<String>,
        reply: oneshot::Sender<Result<Incident, AckError>>,
    },
    Silence {
        silence: NewSilence,
        reply: oneshot::Sender<Result<Silence, StoreError>>,
    },
    EndSilence {
        id: i64,
        reply: oneshot::Sender<Result<Silence, StoreError>>,
    },
    /// A deployment was recorded: its app's checks are watched closely.
    Deployed(Deployment),
    /// Checks this instance took on from another ([`Engine::adopt`]).
    Adopt {
        taken: Vec<(usize, Option<Seen>)>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Another instance changed shared state: read it again.
    Reread(super::Reread),
    /// Regions' states of checks with regions, from their probers' leases.
    Regions(Vec<(usize, String, Seen)>),
}

/// How the API talks to the engine. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EngineHandle {
    pub(super) commands: mpsc::Sender<Command>,
}

impl EngineHandle {
    /// Acknowledges incident `id`: repeats stop and "acknowledged" is sent.
    /// Acknowledging twice is not an error and notifies once.
    pub async fn acknowledge(&self, id: i64, by: Option<String>) -> Result<Incident, AckError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Acknowledge { id, by, reply })
            .await
            .map_err(|_| AckError::Stopped)?;
        answer.await.map_err(|_| AckError::Stopped)?
    }

    /// Creates a silence: matching checks' notifications are held back until it ends.
    pub async fn silence(&self, silence: NewSilence) -> Result<Silence, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.ask(Command::Silence { silence, reply }, answer).await
    }

    /// Ends a silence now; incidents it held back are notified then.
    pub async fn end_silence(&self, id: i64) -> Result<Silence, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.ask(Command::EndSilence { id, reply }, answer).await
    }

    /// A deployment was recorded (by the API or the `fly` check): the
    /// engine watches its app. Nothing to tell when keeper is stopping.
    pub async fn deployed(&self, deployment: Deployment) {
        let _ = self.commands.send(Command::Deployed(deployment)).await;
    }

    /// Takes on checks (by index) another instance owned, each with what it
    /// last saw of it: their open incidents are read again first.
    pub async fn adopt(&self, taken: Vec<(usize, Option<Seen>)>) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.ask(Command::Adopt { taken, reply }, answer).await
    }

    /// Another instance changed (or may have changed) what `what` names:
    /// the engine reads it again. Nothing to do when keeper is stopping.
    pub async fn reread(&self, what: super::Reread) {
        let _ = self.commands.send(Command::Reread(what)).await;
    }

    /// What the instances probing checks from their regions last saw
    /// (check index, region, state): the engine decides those it owns.
    pub async fn regions_seen(&self, seen: Vec<(usize, String, Seen)>) {
        let _ = self.commands.send(Command::Regions(seen)).await;
    }

    async fn ask<T>(
        &self,
        command: Command,
        answer: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let stopped = || StoreError::Corrupt("keeper is shutting down".into());
        self.commands.send(command).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Engine {
    pub(super) async fn command(&mut self, command: Command) {
        match command {
            // The asker may have gone away (client disconnected): nothing to tell then.
            Command::Acknowledge { id, by, reply } => {
                let _ = reply.send(self.acknowledge(id, by, Utc::now()).await);
            }
            Command::Silence { silence, reply } => {
                let store = self.store.clone();
                let created = self.guarded(store.create_silence(&silence)).await;
                if let Ok(s) = &created {
                    self.policy.add_silence(s.clone());
                }
                let _ = reply.send(created);
            }
            Command::EndSilence { id, reply } => {
                let store = self.store.clone();
                let ended = self.guarded(store.expire_silence(id, Utc::now())).await;
                if let Ok(ended) = &ended {
                    self.policy.end_silence(ended.id);
                    // Held openings go out at once, not at the next tick.
                    self.release_held(Utc::now()).await;
                }
                let _ = reply.send(ended);
            }
            Command::Adopt { taken, reply } => {
                let _ = reply.send(self.adopt(taken).await);
            }
            Command::Deployed(deployment) => {
                tracing::info!(app = %deployment.app, version = %deployment.version, "deployment: watching the app's checks");
                self.deployed(deployment, Utc::now());
            }
            Command::Reread(what) => self.reread(what).await,
            Command::Regions(seen) => self.regions_seen(seen, Utc::now()).await,
        }
    }

    /// Takes incident `id` on at `now`.
    pub(super) async fn acknowledge(
        &mut self,
        id: i64,
        by: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Incident, AckError> {
        // An incident held in memory while storage is away has no id to name.
        if id == super::offline::OFFLINE {
            return Err(AckError::NotFound(id));
        }
        let Some(i) = self
            .checks
            .iter()
            .position(|rt| rt.open.as_ref().is_some_and(|o| o.id == id))
        else {
            // Opened by another instance on the database, perhaps.
            return self.acknowledge_unheld(id, by, now).await;
        };
        let open = self.checks[i].open.clone().ok_or(AckError::NotFound(id))?;
        if open.acknowledged_at.is_some() {
            let store = self.store.clone();
            return Ok(self.guarded(store.incident(id)).await?);
        }
        let planned = changes::acknowledged(&open, by, now);
        let incident = match self.settle(i, planned).await {
            Commit::Stored(incident) => incident,
            // Taken in memory; the store hears of it once it is back.
            Commit::Deferred => Incident {
                id,
                check: self.checks[i].config.name.to_string(),
                severity: open.severity,
                color: open.color,
                message: open.message.clone(),
                started_at: open.started_at,
                acknowledged_at: Some(now),
                resolved_at: None,
                notified_at: open.notified.then_some(open.started_at),
            },
            Commit::Refused(e) => return Err(e.into()),
        };
        Ok(incident)
    }
}
