//! `POST /api/v1/reload` (write token): asks the running keeper to re-read
//! its config file, as SIGHUP does, and answers what happened — 200 with the
//! checks added, removed and kept, 400 with every config error
//! (`file:line:column`, the key, and the text `keeper check-config` prints),
//! 503 when keeper cannot take a new config now. The reload itself is the
//! app's ([`Reloader`] is how a request reaches it).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::auth::Authorized;
use super::{ApiError, AppState};
use crate::config::ConfigErrors;
use crate::engine::Reshaped;

/// What a reload answers.
pub type Reply = Result<Reshaped, Refused>;

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The file does not load, or a check or channel in it cannot be built.
    #[error("invalid config, the running one stays:\n{0}")]
    Invalid(ConfigErrors),
    /// keeper cannot take a new config now (stopping, storage away).
    #[error("reload not done, the running config stays: {0}")]
    Unavailable(String),
}

/// Where reload requests go: the task that runs keeper. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Reloader(mpsc::Sender<oneshot::Sender<Reply>>);

/// The receiving end of [`Reloader`]: each request carries where its answer goes.
pub type Requests = mpsc::Receiver<oneshot::Sender<Reply>>;

impl Reloader {
    pub fn new() -> (Reloader, Requests) {
        let (tx, rx) = mpsc::channel(8);
        (Reloader(tx), rx)
    }

    /// Asks for a reload and waits for its outcome.
    pub async fn reload(&self) -> Reply {
        let gone = || Refused::Unavailable("keeper is stopping".into());
        let (reply, answer) = oneshot::channel();
        self.0.send(reply).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/reload", post(reload))
}

async fn reload(_: Authorized, State(state): State<AppState>) -> Response {
    match state.reloader.reload().await {
        Ok(done) => Json(json!({
            "reloaded": true,
            "added": done.added,
            "removed": done.removed,
            "kept": done.kept,
        }))
        .into_response(),
        Err(Refused::Invalid(errors)) => (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "error": format!("invalid config: {} error(s); the running config stays", errors.0.len()),
                "errors": errors.0.iter().map(|e| json!({
                    "file": e.file.display().to_string(),
                    "line": e.line,
                    "column": e.column,
                    "key": e.key,
                    "message": e.message,
                    "text": e.to_string(),
                })).collect::<Vec<_>>(),
            })),
        )
            .into_response(),
        Err(e @ Refused::Unavailable(_)) => ApiError::unavailable(e.to_string()).into_response(),
    }
}
