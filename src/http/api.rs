//! The read side of the JSON API: `GET /api/v1/checks`, `/api/v1/checks/{name}`
//! and `/api/v1/checks/{name}/samples?since=…&limit=…`.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::core::{Color, Severity, uptime_color};
use crate::state::CheckStatus;
use crate::store::uptime::Windows;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/checks", get(list_checks))
        .route("/checks/{name}", get(get_check))
        .route("/checks/{name}/samples", get(list_samples))
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
    /// Each window's uptime colored by the bands of [`uptime_color`].
    pub uptime_color: UptimeColor,
    pub incident: Option<i64>,
    /// A heartbeat's ping URL, when keeper generated its token: only for
    /// requests carrying the API token (or when none is set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_url: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Uptime {
    #[serde(rename = "24h")]
    pub h24: Option<f64>,
    #[serde(rename = "7d")]
    pub d7: Option<f64>,
    #[serde(rename = "30d")]
    pub d30: Option<f64>,
    #[serde(rename = "90d")]
    pub d90: Option<f64>,
}

/// The color of each window's uptime; `None` where it has no samples.
#[derive(Debug, Default, Serialize)]
pub struct UptimeColor {
    #[serde(rename = "24h")]
    pub h24: Option<Color>,
    #[serde(rename = "7d")]
    pub d7: Option<Color>,
    #[serde(rename = "30d")]
    pub d30: Option<Color>,
    #[serde(rename = "90d")]
    pub d90: Option<Color>,
}

impl From<Windows> for Uptime {
    fn from(w: Windows) -> Uptime {
        Uptime {
            h24: w.h24,
            d7: w.d7,
            d30: w.d30,
            d90: w.d90,
        }
    }
}

impl From<Windows> for UptimeColor {
    fn from(w: Windows) -> UptimeColor {
        let color = |pct: Option<f64>| pct.map(uptime_color);
        UptimeColor {
            h24: color(w.h24),
            d7: color(w.d7),
            d30: color(w.d30),
            d90: color(w.d90),
        }
    }
}

fn view(s: CheckStatus, uptime: Windows) -> CheckView {
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
        uptime_pct: uptime.into(),
        uptime_color: uptime.into(),
        incident: s.incident,
        ping_url: None,
    }
}

async fn list_checks(State(state): State<AppState>) -> Result<Json<Vec<CheckView>>, ApiError> {
    // From memory: O(checks), whatever the number of stored samples.
    let mut uptime = state.uptime.all(Utc::now());
    let checks = state.board.all();
    Ok(Json(
        checks
            .into_iter()
            .map(|s| {
                let up = uptime.remove(&s.name).unwrap_or_default();
                view(s, up)
            })
            .collect(),
    ))
}

async fn get_check(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<CheckView>, ApiError> {
    let Path(name) = name?;
    let s = state
        .board
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no check named {name:?}")))?;
    let up = state.uptime.windows(&s.name, Utc::now());
    let mut view = view(s, up);
    if super::auth::carries_api_token(&headers, &state) {
        view.ping_url = state.heartbeats.ping_url(&view.name);
    }
    Ok(Json(view))
}

/// How far back `samples` looks without `since`.
const SAMPLES_DEFAULT_SINCE: chrono::Duration = chrono::Duration::hours(1);
/// The most samples one request returns.
const SAMPLES_MAX: u32 = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SamplesQuery {
    /// RFC 3339; default an hour ago.
    since: Option<DateTime<Utc>>,
    /// Default and maximum [`SAMPLES_MAX`].
    limit: Option<u32>,
}

/// A stored sample as the API shows it.
#[derive(Debug, Serialize)]
struct SampleView {
    at: DateTime<Utc>,
    up: bool,
    color: Color,
    status_code: Option<u16>,
    latency_ms: f64,
    duration_ms: f64,
    message: String,
    /// What else it measured (`cert_days_left`, `query_ms`, a plugin's perfdata…).
    metrics: serde_json::Map<String, serde_json::Value>,
}

async fn list_samples(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<SamplesQuery>, QueryRejection>,
) -> Result<Json<Vec<SampleView>>, ApiError> {
    let Path(name) = name?;
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let check = state
        .board
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no check named {name:?}")))?;
    let since = query
        .since
        .unwrap_or_else(|| Utc::now() - SAMPLES_DEFAULT_SINCE);
    let limit = query.limit.unwrap_or(SAMPLES_MAX).clamp(1, SAMPLES_MAX);
    let rows = state
        .reads
        .samples(&check.name, since, limit)
        .await
        .map_err(|e| ApiError::unavailable(format!("reading samples: {e}")))?;
    Ok(Json(
        rows.into_iter()
            .map(|r| SampleView {
                at: r.at,
                up: r.up,
                color: r.color,
                status_code: r.status_code,
                latency_ms: r.latency_ms,
                duration_ms: r.duration_ms,
                message: r.message,
                metrics: r
                    .metrics
                    .and_then(|m| serde_json::from_str(&m).ok())
                    .unwrap_or_default(),
            })
            .collect(),
    ))
}
