//! keeper's one HTTP listener (DESIGN.md §7): metrics, liveness and readiness,
//! the JSON API, the status page and badges, heartbeat pings and log ingest. Routing and shared state
//! here; handlers in their files.

mod api;
mod auth;
mod cluster;
mod deployments;
mod error;
mod incidents;
mod ingest;
mod openapi;
pub mod page;
mod ping;
pub mod reload;
pub mod serve;
mod silences;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

pub use error::ApiError;
/// The API body readers, for the fuzz target `api_bodies`.
#[doc(hidden)]
pub use incidents::read_ack;
#[doc(hidden)]
pub use silences::read_silence;

use crate::engine::{Board, EngineHandle};
use crate::metrics::Metrics;
use crate::store::Store;

/// The largest request body accepted (API bodies are small JSON; pings and
/// ingest read their bodies with limits of their own).
const BODY_LIMIT: usize = 64 * 1024;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub board: Board,
    pub metrics: Metrics,
    pub store: Store,
    /// The same database on connections of its own ([`Store::reader`]): every
    /// read handler uses it, so requests cannot starve the engine's commits.
    pub reads: Store,
    /// Uptime per check, kept in memory as samples are stored.
    pub uptime: crate::store::uptime::UptimeBook,
    /// Incident changes (acknowledgements) go through the engine, which owns incidents.
    pub engine: EngineHandle,
    /// `server.api_token`: write endpoints need `Authorization: Bearer` with it when set.
    pub api_token: Option<Arc<str>>,
    /// The address listened on: beyond loopback, writes need `api_token`.
    pub listen: SocketAddr,
    /// Set once the scheduler runs; cleared when shutting down.
    pub scheduler_running: Arc<AtomicBool>,
    /// Set when a task keeper cannot run without ended unexpectedly: which, and why.
    pub task_died: Arc<std::sync::OnceLock<String>>,
    /// Heartbeat tokens and signals: `/ping/{token}` records into it.
    pub heartbeats: crate::probe::heartbeat::Registry,
    /// Log ingest sources: `/ingest/{source}` delivers into it.
    pub ingest: crate::probe::log::ingest::Registry,
    /// The status page's settings and the history it shows.
    pub page: Arc<page::Settings>,
    /// The instances sharing the database and who owns which check.
    pub cluster: crate::cluster::View,
    /// Where `POST /api/v1/reload` asks for the config to be read again.
    pub reloader: reload::Reloader,
    /// What changes here is told to the other instances on the database.
    pub events: crate::store::events::Bus,
}

pub fn router(state: AppState) -> Router {
    if !auth::writes_open(state.listen, state.api_token.is_some()) {
        tracing::warn!(
            "{}: API writes answer 403 until it is set; reads stay open",
            auth::closed_reason(state.listen)
        );
    }
    let guard = axum::middleware::from_fn_with_state(state.clone(), auth::guard_writes);
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .nest(
            "/api/v1",
            api::router()
                .merge(incidents::router())
                .merge(silences::router())
                .merge(deployments::router())
                .merge(cluster::router())
                .merge(reload::router())
                .merge(openapi::router())
                .route_layer(guard),
        )
        .merge(page::router())
        .merge(ping::router())
        .merge(ingest::router())
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Streamed a piece at a time ([`crate::metrics::Metrics::exposition`]).
async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let pieces = state
        .metrics
        .exposition()
        .map_err(|e| ApiError::internal(format!("rendering metrics: {e}")))?;
    let body = axum::body::Body::from_stream(futures_util::stream::iter(
        pieces.map(Ok::<_, std::convert::Infallible>),
    ));
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
    if let Some(died) = state.task_died.get() {
        return Err(ApiError::unavailable(format!("stopping: {died}")));
    }
    if !state.scheduler_running.load(Ordering::Acquire) {
        return Err(ApiError::unavailable("scheduler not running"));
    }
    match tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok("ready\n"),
        Ok(Err(e)) => Err(ApiError::unavailable(format!("storage unreachable: {e}"))),
        Err(_) => Err(ApiError::unavailable("storage did not answer within 2s")),
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this path",
    )
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such path")
}
