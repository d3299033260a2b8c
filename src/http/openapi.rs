//! `GET /api/v1/openapi.json`: the API described (src/http/openapi.json, written
//! by hand and held to the router and the handlers by tests/it/openapi.rs).

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

/// The OpenAPI 3.1 document, as shipped in the binary.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(document))
}

async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
