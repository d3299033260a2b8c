//! Incidents and their timelines: committing a change (with its outbox rows,
//! in one transaction) and reading incidents back.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Doing, Row, Stmt, Tx, decode_each};
use crate::core::{Color, Outgoing, Severity};
use crate::incident::{Incident, IncidentChange, IncidentEvent, event_of};
use crate::store::{IncidentFilter, Store, StoreError};

/// The columns [`incident`] decodes.
macro_rules! incident_columns {
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
            incident_columns!()
        )
    };
}

impl Store {
    /// Applies an incident change, appends its timeline event and queues its
    /// notifications, all in one transaction. Returns the incident as it now is.
    pub async fn record(
        &self,
        change: IncidentChange,
        outgoing: Vec<Outgoing>,
    ) -> Result<Incident, StoreError> {
        let mut tx = self
            .begin()
            .await
            .doing("starting a transaction to record an incident change")?;
        let (row, at) = apply_change(&mut tx, change).await?;
        let id = row.get("id")?;
        for out in outgoing {
            super::outbox::queue(&mut tx, id, at, out).await?;
        }
        tx.commit().await.doing("committing an incident change")?;
        incident(&row)
    }

    /// Every incident not yet resolved (to restore state after a restart).
    pub async fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        let sql = concat!(
            "SELECT ",
            incident_columns!(),
            " FROM incidents WHERE resolved_at IS NULL ORDER BY started_at, id"
        );
        let rows = self
            .query(sql)
            .fetch_all()
            .await
            .doing("reading open incidents")?;
        Ok(decode_each("incidents", rows, Row::id_key, incident))
    }

    /// Incidents matching `filter`, newest first, at most `limit`.
    pub async fn incidents(
        &self,
        filter: IncidentFilter,
        limit: u32,
    ) -> Result<Vec<Incident>, StoreError> {
        let sql = format!(
            concat!(
                "SELECT ",
                incident_columns!(),
                " FROM incidents WHERE {} ORDER BY started_at DESC, id DESC LIMIT $1"
            ),
            filter.condition()
        );
        let rows = self
            .query(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(limit))
            .fetch_all()
            .await
            .doing("listing incidents")?;
        rows.iter().map(incident).collect()
    }

    pub async fn incident(&self, id: i64) -> Result<Incident, StoreError> {
        let sql = concat!(
            "SELECT ",
            incident_columns!(),
            " FROM incidents WHERE id = $1"
        );
        let row = self
            .query(sql)
            .bind(id)
            .fetch_optional()
            .await
            .doing("reading an incident")?;
        incident(&row.ok_or(StoreError::NotFound(id))?)
    }

    /// An incident's timeline, oldest first.
    pub async fn incident_events(&self, id: i64) -> Result<Vec<IncidentEvent>, StoreError> {
        let rows = self
            .query("SELECT at, kind, detail FROM incident_events WHERE incident_id = $1 ORDER BY at, id")
            .bind(id)
            .fetch_all()
            .await
            .doing("reading an incident's events")?;
        rows.iter().map(event).collect()
    }

    /// The timelines of incidents `ids` in one query, each oldest first.
    /// Incidents without events are missing from the map.
    pub async fn events_of(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, Vec<IncidentEvent>>, StoreError> {
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
        let mut query = self.query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(*id);
        }
        let rows = query
            .fetch_all()
            .await
            .doing("reading the events of listed incidents")?;
        for row in &rows {
            out.entry(row.get("incident_id")?)
                .or_default()
                .push(event(row)?);
        }
        Ok(out)
    }

    /// The channels incident `id`'s notifications were queued for, whatever became of them.
    pub async fn incident_channels(&self, id: i64) -> Result<Vec<String>, StoreError> {
        let rows = self
            .query("SELECT DISTINCT channel FROM outbox WHERE incident_id = $1 ORDER BY channel")
            .bind(id)
            .fetch_all()
            .await
            .doing("reading the channels an incident went to")?;
        Ok(rows
            .iter()
            .map(|row| row.get("channel"))
            .collect::<Result<_, _>>()?)
    }
}

/// Applies the incident part of a change and appends its event. Returns the
/// incident's row as it now is and the change's time.
async fn apply_change(
    tx: &mut Tx,
    change: IncidentChange,
) -> Result<(Row, DateTime<Utc>), StoreError> {
    let (kind, detail) = event_of(&change);
    let (row, at) = match change {
        IncidentChange::Open {
            check,
            severity,
            color,
            message,
            at,
            notify,
        } => (
            open(tx, check, severity, color, message, at, notify).await?,
            at,
        ),
        IncidentChange::Escalate {
            id,
            severity,
            color,
            message,
            at,
        } => {
            let sql = update!(
                "severity = $2, color = $3, message = $4",
                "resolved_at IS NULL"
            );
            let query = tx
                .query(sql)
                .bind(id)
                .bind(severity.as_str())
                .bind(color.as_str());
            (
                found(query.bind(message), id, "escalating an incident").await?,
                at,
            )
        }
        IncidentChange::Resolve { id, at, .. } => {
            let sql = update!("resolved_at = $2", "resolved_at IS NULL");
            (
                found(tx.query(sql).bind(id).time(at), id, "resolving an incident").await?,
                at,
            )
        }
        IncidentChange::Acknowledge { id, at, .. } => {
            let sql = update!(
                "acknowledged_at = $2",
                "resolved_at IS NULL AND acknowledged_at IS NULL"
            );
            (
                found(
                    tx.query(sql).bind(id).time(at),
                    id,
                    "acknowledging an incident",
                )
                .await?,
                at,
            )
        }
        IncidentChange::Notify { id, at, .. } => {
            let sql = update!("notified_at = $2", "notified_at IS NULL");
            (
                found(
                    tx.query(sql).bind(id).time(at),
                    id,
                    "notifying a held-back incident",
                )
                .await?,
                at,
            )
        }
        IncidentChange::Remind { id, at } => {
            let sql = concat!(
                "SELECT ",
                incident_columns!(),
                " FROM incidents WHERE id = $1 AND resolved_at IS NULL"
            );
            (
                found(
                    tx.query(sql).bind(id),
                    id,
                    "reading an incident to remind of",
                )
                .await?,
                at,
            )
        }
    };
    tx.query("INSERT INTO incident_events (incident_id, at, kind, detail) VALUES ($1, $2, $3, $4)")
        .bind(row.get::<i64>("id")?)
        .time(at)
        .bind(kind)
        .bind(detail)
        .execute()
        .await
        .doing("appending an incident event")?;
    Ok((row, at))
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
) -> Result<Row, StoreError> {
    let sql = concat!(
        "INSERT INTO incidents (check_name, severity, color, message, started_at, notified_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
        incident_columns!()
    );
    let inserted = tx
        .query(sql)
        .bind(check.as_str())
        .bind(severity.as_str())
        .bind(color.as_str())
        .bind(message)
        .time(at)
        .time(notify.then_some(at))
        .fetch_one()
        .await;
    match inserted {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::AlreadyOpen(check))
        }
        other => other.doing("opening an incident"),
    }
}

/// The incident row `query` returns; `NotFound` when it returns none (no
/// such incident, or not in the state the change needs).
async fn found(query: Stmt<'_>, id: i64, doing: &'static str) -> Result<Row, StoreError> {
    query
        .fetch_optional()
        .await
        .doing(doing)?
        .ok_or(StoreError::NotFound(id))
}

fn incident(row: &Row) -> Result<Incident, StoreError> {
    Ok(Incident {
        id: row.get("id")?,
        check: row.get("check_name")?,
        severity: row.parse("incidents.severity")?,
        color: row.parse("incidents.color")?,
        message: row.get("message")?,
        started_at: row.time("incidents.started_at")?,
        acknowledged_at: row.opt_time("incidents.acknowledged_at")?,
        resolved_at: row.opt_time("incidents.resolved_at")?,
        notified_at: row.opt_time("incidents.notified_at")?,
    })
}

fn event(row: &Row) -> Result<IncidentEvent, StoreError> {
    Ok(IncidentEvent {
        at: row.time("incident_events.at")?,
        kind: row.get("kind")?,
        detail: row.get("detail")?,
    })
}
