//! The read side of the JSON API: `GET /api/v1/checks` and `/api/v1/checks/{name}`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{ApiError, AppState};
use crate::classify::{Color, Severity};
use crate::state::CheckStatus;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/checks", get(list_checks))
        .route("/checks/{name}", get(get_check))
}

/// A check as the API shows it (DESIGN.md §7).
#[derive(Debug, Serialize)]
pub struct CheckView {
    pub name: String,
    pub kind: &'static str,
    pub target: String,
    pub description: Option<String>,
    pub color: Color,
    pub severity: Option<Severity>,
    pub message: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub since: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub latency_ms: Option<f64>,
    pub uptime_pct: Uptime,
    pub incident: Option<i64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Uptime {
    #[serde(rename = "24h")]
    pub h24: Option<f64>,
    #[serde(rename = "7d")]
    pub d7: Option<f64>,
    #[serde(rename = "30d")]
    pub d30: Option<f64>,
}

async fn uptime(state: &AppState, check: &str) -> Result<Uptime, ApiError> {
    let now = Utc::now();
    let mut out = Uptime::default();
    for (slot, days) in [(&mut out.h24, 1), (&mut out.d7, 7), (&mut out.d30, 30)] {
        *slot = state
            .store
            .uptime_pct(check, now - chrono::Duration::days(days))
            .await
            .map_err(|e| ApiError::unavailable(format!("reading uptime: {e}")))?;
    }
    Ok(out)
}

fn view(s: CheckStatus, uptime_pct: Uptime) -> CheckView {
    CheckView {
        name: s.name,
        kind: s.kind,
        target: s.target,
        description: s.description,
        color: s.color,
        severity: s.severity,
        message: s.message,
        labels: s.labels,
        since: s.since,
        last_run_at: s.last_run_at,
        latency_ms: s.latency_ms,
        uptime_pct,
        incident: s.incident,
    }
}

async fn list_checks(State(state): State<AppState>) -> Result<Json<Vec<CheckView>>, ApiError> {
    let mut out = Vec::new();
    for s in state.board.all() {
        let up = uptime(&state, &s.name).await?;
        out.push(view(s, up));
    }
    Ok(Json(out))
}

async fn get_check(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<CheckView>, ApiError> {
    let s = state
        .board
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no check named {name:?}")))?;
    let up = uptime(&state, &s.name).await?;
    Ok(Json(view(s, up)))
}
