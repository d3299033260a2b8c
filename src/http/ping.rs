//! Heartbeat pings (DESIGN.md §7): `GET` or `POST /ping/{token}` (the job
//! succeeded), `/ping/{token}/start` and `/ping/{token}/fail`. The ping token
//! is the credential: no API token is needed. An unknown token gets a bare
//! 404 that says nothing more; a body (a job's log tail) is read and ignored
//! up to [`PING_BODY_LIMIT`], and a larger one is refused with 413.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use chrono::Utc;

use super::{ApiError, AppState};
use crate::probe::heartbeat::Signal;
use crate::store::events::Event;

/// The largest ping body accepted.
pub const PING_BODY_LIMIT: usize = 10 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ping/{token}", get(success).post(success))
        .route("/ping/{token}/start", get(start).post(start))
        .route("/ping/{token}/fail", get(fail).post(fail))
}

async fn success(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: Body,
) -> Result<&'static str, ApiError> {
    ping(&state, &token, Signal::Success, body).await
}

async fn start(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: Body,
) -> Result<&'static str, ApiError> {
    ping(&state, &token, Signal::Start, body).await
}

async fn fail(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: Body,
) -> Result<&'static str, ApiError> {
    ping(&state, &token, Signal::Fail, body).await
}

async fn ping(
    state: &AppState,
    token: &str,
    signal: Signal,
    body: Body,
) -> Result<&'static str, ApiError> {
    let Some(beat) = state.heartbeats.lookup(token) else {
        return Err(ApiError::not_found("not found"));
    };
    read_body(body).await?;
    state.heartbeats.record(&beat, signal, Utc::now()).await;
    let check = beat.check().to_string();
    state.events.publish(Event::Heartbeat(check)).await;
    Ok("OK\n")
}

/// Reads (and drops) the body, refusing one larger than [`PING_BODY_LIMIT`].
async fn read_body(body: Body) -> Result<(), ApiError> {
    match axum::body::to_bytes(body, PING_BODY_LIMIT).await {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = e.into_inner();
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "ping body larger than {} KiB; the ping was not recorded",
                        PING_BODY_LIMIT / 1024
                    ),
                ))
            } else {
                Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("reading the ping body: {e}"),
                ))
            }
        }
    }
}
