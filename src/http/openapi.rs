//! `GET /api/v1/openapi.json`: the API described (src/http/openapi.json, written
//! by hand and held to the router and the handlers by tests/it/openapi.rs).
//! The file describes a keeper with `server.api_token` set; one without
//! serves it with the auth it really has (no token to send).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use super::{ApiError, AppState};

/// The OpenAPI 3.1 document, as shipped in the binary.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(document))
}

async fn document(State(state): State<AppState>) -> Result<Response, ApiError> {
    if state.api_token.is_some() {
        return Ok(([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response());
    }
    let mut doc: Value = serde_json::from_str(DOCUMENT)
        .map_err(|e| ApiError::internal(format!("reading the OpenAPI document: {e}")))?;
    let writes = if super::auth::writes_open(state.listen, false) {
        "This keeper has no server.api_token and listens on loopback: no request needs a token."
            .to_string()
    } else {
        format!(
            "In this keeper {}: every write answers 403.",
            super::auth::closed_reason(state.listen)
        )
    };
    without_token(&mut doc, &writes);
    Ok(Json(doc).into_response())
}

/// The document for a keeper with no `server.api_token`: no operation asks
/// for a token, and the description says what writes do instead.
fn without_token(doc: &mut Value, writes: &str) {
    let operations = doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for op in operations {
        if let Some(security) = op.get_mut("security") {
            *security = serde_json::json!([{}]);
        }
    }
    let description = doc["info"]["description"].as_str().unwrap_or_default();
    doc["info"]["description"] = Value::String(format!("{description} {writes}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_token_no_operation_asks_for_one() {
        let mut doc: Value = serde_json::from_str(DOCUMENT).unwrap();
        let secured = |doc: &Value| {
            doc["paths"]
                .as_object()
                .unwrap()
                .values()
                .flat_map(|item| item.as_object().unwrap().values())
                .filter(|op| op["security"].to_string().contains("bearer"))
                .count()
        };
        assert!(secured(&doc) >= 5, "the shipped document names the token");
        without_token(&mut doc, "No token here.");
        assert_eq!(secured(&doc), 0);
        assert!(
            doc["info"]["description"]
                .as_str()
                .unwrap()
                .ends_with(" No token here.")
        );
    }
}
