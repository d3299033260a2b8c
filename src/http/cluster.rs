//! `GET /api/v1/cluster`: which instances share the database, which is
//! alive, and which owns each check (DESIGN.md §11; `crate::cluster`).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::AppState;
use crate::cluster::Snapshot;

pub fn router() -> Router<AppState> {
    Router::new().route("/cluster", get(cluster))
}

async fn cluster(State(state): State<AppState>) -> Json<Snapshot> {
    Json(state.cluster.snapshot())
}
