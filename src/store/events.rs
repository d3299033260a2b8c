//! Shared state between keeper instances on one PostgreSQL database (DESIGN
//! §11): what one instance takes in through its API — acknowledgements,
//! silences, deployments, heartbeat pings, ingested log lines — is told to
//! the others with `NOTIFY keeper_events` ([`Bus::publish`]), and heard by
//! each as typed [`Event`]s ([`Bus::listen`]). A payload only names what
//! changed (a kind and an id or a check name); the change itself is read
//! from its table. A notification can be missed (while the listener
//! reconnects, or the database is away), so a listener asks for a full
//! re-read ([`Event::Resync`]) after every (re)connect, and its owner
//! re-reads every [`RESYNC_EVERY`] as well.
//!
//! On SQLite (one instance) nothing is published and nothing is heard. What
//! each event does on an instance is the app's wiring (`app/shared.rs`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::sql::Doing;
use super::{Store, StoreError};

/// The PostgreSQL notification channel.
pub const CHANNEL: &str = "keeper_events";
/// How often an instance re-reads shared state whatever it heard: the
/// fallback for a missed notification.
pub const RESYNC_EVERY: Duration = Duration::from_secs(5);
/// How long ingested lines stay in the database for the other instances.
pub const INGESTED_KEPT: chrono::Duration = chrono::Duration::minutes(10);
/// The first wait before connecting the listener again; doubled up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Something another instance changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A silence was created or ended.
    Silences,
    /// Incident `id` was acknowledged.
    Acknowledged(i64),
    /// Deployment `id` was recorded.
    Deployed(i64),
    /// A heartbeat check's signals were saved (a ping).
    Heartbeat(String),
    /// Row `id` of `ingested` holds log lines posted to another instance.
    Ingested(i64),
    /// Notifications may have been missed: re-read everything. Never published.
    Resync,
}

impl Event {
    /// The notification's text after the origin; `None` for [`Event::Resync`].
    fn payload(&self) -> Option<String> {
        Some(match self {
            Event::Silences => "silences".to_string(),
            Event::Acknowledged(id) => format!("ack {id}"),
            Event::Deployed(id) => format!("deploy {id}"),
            Event::Heartbeat(check) => format!("heartbeat {check}"),
            Event::Ingested(id) => format!("ingest {id}"),
            Event::Resync => return None,
        })
    }

    /// Reads a notification's payload: `ORIGIN KIND [ARG]`, as [`Event::payload`] writes it.
    pub fn parse(payload: &str) -> Result<(&str, Event), String> {
        let mut parts = payload.splitn(3, ' ');
        let (origin, kind, arg) = (parts.next(), parts.next(), parts.next());
        let id = || {
            arg.and_then(|a| a.parse::<i64>().ok())
                .ok_or_else(|| format!("{payload:?}: expected a numeric id"))
        };
        let event = match kind {
            Some("silences") => Event::Silences,
            Some("ack") => Event::Acknowledged(id()?),
            Some("deploy") => Event::Deployed(id()?),
            Some("ingest") => Event::Ingested(id()?),
            Some("heartbeat") => match arg {
                Some(check) if !check.is_empty() => Event::Heartbeat(check.to_string()),
                _ => return Err(format!("{payload:?}: expected a check name")),
            },
            _ => return Err(format!("{payload:?}: unknown kind of event")),
        };
        Ok((origin.unwrap_or_default(), event))
    }
}

/// Log lines posted to another instance, to feed to this one's source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ingested {
    pub id: i64,
    pub source: String,
    pub lines: Vec<String>,
}

/// One instance's end of the shared state: publishes what changed here,
/// hears what changed elsewhere. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Bus {
    store: Store,
    /// This instance, random per start: it ignores its own notifications and rows.
    origin: Arc<str>,
}

impl Bus {
    pub fn new(store: Store) -> Bus {
        let origin = hex::encode(rand::random::<[u8; 8]>());
        Bus {
            store,
            origin: origin.into(),
        }
    }

    /// Whether other instances may share the database (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self.store, Store::Postgres(_))
    }

    /// Tells the other instances of `event`. A failure is logged: they find
    /// the change at their next re-read.
    pub async fn publish(&self, event: Event) {
        if let Err(e) = self.try_publish(&event).await {
            tracing::warn!(?event, error = %e, "telling other instances of a change; they re-read within {RESYNC_EVERY:?}");
        }
    }

    async fn try_publish(&self, event: &Event) -> Result<(), StoreError> {
        let Some(payload) = event.payload().filter(|_| self.is_shared()) else {
            return Ok(());
        };
        self.store
            .query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(format!("{} {payload}", self.origin))
            .execute("notifying other instances")
            .await?;
        Ok(())
    }

    /// Keeps log lines posted here to source `source` for the other
    /// instances and tells them; the row's id (`None` on SQLite).
    pub async fn share_lines(
        &self,
        source: &str,
        lines: &[String],
        at: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        if !self.is_shared() || lines.is_empty() {
            return Ok(None);
        }
        let json = serde_json::to_string(lines)
            .map_err(|e| StoreError::Corrupt(format!("encoding ingested lines: {e}")))?;
        let row = (self.store)
            .query("INSERT INTO ingested (origin, source, at, lines) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(&*self.origin)
            .bind(source)
            .time(at)
            .bind(json)
            .one("keeping ingested lines for other instances")
            .await?;
        let id: i64 = row.get("id").doing("reading the id of ingested lines")?;
        self.try_publish(&Event::Ingested(id)).await?;
        Ok(Some(id))
    }

    /// Row `id` of the ingested lines, unless gone (past [`INGESTED_KEPT`]) or this instance's own.
    pub async fn ingested(&self, id: i64) -> Result<Option<Ingested>, StoreError> {
        let row = (self.store)
            .query("SELECT id, source, lines FROM ingested WHERE id = $1 AND origin <> $2")
            .bind(id)
            .bind(&*self.origin)
            .row("reading ingested lines")
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Ingested {
            id,
            source: row.get("source").doing("reading ingested lines")?,
            lines: row.text("ingested.lines", |t| serde_json::from_str::<Vec<String>>(t))?,
        }))
    }

    /// The ids of lines other instances received since `since`, oldest first.
    pub async fn ingested_since(&self, since: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        (self.store)
            .query("SELECT id FROM ingested WHERE at >= $1 AND origin <> $2 ORDER BY id")
            .time(since)
            .bind(&*self.origin)
            .all(|row| Ok(row.get("id")?), "listing ingested lines")
            .await
    }

    /// Deletes the lines received before `before`, by any instance (one
    /// that stopped for good leaves its rows behind): every instance had
    /// its chance to read them. How many went.
    pub async fn forget_ingested(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        if !self.is_shared() {
            return Ok(0);
        }
        (self.store)
            .query("DELETE FROM ingested WHERE at < $1")
            .time(before)
            .execute("deleting old ingested lines")
            .await
    }

    /// Hears what other instances change, until `stop`: each notification
    /// as an [`Event`] into `events`, and [`Event::Resync`] after every
    /// (re)connect. Reconnects with backoff. Returns at once on SQLite.
    pub async fn listen(self, events: mpsc::Sender<Event>, stop: CancellationToken) {
        let Store::Postgres(pools) = &self.store else {
            return;
        };
        let mut backoff = BACKOFF_MIN;
        while !events.is_closed() {
            let session = tokio::select! {
                _ = stop.cancelled() => return,
                s = self.session(&pools.pool, &events) => s,
            };
            match session {
                // Heard for a while, then the connection went: try again soon.
                Ok(()) => backoff = BACKOFF_MIN,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "listening for other instances' changes (re-reading every {RESYNC_EVERY:?} meanwhile)");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One connection's worth of listening: `Ok` once the connection is
    /// lost (or nobody hears any more), `Err` when it could not start.
    async fn session(
        &self,
        pool: &sqlx::PgPool,
        events: &mpsc::Sender<Event>,
    ) -> Result<(), StoreError> {
        let mut listener = PgListener::connect_with(pool)
            .await
            .doing("connecting to listen for other instances' changes")?;
        // A lost connection ends the session; `listen` connects again, with backoff.
        listener.eager_reconnect(false);
        listener
            .listen(CHANNEL)
            .await
            .doing("listening for other instances' changes")?;
        tracing::debug!(channel = CHANNEL, "listening for other instances' changes");
        // Whatever was told while nobody listened is read again.
        if events.send(Event::Resync).await.is_err() {
            return Ok(());
        }
        loop {
            let heard = listener
                .try_recv()
                .await
                .doing("hearing other instances' changes")?;
            let Some(notification) = heard else {
                tracing::warn!("the connection listening for other instances' changes was lost");
                return Ok(());
            };
            match Event::parse(notification.payload()) {
                Ok((origin, _)) if origin == &*self.origin => {}
                Ok((_, event)) => {
                    if events.send(event).await.is_err() {
                        return Ok(());
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring a notification keeper does not read")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_back_as_the_events_they_name() {
        for event in [
            Event::Silences,
            Event::Acknowledged(42),
            Event::Deployed(7),
            Event::Heartbeat("nightly backup".into()),
            Event::Ingested(9),
        ] {
            let payload = format!("abc {}", event.payload().unwrap());
            assert_eq!(Event::parse(&payload), Ok(("abc", event)));
        }
        assert_eq!(Event::Resync.payload(), None);
        assert!(
            Event::parse("abc ack x")
                .unwrap_err()
                .contains("numeric id")
        );
        assert!(Event::parse("abc heartbeat").is_err());
        assert!(
            Event::parse("abc bogus 1")
                .unwrap_err()
                .contains("unknown kind")
        );
        assert!(Event::parse("").is_err());
    }
}
