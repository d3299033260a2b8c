//! Silences over the API: `POST /api/v1/silences` (a check or labels, `for`
//! or `ends_at`, a comment), `GET /api/v1/silences` (active and upcoming),
//! `DELETE /api/v1/silences/{id}` (ends it now). Writes need the API token.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::auth::Authorized;
use super::{ApiError, AppState};
use crate::core::text::NAME_MAX;
use crate::core::value::HumanDuration;
use crate::incident::{NewSilence, Silence};
use crate::store::StoreError;
use crate::store::events::Event;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/silences", get(list).post(create))
        .route("/silences/{id}", delete(end))
}

/// `POST /api/v1/silences` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceBody {
    check: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(rename = "for")]
    duration: Option<HumanDuration>,
    ends_at: Option<DateTime<Utc>>,
    starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    comment: String,
    by: Option<String>,
}

/// How far ahead a silence may end (or start): further is a typo or a check
/// that should be removed, and keeps chrono's date arithmetic in range.
const MAX_AHEAD: chrono::Duration = chrono::Duration::days(365);

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(id) => ApiError::not_found(format!("no silence {id}")),
        e => ApiError::unavailable(format!("silences: {e}")),
    }
}

/// A `POST /api/v1/silences` body read and checked against the clock and
/// `known` (whether a check of that name exists), into a silence to create.
/// Public for the fuzz target `api_bodies`.
#[doc(hidden)]
pub fn read_silence(
    body: &[u8],
    known: &dyn Fn(&str) -> bool,
    now: DateTime<Utc>,
) -> Result<NewSilence, ApiError> {
    let body: SilenceBody =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))?;
    validate(known, body, now)
}

/// Checks a request against the config and the clock, into a silence to create.
fn validate(
    known: &dyn Fn(&str) -> bool,
    body: SilenceBody,
    now: DateTime<Utc>,
) -> Result<NewSilence, ApiError> {
    if body.check.is_none() && body.labels.is_empty() {
        return Err(bad("a silence needs a check or labels"));
    }
    if let Some(check) = &body.check
        && !known(check)
    {
        return Err(bad(format!("no check named {check:?}")));
    }
    let starts_at = body.starts_at.unwrap_or(now);
    let horizon = now + MAX_AHEAD;
    if starts_at > horizon {
        return Err(bad(format!(
            "starts_at {starts_at} is more than 365 days ahead"
        )));
    }
    let ends_at = match (body.duration, body.ends_at) {
        (Some(d), None) => starts_at
            .checked_add_signed(silence_length(d)?)
            .ok_or_else(|| bad("for: too long"))?,
        (None, Some(end)) => end,
        (Some(_), Some(_)) => return Err(bad("give for or ends_at, not both")),
        (None, None) => return Err(bad("a silence needs for (\"1h\") or ends_at (RFC 3339)")),
    };
    if ends_at > horizon {
        return Err(bad(format!(
            "ends_at {ends_at} is more than 365 days ahead"
        )));
    }
    if ends_at <= now {
        return Err(bad(format!("ends_at {ends_at} is not in the future")));
    }
    if ends_at <= starts_at {
        return Err(bad("ends_at must come after starts_at"));
    }
    // Free text reaches the store and the API: keeper's text rule applies.
    let name = |t: String| crate::core::text::clean_to(&t, NAME_MAX).into_owned();
    Ok(NewSilence {
        check: body.check,
        labels: body
            .labels
            .into_iter()
            .map(|(k, v)| (name(k), name(v)))
            .collect(),
        starts_at,
        ends_at,
        comment: crate::core::text::clean(&body.comment).into_owned(),
        created_by: body.by.filter(|b| !b.trim().is_empty()).map(name),
    })
}

/// `for`: above zero and at most [`MAX_AHEAD`].
fn silence_length(d: HumanDuration) -> Result<chrono::Duration, ApiError> {
    let d = chrono::Duration::from_std(d.0)
        .ok()
        .filter(|d| *d <= MAX_AHEAD)
        .ok_or_else(|| bad(format!("for: {d} is longer than 365 days")))?;
    if d <= chrono::Duration::zero() {
        return Err(bad("for: must be above 0"));
    }
    Ok(d)
}

async fn create(
    _: Authorized,
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Silence>), ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let known = |check: &str| state.board.get(check).is_some();
    let new = read_silence(&body, &known, Utc::now())?;
    let silence = state.engine.silence(new).await.map_err(store_error)?;
    state.events.publish(Event::Silences).await;
    Ok((StatusCode::CREATED, Json(silence)))
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<Silence>>, ApiError> {
    let silences = state
        .store
        .silences(Utc::now())
        .await
        .map_err(store_error)?;
    Ok(Json(silences))
}

async fn end(
    _: Authorized,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Silence>, ApiError> {
    let Path(id) = id?;
    let id: i64 = id
        .parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| bad(format!("{id:?} is not a silence id")))?;
    let silence = state.engine.end_silence(id).await.map_err(store_error)?;
    state.events.publish(Event::Silences).await;
    Ok(Json(silence))
}
