//! `POST /ingest/{source}` (DESIGN.md §7): log lines from shippers (Fly's log
//! shipper, Vector's http sink, anything that POSTs NDJSON or text). The
//! source's own token is the credential, as `Authorization: Bearer <token>`
//! or Basic with the token as password (any user): the API token is not
//! needed. Decoding lives in `logs::ingest`; this file is the HTTP side.
//!
//! Answers: 202 `{"accepted": N, "malformed": M}` once the lines are handed
//! to the source (malformed lines are counted and skipped, never fail the
//! request); 404 `{"error": "not found"}` for an unknown source, before any
//! credential is looked at and without reading the body (source names are
//! not secrets, tokens are; a typo in the URL then reads differently from a
//! wrong token); 401 with `WWW-Authenticate` for missing or wrong
//! credentials; 413 past [`BODY_LIMIT`] on the wire or [`DECODED_LIMIT`]
//! once decompressed; 415 for a `Content-Encoding` other than gzip; 400 for
//! a body that is not the gzip it claims to be.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use serde_json::json;

use super::{ApiError, AppState};
use crate::probe::log::ingest::{
    self, BODY_LIMIT, DECODED_LIMIT, DecodeError, Decoded, LineSink, Refusal,
};

/// The challenge sent with a 401: both schemes a shipper may use.
const CHALLENGE: &str = r#"Bearer realm="keeper ingest", Basic realm="keeper ingest""#;

pub fn router() -> Router<AppState> {
    Router::new().route("/ingest/{source}", post(ingest))
}

async fn ingest(
    State(state): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match accept(&state, &source, &headers, body).await {
        Ok((accepted, malformed)) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "accepted": accepted, "malformed": malformed })),
        )
            .into_response(),
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            ([(header::WWW_AUTHENTICATE, CHALLENGE)], e).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Authorizes, reads, decodes and delivers: how many lines were accepted and how many malformed.
async fn accept(
    state: &AppState,
    source: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(usize, usize), ApiError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let sink = state
        .ingest
        .authorize(source, authorization)
        .map_err(|refusal| match refusal {
            Refusal::UnknownSource => ApiError::not_found("not found"),
            Refusal::MissingCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing credentials: send the source's token as Authorization: Bearer <token> \
                 or as the Basic password",
            ),
            Refusal::WrongCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid token for this source")
            }
        })?;
    let encoding = match headers.get(header::CONTENT_ENCODING) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| unsupported("Content-Encoding is not text"))?
                .to_string(),
        ),
        None => None,
    };
    // An unknown encoding is refused before the body is read.
    ingest::gzipped(encoding.as_deref()).map_err(|e| unsupported(&e.to_string()))?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(too_large());
    }
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(body) => body,
        Err(e) => {
            let e = e.into_inner();
            return Err(
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    too_large()
                } else {
                    ApiError::new(StatusCode::BAD_REQUEST, format!("reading the body: {e}"))
                },
            );
        }
    };
    let decoded = state
        .ingest
        .decode(body, encoding, DECODED_LIMIT)
        .await
        .map_err(|e| match e {
            DecodeError::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            DecodeError::UnsupportedEncoding(_) => unsupported(&e.to_string()),
            DecodeError::Gzip(_) => ApiError::new(StatusCode::BAD_REQUEST, e.to_string()),
            DecodeError::Failed(_) => ApiError::internal(e.to_string()),
        })?;
    let (accepted, malformed) = (decoded.lines.len(), decoded.malformed);
    tracing::debug!(source, accepted, malformed, "ingest");
    deliver(state, source, &sink, decoded).await;
    Ok((accepted, malformed))
}

/// Hands decoded lines to the source here, and keeps them for the other
/// instances on the database: their windows count them too.
async fn deliver(state: &AppState, source: &str, sink: &LineSink, decoded: Decoded) {
    let (accepted, malformed) = (decoded.lines.len(), decoded.malformed);
    let shared = (state.events.is_shared() && accepted > 0).then(|| decoded.lines.clone());
    if accepted > 0 || malformed > 0 {
        sink(decoded.lines, malformed);
    }
    if let Some(lines) = shared
        && let Err(e) = state.events.share_lines(source, &lines, Utc::now()).await
    {
        tracing::warn!(source, error = %e, "keeping ingested lines for the other instances");
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the body is larger than {} MiB; send smaller batches",
            BODY_LIMIT / (1024 * 1024)
        ),
    )
}

fn unsupported(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
}
