//! Incidents and their timelines: committing a change together with its
//! outbox rows in one transaction, and reading incidents back.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Result, Row, Stmt, Tx, decode_each};
use crate::core::{Color, Outgoing, Severity};
use crate::incident::{Incident, IncidentChange, IncidentEvent, event_of};
use crate::store::{IncidentFilter, Store, StoreError};

/// `SELECT` an incident's columns (as [`incident`] decodes them) `FROM incidents $rest`.
macro_rules! incidents {
    ($rest:literal) => {
        concat!("SELECT ", columns!(), " FROM incidents ", $rest)
    };
}

/// An incident's columns.
macro_rules! columns {
    () => {
        "id, check_name, severity, color, message, started_at, acknowledged_at, resolved_at, \
         notified_at"
    };
}

/// `UPDATE incidents SET $set WHERE id = $1 AND $when`, returning the incident.
macro_rules! update {
    ($set:literal, $when:literal) => {
        concat!(
            "UPDATE incidents SET ",
            $set,
            " WHERE id = $1 AND ",
            $when,
            " RETURNING ",
            columns!()
        )
    };
}

const ESCALATE: &str = update!(
    "severity = $2, color = $3, message = $4",
    "resolved_at IS NULL"
);
const RESOLVE: &str = update!("resolved_at = $2", "resolved_at IS NULL");
const ACKNOWLEDGE: &str = update!(
    "acknowledged_at = $2",
    "resolved_at IS NULL AND acknowledged_at IS NULL"
);
/// Once per incident, whichever instance releases it; a held-back incident
/// that resolved meanwhile is still notified (a digest tells of it).
const NOTIFY: &str = update!("notified_at = $2", "notified_at IS NULL");
/// A reminder is for an open incident nobody has acknowledged, wherever the
/// acknowledgement was made: an instance that did not hear of it gets
/// `NotFound` and reloads the incident. Nothing changes; the UPDATE is there
/// for its row lock: an acknowledgement committed meanwhile by another
/// instance is seen (PostgreSQL checks the condition again after the wait),
/// one still to come waits for the reminder and follows it.
const REMIND: &str = update!(
    "notified_at = notified_at",
    "resolved_at IS NULL AND acknowledged_at IS NULL"
);

impl Store {
    /// Applies an incident change, appends its timeline event and queues its
    /// notifications, all in one transaction. Returns the incident as it now is.
    pub async fn record(
        &self,
        change: IncidentChange,
        outgoing: Vec<Outgoing>,
    ) -> Result<Incident> {
        let mut tx = self
            .begin("starting a transaction to record an incident change")
            .await?;
        let (row, at) = apply_change(&mut tx, change).await?;
        let id = row.get("id")?;
        for out in outgoing {
            super::outbox::queue(&mut tx, id, at, out).await?;
        }
        tx.commit("committing an incident change").await?;
        incident(&row)
    }

    /// Every incident not yet resolved (to restore state after a restart).
    pub async fn open_incidents(&self) -> Result<Vec<Incident>> {
        let sql = incidents!("WHERE resolved_at IS NULL ORDER BY started_at, id");
        let rows = self.query(sql).rows("reading open incidents").await?;
        Ok(decode_each("incidents", "id", rows, incident))
    }

    /// Incidents matching `filter`, newest first, at most `limit`.
    pub async fn incidents(&self, filter: IncidentFilter, limit: u32) -> Result<Vec<Incident>> {
        let sql = format!(
            incidents!("WHERE {} ORDER BY started_at DESC, id DESC LIMIT $1"),
            filter.condition()
        );
        let list = self.query(sqlx::AssertSqlSafe(sql)).bind(i64::from(limit));
        list.all(incident, "listing incidents").await
    }

    pub async fn incident(&self, id: i64) -> Result<Incident> {
        let query = self.query(incidents!("WHERE id = $1")).bind(id);
        incident(&found(query, id, "reading an incident").await?)
    }

    /// An incident's timeline, oldest first.
    pub async fn incident_events(&self, id: i64) -> Result<Vec<IncidentEvent>> {
        self.query(
            "SELECT at, kind, detail FROM incident_events WHERE incident_id = $1 ORDER BY at, id",
        )
        .bind(id)
        .all(event, "reading an incident's events")
        .await
    }

    /// The timelines of incidents `ids` in one query, each oldest first.
    /// Incidents without events are missing from the map.
    pub async fn events_of(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<IncidentEvent>>> {
        let mut out: HashMap<i64, Vec<IncidentEvent>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let list: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT incident_id, at, kind, detail FROM incident_events \
             WHERE incident_id IN ({}) ORDER BY incident_id, at, id",
            list.join(", ")
        );
        let query = ids
            .iter()
            .fold(self.query(sqlx::AssertSqlSafe(sql)), |q, id| q.bind(*id));
        for row in query.rows("reading the events of listed incidents").await? {
            out.entry(row.get("incident_id")?)
                .or_default()
                .push(event(&row)?);
        }
        Ok(out)
    }

    /// The channels incident `id`'s notifications were queued for, whatever became of them.
    pub async fn incident_channels(&self, id: i64) -> Result<Vec<String>> {
        self.query("SELECT DISTINCT channel FROM outbox WHERE incident_id = $1 ORDER BY channel")
            .bind(id)
            .all(
                |row| Ok(row.get("channel")?),
                "reading the channels an incident went to",
            )
            .await
    }
}

/// Applies the incident part of a change and appends its event. Returns the
/// incident's row as it now is and the change's time.
async fn apply_change(tx: &mut Tx, change: IncidentChange) -> Result<(Row, DateTime<Utc>)> {
    let (kind, detail) = event_of(&change);
    let (row, at) = change_incident(tx, change).await?;
    tx.query("INSERT INTO incident_events (incident_id, at, kind, detail) VALUES ($1, $2, $3, $4)")
        .bind(row.get::<i64>("id")?)
        .time(at)
        .bind(kind)
        .bind(detail)
        .execute("appending an incident event")
        .await?;
    Ok((row, at))
}

/// Opens the incident or changes the open one; `NotFound` when there is no
/// incident in the state the change needs.
async fn change_incident(tx: &mut Tx, change: IncidentChange) -> Result<(Row, DateTime<Utc>)> {
    use IncidentChange as C;
    let (id, at, stamp, doing) = match change {
        C::Open {
            check,
            severity,
            color,
            message,
            at,
            notify,
        } => {
            return Ok((
                open(tx, check, severity, color, message, at, notify).await?,
                at,
            ));
        }
        C::Escalate {
            id,
            severity,
            color,
            message,
            at,
        } => {
            let query = tx.query(ESCALATE).bind(id).bind(severity.as_str());
            let query = query.bind(color.as_str()).bind(message);
            return Ok((found(query, id, "escalating an incident").await?, at));
        }
        // Not once acknowledged, whichever instance acknowledged it. An
        // UPDATE (changing nothing) rather than a read: it waits for an
        // acknowledgement being committed and then finds no row.
        C::Remind { id, at } => {
            let query = tx.query(REMIND).bind(id);
            return Ok((
                found(query, id, "reading an incident to remind of").await?,
                at,
            ));
        }
        C::Resolve { id, at, .. } => (id, at, RESOLVE, "resolving an incident"),
        C::Acknowledge { id, at, .. } => (id, at, ACKNOWLEDGE, "acknowledging an incident"),
        C::Notify { id, at, .. } => (id, at, NOTIFY, "notifying a held-back incident"),
    };
    Ok((
        found(tx.query(stamp).bind(id).time(at), id, doing).await?,
        at,
    ))
}

/// The incident row `query` returns; `NotFound` when none.
async fn found(query: Stmt<'_>, id: i64, doing: &'static str) -> Result<Row> {
    query.row(doing).await?.ok_or(StoreError::NotFound(id))
}

/// Opens an incident; `AlreadyOpen` when `check` has one (the database's
/// unique index says so, whoever opened it).
async fn open(
    tx: &mut Tx,
    check: String,
    severity: Severity,
    color: Color,
    message: String,
    at: DateTime<Utc>,
    notify: bool,
) -> Result<Row> {
    let sql = concat!(
        "INSERT INTO incidents (check_name, severity, color, message, started_at, notified_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
        columns!()
    );
    let insert = tx
        .query(sql)
        .bind(check.as_str())
        .bind(severity.as_str())
        .bind(color.as_str());
    let insert = insert.bind(message).time(at).time(notify.then_some(at));
    match insert.one("opening an incident").await {
        Err(StoreError::Query {
            source: sqlx::Error::Database(e),
            ..
        }) if e.is_unique_violation() => Err(StoreError::AlreadyOpen(check)),
        other => other,
    }
}

fn incident(row: &Row) -> Result<Incident> {
    Ok(Incident {
        id: row.get("id")?,
        check: row.get("check_name")?,
        severity: row.text("incidents.severity", str::parse)?,
        color: row.text("incidents.color", str::parse)?,
        message: row.get("message")?,
        started_at: row.time("incidents.started_at")?,
        acknowledged_at: row.time("incidents.acknowledged_at")?,
        resolved_at: row.time("incidents.resolved_at")?,
        notified_at: row.time("incidents.notified_at")?,
    })
}

fn event(row: &Row) -> Result<IncidentEvent> {
    Ok(IncidentEvent {
        at: row.time("incident_events.at")?,
        kind: row.get("kind")?,
        detail: row.get("detail")?,
    })
}
