//! What other keeper instances on the same PostgreSQL database changed,
//! made to take effect here (issue 12, point 3): each [`Event`] heard
//! through [`Bus::listen`] goes to the part it concerns — silences and
//! acknowledgements to the engine, deployments to the engine as if recorded
//! here, heartbeat signals to the heartbeat registry, ingested log lines to
//! their source's log check — and every [`RESYNC_EVERY`] everything is read
//! again, for the notifications missed. Nothing runs on SQLite (one instance).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::engine::{EngineHandle, Reread};
use crate::probe::heartbeat::Registry as Heartbeats;
use crate::probe::log::ingest::Registry as Ingest;
use crate::store::Store;
use crate::store::events::{Bus, Event, INGESTED_KEPT, RESYNC_EVERY};

/// How far back the periodic re-read looks for lines other instances
/// received: well past [`RESYNC_EVERY`], for clocks that disagree a little.
const INGESTED_LOOK_BACK: chrono::Duration = chrono::Duration::minutes(2);

/// Notifications waiting to be applied.
const QUEUE: usize = 256;

/// The parts other instances' changes are applied to.
pub(super) struct Shared {
    pub bus: Bus,
    pub store: Store,
    pub engine: EngineHandle,
    pub heartbeats: Heartbeats,
    pub ingest: Ingest,
}

/// Which lines received elsewhere were fed here, by row id, and since when to look.
struct Seen {
    started: DateTime<Utc>,
    ids: BTreeMap<i64, DateTime<Utc>>,
}

impl Shared {
    /// Listens and applies until `stop`. Returns at once on SQLite.
    pub(super) async fn run(self, stop: CancellationToken) {
        if !self.bus.is_shared() {
            return;
        }
        let (events, mut heard) = mpsc::channel(QUEUE);
        let listen = self.bus.clone().listen(events, stop.clone());
        let apply = async {
            let mut seen = Seen {
                started: Utc::now(),
                ids: BTreeMap::new(),
            };
            let mut every =
                tokio::time::interval_at(tokio::time::Instant::now() + RESYNC_EVERY, RESYNC_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                let event = tokio::select! {
                    _ = stop.cancelled() => break,
                    Some(event) = heard.recv() => event,
                    _ = every.tick() => Event::Resync,
                };
                // A database that does not answer holds up no shutdown.
                tokio::select! {
                    _ = stop.cancelled() => break,
                    () = self.apply(event, &mut seen) => {}
                }
            }
        };
        tokio::join!(listen, apply);
    }

    async fn apply(&self, event: Event, seen: &mut Seen) {
        tracing::debug!(?event, "a change made on another instance");
        match event {
            Event::Silences => self.engine.reread(Reread::Silences).await,
            Event::Acknowledged(id) => self.engine.reread(Reread::Incident(id)).await,
            Event::Deployed(id) => self.deployment(id).await,
            Event::Heartbeat(check) => self.heartbeat(&check).await,
            Event::Ingested(id) => self.ingested(id, seen).await,
            Event::Resync => self.resync(seen).await,
        }
    }

    async fn deployment(&self, id: i64) {
        match self.store.deployment(id).await {
            Ok(Some(deployment)) => self.engine.deployed(deployment).await,
            Ok(None) => tracing::warn!(
                deployment = id,
                "a deployment told of is not in the database"
            ),
            Err(e) => {
                tracing::warn!(deployment = id, error = %e, "reading a deployment recorded elsewhere")
            }
        }
    }

    async fn heartbeat(&self, check: &str) {
        match self.store.heartbeat_of(check).await {
            Ok(Some(row)) => self.heartbeats.merge(&[row], Utc::now()),
            Ok(None) => {}
            Err(e) => tracing::warn!(check, error = %e, "reading a heartbeat pinged elsewhere"),
        }
    }

    /// Feeds row `id`'s lines to their source here, once.
    async fn ingested(&self, id: i64, seen: &mut Seen) {
        if seen.ids.contains_key(&id) {
            return;
        }
        match self.bus.ingested(id).await {
            Ok(Some(row)) => {
                if !self.ingest.deliver(&row.source, row.lines) {
                    tracing::debug!(source = %row.source, "lines for an ingest source not configured here");
                }
            }
            // This instance's own, or already deleted.
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(row = id, error = %e, "reading lines ingested elsewhere; trying again at the next re-read");
                return;
            }
        }
        seen.ids.insert(id, Utc::now());
    }

    /// Everything read again: what a missed notification would have said.
    async fn resync(&self, seen: &mut Seen) {
        self.engine.reread(Reread::All).await;
        match self.store.heartbeats().await {
            Ok(rows) => self.heartbeats.merge(&rows, Utc::now()),
            Err(e) => tracing::warn!(error = %e, "re-reading heartbeat signals"),
        }
        let now = Utc::now();
        let since = seen.started.max(now - INGESTED_LOOK_BACK);
        match self.bus.ingested_since(since).await {
            Ok(ids) => {
                for id in ids {
                    self.ingested(id, seen).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing lines ingested elsewhere"),
        }
        seen.ids.retain(|_, at| *at > now - INGESTED_KEPT);
        if let Err(e) = self.bus.forget_ingested(now - INGESTED_KEPT).await {
            tracing::warn!(error = %e, "deleting old ingested lines");
        }
    }
}
