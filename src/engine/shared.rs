//! What another keeper instance on the same database changed, taken in:
//! silences re-read, an acknowledgement made there stops this engine's
//! reminders, deployments recorded there watched here. Asked for through
//! [`Reread`] commands (by the app, on a notification or the periodic
//! re-read); the store is the truth, this engine's memory catches up.

use chrono::{DateTime, Utc};

use super::commit::Commit;
use super::{AckError, Engine};
use crate::incident::{Incident, OpenIncident};
use crate::notify::policy::changes;
use crate::store::StoreError;

/// What to read again from the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reread {
    /// The silences (one was created or ended elsewhere).
    Silences,
    /// Incident `id` (acknowledged elsewhere).
    Incident(i64),
    /// Silences, the open incidents' acknowledgements and recent deployments:
    /// a notification may have been missed.
    All,
}

impl Engine {
    pub(super) async fn reread(&mut self, what: Reread) {
        match what {
            Reread::Silences => self.reread_silences().await,
            Reread::Incident(id) => self.reread_incident(id).await,
            Reread::All => {
                self.reread_silences().await;
                self.reread_open().await;
                self.read_deployments(Utc::now()).await;
            }
        }
    }

    async fn reread_silences(&mut self) {
        let store = self.store.clone();
        match self.guarded(store.silences(Utc::now())).await {
            Ok(silences) => self.policy.set_silences(silences),
            // Storage away is said once, where it is noticed.
            Err(StoreError::Away) => {}
            Err(e) => tracing::warn!(error = %e, "re-reading silences"),
        }
    }

    /// Incident `id` as the store has it, when this engine holds it open.
    async fn reread_incident(&mut self, id: i64) {
        if !self
            .checks
            .iter()
            .any(|rt| rt.open.as_ref().is_some_and(|o| o.id == id))
        {
            return;
        }
        let store = self.store.clone();
        match self.guarded(store.incident(id)).await {
            Ok(incident) => self.take_ack(&incident),
            Err(StoreError::Away) => {}
            Err(e) => {
                tracing::warn!(incident = id, error = %e, "re-reading an incident changed elsewhere")
            }
        }
    }

    /// Every open incident as the store has it: acknowledgements made elsewhere count here.
    async fn reread_open(&mut self) {
        let store = self.store.clone();
        match self.guarded(store.open_incidents()).await {
            Ok(open) => open.iter().for_each(|incident| self.take_ack(incident)),
            Err(StoreError::Away) => {}
            Err(e) => tracing::warn!(error = %e, "re-reading open incidents"),
        }
    }

    /// Acknowledges incident `id`, which this engine does not hold open: it
    /// is open in the store (another instance opened it, or probes its
    /// check), and acknowledged here as it would be there, "acknowledged"
    /// notified; the engine then holds what it held before.
    pub(super) async fn acknowledge_unheld(
        &mut self,
        id: i64,
        by: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Incident, AckError> {
        let store = self.store.clone();
        let incident = match self.guarded(store.incident(id)).await {
            Ok(incident) => incident,
            Err(StoreError::NotFound(_)) => return Err(AckError::NotFound(id)),
            Err(e) => return Err(e.into()),
        };
        if incident.resolved_at.is_some() {
            return Err(AckError::Resolved(id));
        }
        let check = self
            .checks
            .iter()
            .position(|rt| *rt.config.name == incident.check);
        let Some(i) = check.filter(|_| incident.acknowledged_at.is_none()) else {
            return Ok(incident);
        };
        let open = OpenIncident::new(&incident, now);
        let planned = changes::acknowledged(&open, by, now);
        let held = self.checks[i].open.replace(open);
        let commit = self.settle(i, planned).await;
        self.checks[i].open = held;
        self.publish_open_counts();
        match commit {
            Commit::Stored(incident) => Ok(incident),
            Commit::Deferred => Ok(Incident {
                acknowledged_at: Some(now),
                ..incident
            }),
            Commit::Refused(e) => Err(e.into()),
        }
    }

    /// An acknowledgement of `incident` made elsewhere, taken in by the
    /// check holding it open here: its reminders stop.
    fn take_ack(&mut self, incident: &Incident) {
        let Some(acknowledged_at) = incident.acknowledged_at else {
            return;
        };
        for rt in &mut self.checks {
            if let Some(open) = &mut rt.open
                && open.id == incident.id
                && open.acknowledged_at.is_none()
            {
                open.acknowledged_at = Some(acknowledged_at);
                tracing::info!(check = %rt.config.name, incident = incident.id, "incident acknowledged on another instance: no more reminders");
            }
        }
    }
}
