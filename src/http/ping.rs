//! Heartbeat pings (DESIGN.md §7), Healthchecks.io's URLs: `GET` or `POST
//! /ping/{token}` (the job succeeded), `/ping/{token}/start`,
//! `/ping/{token}/fail`, `/ping/{token}/{exit status}` (0 succeeded, 1–255
//! failed) and `/ping/{token}/log` (output only, no change of state). The
//! ping token is the credential: no API token is needed. An unknown token (or
//! an unknown signal) gets a bare 404 that says nothing more. A body (a job's
//! output) is read up to [`PING_BODY_LIMIT`], a larger one refused with 413;
//! its last lines are kept for the check's red message.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use chrono::Utc;

use super::{ApiError, AppState};
use crate::probe::heartbeat::{Signal, body};
use crate::store::events::Event;

/// The largest ping body accepted.
pub const PING_BODY_LIMIT: usize = 10 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ping/{token}", get(success).post(success))
        .route("/ping/{token}/start", get(start).post(start))
        .route("/ping/{token}/fail", get(fail).post(fail))
        .route("/ping/{token}/log", get(log).post(log))
        .route("/ping/{token}/{status}", get(exit).post(exit))
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

async fn log(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: Body,
) -> Result<&'static str, ApiError> {
    ping(&state, &token, Signal::Log, body).await
}

/// `/ping/{token}/{status}`: 0 is a success, 1 to 255 a failure with that
/// exit status; anything else is not a ping URL.
async fn exit(
    State(state): State<AppState>,
    Path((token, status)): Path<(String, String)>,
    body: Body,
) -> Result<&'static str, ApiError> {
    let signal = match exit_signal(&status) {
        Some(signal) => signal,
        None => return Err(ApiError::not_found("not found")),
    };
    ping(&state, &token, signal, body).await
}

/// `0` → success, `1`..=`255` → failure with that status; digits only.
fn exit_signal(status: &str) -> Option<Signal> {
    if status.is_empty() || status.len() > 3 || !status.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match status.parse::<u8>().ok()? {
        0 => Some(Signal::Success),
        n => Some(Signal::Exit(n)),
    }
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
    let output = body::tail(&read_body(body).await?);
    state
        .heartbeats
        .record(&beat, signal, output, Utc::now())
        .await;
    let check = beat.check().to_string();
    state.events.publish(Event::Heartbeat(check)).await;
    Ok("OK\n")
}

/// Reads the body, refusing one larger than [`PING_BODY_LIMIT`].
async fn read_body(body: Body) -> Result<bytes::Bytes, ApiError> {
    match axum::body::to_bytes(body, PING_BODY_LIMIT).await {
        Ok(bytes) => Ok(bytes),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_are_0_to_255_in_digits() {
        assert_eq!(exit_signal("0"), Some(Signal::Success));
        assert_eq!(exit_signal("000"), Some(Signal::Success));
        assert_eq!(exit_signal("1"), Some(Signal::Exit(1)));
        assert_eq!(exit_signal("255"), Some(Signal::Exit(255)));
        for not_a_status in ["256", "-1", "+1", "1000", "", "x", "1.0", "stop"] {
            assert_eq!(exit_signal(not_a_status), None, "{not_a_status}");
        }
    }
}
