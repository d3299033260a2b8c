//! How the engine makes an incident change take effect: with its outbox rows
//! in one transaction ([`Engine::commit`]), directly while storage is away
//! ([`Engine::defer`]), or not at all when the database refuses it for its
//! data ([`Engine::refused`]). [`Engine::settle`] commits what the policy
//! planned and, when it took, remembers the incident as the plan says.

use chrono::Utc;

use super::{Engine, offline};
use crate::core::Outgoing;
use crate::incident::{Incident, IncidentChange, OpenIncident};
use crate::notify::policy::{Notice, Planned};
use crate::store::StoreError;

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

impl Engine {
    /// Commits a planned change of check `check`'s incident (its notice
    /// told to whoever heard of the incident before, when it says so) and,
    /// when it took, remembers the incident as planned; an opening gets the
    /// id the store gave it.
    pub(super) async fn settle(&mut self, check: usize, planned: Planned) -> Commit {
        let Planned {
            change,
            mut notice,
            mut next,
        } = planned;
        if let Some(notice) = &mut notice
            && notice.tells_who_heard()
        {
            notice.heard = self.heard_of(notice.incident).await;
        }
        let commit = self.commit(check, change, notice).await;
        match &commit {
            Commit::Stored(incident) => {
                if let Some(next) = &mut next {
                    next.id = incident.id;
                }
            }
            Commit::Deferred => {}
            Commit::Refused(_) => return commit,
        }
        self.checks[check].open = next;
        self.publish_open_counts();
        commit
    }

    /// The channels incident `id`'s notifications went to so far; on a store
    /// error, none (the routes still apply).
    pub(super) async fn heard_of(&mut self, id: i64) -> Vec<String> {
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

    /// Who hears `notice` about check `check`, each going out at once.
    fn recipients(&self, check: usize, notice: &Notice) -> Vec<Outgoing> {
        let config = &self.checks[check].config;
        let avoid = config.probe.avoids_channel();
        self.policy
            .recipients(&config.name, &config.labels, notice, avoid)
    }

    /// The outbox rows `notice` about check `check` makes, grouped as the
    /// routes' grouping windows say.
    fn outgoing(&mut self, check: usize, notice: &Notice) -> Vec<Outgoing> {
        let config = &self.checks[check].config;
        let avoid = config.probe.avoids_channel();
        self.policy
            .outgoing(&config.name, &config.labels, notice, avoid)
    }

    /// Commits one incident change with the notifications of `notice` (none
    /// when `None`), in one transaction, and wakes the outbox. While storage
    /// is away (or when this commit finds it away), the notifications go out
    /// directly and the change is kept for writing down later. A change the
    /// database refuses for its data reloads the check's incident and leaves
    /// every other check alone.
    pub(super) async fn commit(
        &mut self,
        check: usize,
        change: IncidentChange,
        notice: Option<Notice>,
    ) -> Commit {
        if self.store_away() {
            return self.defer(check, change, notice);
        }
        let outgoing = notice
            .as_ref()
            .map_or_else(Vec::new, |n| self.outgoing(check, n));
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
            Err(e) if e.is_unavailable() => self.defer(check, change, notice),
            Err(e) => {
                self.refused(check, &e, &change).await;
                Commit::Refused(e)
            }
        }
    }

    /// Storage is away: sends `notice` directly and keeps `change` to write later.
    fn defer(&mut self, check: usize, change: IncidentChange, notice: Option<Notice>) -> Commit {
        if let Some(notice) = &notice {
            let rows = self.recipients(check, notice);
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
        // Opened, acknowledged or notified by another instance meanwhile: no fault.
        let elsewhere = matches!(e, StoreError::AlreadyOpen(_))
            || matches!(
                (e, change),
                (
                    StoreError::NotFound(_),
                    IncidentChange::Remind { .. } | IncidentChange::Notify { .. }
                )
            );
        if !elsewhere {
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
}
