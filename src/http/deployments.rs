//! Deployments over the API: `POST /api/v1/deployments` records one
//! (`{"app", "version", "description", "by", "at"}`; the write token and a
//! JSON body, as every write) and tells the engine, which watches the app's
//! checks closely for a while; `GET /api/v1/deployments?app=&since=&limit=`
//! lists them, newest first.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::auth::Authorized;
use super::{ApiError, AppState};
use crate::core::deployment::{Deployment, NewDeployment};
use crate::core::text::{MAX_TEXT, NAME_MAX};
use crate::store::events::Event;

pub fn router() -> Router<AppState> {
    Router::new().route("/deployments", get(list).post(create))
}

/// `POST /api/v1/deployments` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeploymentBody {
    app: String,
    version: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    by: String,
    at: Option<DateTime<Utc>>,
}

/// How far ahead of keeper's clock `at` may be (clock skew, not planning).
const MAX_AHEAD: chrono::Duration = chrono::Duration::hours(1);
/// How far back `at` may be: older is a typo (and beyond raw samples anyway).
const MAX_BEHIND: chrono::Duration = chrono::Duration::days(400);
/// How far back the list looks without `since`.
const LIST_DEFAULT_SINCE: chrono::Duration = chrono::Duration::days(30);
/// The most deployments one request lists (and the default).
const LIST_MAX: u32 = 1000;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// A `POST /api/v1/deployments` body read and checked against the clock,
/// into a deployment to record. Text is refused, not cut: a deployment's
/// app and version are matched and quoted, so a changed one would mislead.
fn read_deployment(body: &[u8], now: DateTime<Utc>) -> Result<NewDeployment, ApiError> {
    let body: DeploymentBody =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))?;
    let app = name("app", &body.app, true)?;
    let version = name("version", &body.version, true)?;
    let by = name("by", &body.by, false)?;
    if body.description.len() > MAX_TEXT {
        return Err(bad(format!(
            "description: {} bytes, at most {MAX_TEXT}",
            body.description.len()
        )));
    }
    let at = body.at.unwrap_or(now);
    if at > now + MAX_AHEAD {
        return Err(bad(format!("at {at} is more than an hour ahead")));
    }
    if at < now - MAX_BEHIND {
        return Err(bad(format!("at {at} is more than 400 days ago")));
    }
    Ok(NewDeployment {
        app,
        version,
        description: crate::core::text::clean(body.description.trim()).into_owned(),
        by,
        at,
    })
}

/// One of the short fields, trimmed: at most [`NAME_MAX`] bytes, one line,
/// and not empty when `required`.
fn name(key: &str, value: &str, required: bool) -> Result<String, ApiError> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(bad(format!("{key}: must not be empty")));
    }
    if value.len() > NAME_MAX {
        return Err(bad(format!(
            "{key}: {} bytes, at most {NAME_MAX}",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(bad(format!("{key}: control characters are not allowed")));
    }
    Ok(value.to_string())
}

async fn create(
    _: Authorized,
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Deployment>), ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let new = read_deployment(&body, Utc::now())?;
    let deployment = state
        .store
        .record_deployment(&new)
        .await
        .map_err(|e| ApiError::unavailable(format!("recording the deployment: {e}")))?;
    tracing::info!(app = %deployment.app, version = %deployment.version, by = %deployment.by, id = deployment.id, "deployment recorded");
    state.engine.deployed(deployment.clone()).await;
    (state.events).publish(Event::Deployed(deployment.id)).await;
    Ok((StatusCode::CREATED, Json(deployment)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    app: Option<String>,
    /// RFC 3339; default 30 days ago.
    since: Option<DateTime<Utc>>,
    /// Default and maximum [`LIST_MAX`].
    limit: Option<u32>,
}

async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<Deployment>>, ApiError> {
    let Query(query) = query.map_err(|e| bad(e.body_text()))?;
    let now = Utc::now();
    let since = query.since.unwrap_or(now - LIST_DEFAULT_SINCE);
    let limit = query.limit.unwrap_or(LIST_MAX).clamp(1, LIST_MAX);
    let app = query
        .app
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty());
    // No recorded app has a control character (see `name`), so none is
    // listed; asking the database would send PostgreSQL a NUL it refuses
    // (a 503 for a question with a plain answer).
    if app.is_some_and(|a| a.chars().any(char::is_control)) {
        return Ok(Json(Vec::new()));
    }
    // Up to a little ahead: a deployment may carry an `at` from a clock ahead of ours.
    let deployments = state
        .reads
        .deployments(app, since, now + MAX_AHEAD, limit)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(deployments))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 6, 0, 0).unwrap()
    }

    fn read(body: serde_json::Value) -> Result<NewDeployment, String> {
        read_deployment(body.to_string().as_bytes(), now()).map_err(|e| e.message)
    }

    #[test]
    fn a_full_body_is_read_and_trimmed() {
        let d = read(serde_json::json!({
            "app": " web ", "version": "v42", "description": "fix login\n", "by": "ci",
            "at": "2026-11-30T05:57:00Z"
        }))
        .unwrap();
        assert_eq!(d.app, "web");
        assert_eq!(d.version, "v42");
        assert_eq!(d.description, "fix login");
        assert_eq!(d.by, "ci");
        assert_eq!(d.at, Utc.with_ymd_and_hms(2026, 11, 30, 5, 57, 0).unwrap());
    }

    #[test]
    fn description_by_and_at_are_optional() {
        let d = read(serde_json::json!({"app": "web", "version": "v1"})).unwrap();
        assert_eq!((d.description.as_str(), d.by.as_str()), ("", ""));
        assert_eq!(d.at, now());
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let long = "x".repeat(NAME_MAX + 1);
        let cases = [
            (
                serde_json::json!({"app": "", "version": "v1"}),
                "app: must not be empty",
            ),
            (
                serde_json::json!({"app": "web", "version": "  "}),
                "version: must not be empty",
            ),
            (serde_json::json!({"version": "v1"}), "missing field `app`"),
            (
                serde_json::json!({"app": "web", "version": "v1", "bogus": 1}),
                "unknown field `bogus`",
            ),
            (
                serde_json::json!({"app": long, "version": "v1"}),
                "app: 201 bytes, at most 200",
            ),
            (
                serde_json::json!({"app": "web", "version": "v\u{0}1"}),
                "version: control characters",
            ),
            (
                serde_json::json!({"app": "web", "version": "v1", "by": "a\nb"}),
                "by: control characters",
            ),
            (
                serde_json::json!({"app": "web", "version": "v1", "description": "d".repeat(MAX_TEXT + 1)}),
                "description: 4097 bytes",
            ),
            (
                serde_json::json!({"app": "web", "version": "v1", "at": "2026-11-30T08:00:00Z"}),
                "more than an hour ahead",
            ),
            (
                serde_json::json!({"app": "web", "version": "v1", "at": "2024-01-01T00:00:00Z"}),
                "more than 400 days ago",
            ),
            (
                serde_json::json!({"app": "web", "version": "v1", "at": "yesterday"}),
                "invalid JSON body",
            ),
            (
                serde_json::json!({"app": 7, "version": "v1"}),
                "invalid type",
            ),
        ];
        for (body, want) in cases {
            let got = read(body.clone()).expect_err(&body.to_string());
            assert!(got.contains(want), "{body}: {got}");
        }
    }
}
