//! keeper's one HTTP listener (DESIGN.md §7): metrics, liveness and readiness,
//! and the JSON API. Routing and shared state here; handlers in their files.

mod api;
mod error;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

pub use error::ApiError;

use crate::engine::Board;
use crate::metrics::Metrics;
use crate::store::Store;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub board: Board,
    pub metrics: Metrics,
    pub store: Store,
    /// Set once the scheduler runs; cleared when shutting down.
    pub scheduler_running: Arc<AtomicBool>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .nest("/api/v1", api::router())
        .fallback(not_found)
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let body = state
        .metrics
        .render()
        .map_err(|e| ApiError::internal(format!("rendering metrics: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    ))
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the database answers and the scheduler runs.
async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    if !state.scheduler_running.load(Ordering::Acquire) {
        return Err(ApiError::unavailable("scheduler not running"));
    }
    match tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok("ready\n"),
        Ok(Err(e)) => Err(ApiError::unavailable(format!("storage unreachable: {e}"))),
        Err(_) => Err(ApiError::unavailable("storage did not answer within 2s")),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such path")
}
