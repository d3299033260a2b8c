//! Who may write through the API. Every POST under `/api/v1`, and any other
//! write (a method other than GET, HEAD or OPTIONS) that names a body type,
//! needs `Content-Type: application/json`, so a web page cannot send one
//! without a CORS preflight; writes are closed when
//! keeper listens beyond loopback without `server.api_token`; and with a
//! token, `Authorization: Bearer <server.api_token>`, compared in constant time.

use std::net::SocketAddr;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::core::redact::same_secret;

/// Present in a handler's arguments: the request carried the API token (or none is set).
pub struct Authorized;

impl FromRequestParts<AppState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = &state.api_token else {
            return Ok(Authorized);
        };
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing Authorization: Bearer token",
                )
            })?;
        if same_secret(expected.as_bytes(), given.trim().as_bytes()) {
            Ok(Authorized)
        } else {
            Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid API token"))
        }
    }
}

/// Whether a request may see secrets: it carries the API token, or none is
/// set and keeper listens on loopback only.
pub fn carries_api_token(headers: &HeaderMap, state: &AppState) -> bool {
    let Some(expected) = &state.api_token else {
        return writes_open(state.listen, false);
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| same_secret(expected.as_bytes(), given.trim().as_bytes()))
}

/// Whether writes may be made at all: with a token, or on a loopback address
/// (where only this machine reaches the port).
pub fn writes_open(listen: SocketAddr, has_token: bool) -> bool {
    has_token || listen.ip().to_canonical().is_loopback()
}

/// In front of every `/api/v1` route: writes answer 403 when closed (see
/// [`writes_open`]) and 415 for a type other than JSON (or none on a POST);
/// reads pass.
pub async fn guard_writes(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    if !writes_open(state.listen, state.api_token.is_some()) {
        return ApiError::new(StatusCode::FORBIDDEN, closed_reason(state.listen)).into_response();
    }
    // POST is the one write a web page may send without a CORS preflight, so
    // it must say JSON; other methods always need a preflight, and may come
    // without a body and a type (`DELETE`), but not with another type.
    let typed = request.headers().contains_key(header::CONTENT_TYPE);
    if (typed || request.method() == Method::POST) && !is_json(request.headers()) {
        let given = request
            .headers()
            .get(header::CONTENT_TYPE)
            .map_or("none".into(), |v| {
                format!("{:?}", String::from_utf8_lossy(v.as_bytes()))
            });
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("write requests need Content-Type: application/json (got {given})"),
        )
        .into_response();
    }
    next.run(request).await
}

/// Why writes are closed, for the 403 and the start-up warning.
pub fn closed_reason(listen: SocketAddr) -> String {
    format!(
        "writes are closed: keeper listens on {listen}, beyond loopback, and server.api_token is not set"
    )
}

/// `Content-Type: application/json`, parameters (`; charset=utf-8`) allowed.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    use super::{is_json, writes_open};
    use crate::core::redact::same_secret as constant_time_eq;

    #[test]
    fn compares_whole_tokens() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn only_json_content_types_pass() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            is_json(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(!with("text/plain"));
        assert!(!with("application/json-seq"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!with("multipart/form-data; boundary=x"));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn writes_are_open_on_loopback_or_with_a_token() {
        let open = |addr: &str, token| writes_open(addr.parse().unwrap(), token);
        assert!(open("127.0.0.1:9400", false));
        assert!(open("127.0.0.2:9400", false));
        assert!(open("[::1]:9400", false));
        assert!(open("[::ffff:127.0.0.1]:9400", false));
        assert!(!open("0.0.0.0:9400", false));
        assert!(!open("[::]:9400", false));
        assert!(!open("10.0.0.5:9400", false));
        assert!(open("0.0.0.0:9400", true));
    }
}
