//! Incidents over the API: `GET /api/v1/incidents?state=open|resolved|all`
//! (with timelines, MTTA and MTTR), `GET /api/v1/incidents/{id}`, and
//! `POST /api/v1/incidents/{id}/ack` (bearer token when one is set), and
//! `GET /api/v1/incidents/{id}/report`, the incident report as Markdown.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::Authorized;
use super::{ApiError, AppState};
use crate::core::text::NAME_MAX;
use crate::core::{Color, Severity};
use crate::engine::AckError;
use crate::incident::{Incident, IncidentEvent};
use crate::incident::{mtta_s, mttr_s};
use crate::report::incident as report;
use crate::store::events::Event;
use crate::store::{IncidentFilter, StoreError};

/// The most incidents one listing returns.
const MAX_LIMIT: u32 = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/incidents", get(list))
        .route("/incidents/{id}", get(one))
        .route("/incidents/{id}/ack", post(acknowledge))
        .route("/incidents/{id}/report", get(report))
}

/// An incident as the API shows it (DESIGN.md §7).
#[derive(Debug, Serialize)]
pub struct IncidentView {
    pub id: i64,
    pub check: String,
    /// `open` or `resolved`.
    pub state: &'static str,
    pub severity: Severity,
    pub color: Color,
    pub message: String,
    pub started_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub mtta_s: Option<i64>,
    pub mttr_s: Option<i64>,
    pub events: Vec<EventView>,
}

#[derive(Debug, Serialize)]
pub struct EventView {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub detail: String,
}

fn unavailable(e: StoreError) -> ApiError {
    ApiError::unavailable(format!("reading incidents: {e}"))
}

/// One incident with its timeline, read on the read connections.
async fn view(state: &AppState, incident: Incident) -> Result<IncidentView, ApiError> {
    let events = state
        .reads
        .incident_events(incident.id)
        .await
        .map_err(unavailable)?;
    Ok(view_with(incident, events))
}

pub(super) fn view_with(incident: Incident, events: Vec<IncidentEvent>) -> IncidentView {
    IncidentView {
        id: incident.id,
        state: if incident.resolved_at.is_some() {
            "resolved"
        } else {
            "open"
        },
        mtta_s: mtta_s(&incident),
        mttr_s: mttr_s(&incident),
        check: incident.check,
        severity: incident.severity,
        color: incident.color,
        message: incident.message,
        started_at: incident.started_at,
        acknowledged_at: incident.acknowledged_at,
        resolved_at: incident.resolved_at,
        events: events
            .into_iter()
            .map(|e| EventView {
                at: e.at,
                kind: e.kind,
                detail: e.detail,
            })
            .collect(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    limit: Option<u32>,
}

async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<IncidentView>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let filter: IncidentFilter = query
        .state
        .as_deref()
        .unwrap_or("open")
        .parse()
        .map_err(|e: String| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    // Two queries whatever the limit: the incidents, then all their events.
    let incidents = state
        .reads
        .incidents(filter, limit)
        .await
        .map_err(unavailable)?;
    let ids: Vec<i64> = incidents.iter().map(|i| i.id).collect();
    let mut events = state.reads.events_of(&ids).await.map_err(unavailable)?;
    Ok(Json(
        incidents
            .into_iter()
            .map(|i| {
                let timeline = events.remove(&i.id).unwrap_or_default();
                view_with(i, timeline)
            })
            .collect(),
    ))
}

async fn one(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<IncidentView>, ApiError> {
    let Path(id) = id?;
    let id = parse_id(&id)?;
    let incident = match state.reads.incident(id).await {
        Ok(i) => i,
        Err(StoreError::NotFound(_)) => {
            return Err(ApiError::not_found(format!("no incident {id}")));
        }
        Err(e) => return Err(unavailable(e)),
    };
    Ok(Json(view(&state, incident).await?))
}

/// The incident report ([`crate::report::incident`]) as `text/markdown`,
/// named for saving by its `Content-Disposition`. Deployments are those of
/// the check's `app` label, as the running config has it.
async fn report(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Path(id) = id?;
    let id = parse_id(&id)?;
    let app_of = |check: &str| state.board.get(check)?.labels.get("app").cloned();
    let facts = match report::gather(&state.reads, id, app_of, Utc::now()).await {
        Ok(facts) => facts,
        Err(StoreError::NotFound(_)) => {
            return Err(ApiError::not_found(format!("no incident {id}")));
        }
        Err(e) => return Err(ApiError::unavailable(format!("reading the report: {e}"))),
    };
    let name = report::file_name(id, facts.incident.started_at);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/markdown; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{name}\""),
            ),
        ],
        report::render(&facts),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    /// Who takes the incident on.
    by: Option<String>,
}

async fn acknowledge(
    _: Authorized,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<IncidentView>, ApiError> {
    let Path(id) = id?;
    let id = parse_id(&id)?;
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let by = read_ack(&body)?;
    let incident = state
        .engine
        .acknowledge(id, by)
        .await
        .map_err(|e| match e {
            AckError::NotFound(_) => ApiError::not_found(e.to_string()),
            AckError::Resolved(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            AckError::Stopped => ApiError::unavailable(e.to_string()),
            AckError::Store(e) => unavailable(e),
        })?;
    state.events.publish(Event::Acknowledged(id)).await;
    Ok(Json(view(&state, incident).await?))
}

/// An ack body (empty, or `{"by": "…"}`) read into who acknowledges.
/// Public for the fuzz target `api_bodies`.
#[doc(hidden)]
pub fn read_ack(body: &[u8]) -> Result<Option<String>, ApiError> {
    let body: AckBody = if body.iter().all(u8::is_ascii_whitespace) {
        AckBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}"))
        })?
    };
    // Free text reaches the store and every channel: keeper's text rule applies.
    Ok(body
        .by
        .map(|b| crate::core::text::clean_to(b.trim(), NAME_MAX).into_owned())
        .filter(|b| !b.is_empty()))
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().ok().filter(|id: &i64| *id > 0).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{raw:?} is not an incident id"),
        )
    })
}
