//! What the probes of JSON APIs (`fly`, `prometheus`) share: a reqwest client
//! built once per check over the system roots, the `Authorization` header made
//! from a configured [`Token`], and one GET that reads at most [`BODY_LIMIT`]
//! bytes, its failures worded for people.
//!
//! Not the `http` probe's machinery: that one times every phase of a fresh
//! connection to measure an endpoint; these poll an API through a pooled client.

use std::error::Error as _;
use std::fmt;

use bytes::Bytes;
use http::HeaderMap;
use http::StatusCode;
use http::header::{AUTHORIZATION, HeaderValue};
use serde::Deserialize;
use url::Url;

use super::tcp::io_reason;
use super::{BuildError, tlsconf};
use crate::core::SpecProblem;

/// The most of an answer read: past it the probe is red, not out of memory.
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// How much of an error body a message quotes.
const EXCERPT_CHARS: usize = 200;

/// A secret from the config (`token = "${FLY_API_TOKEN}"`): never shown, in
/// `Debug` or in messages.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    /// The `Authorization` value: the token as written when it names its
    /// scheme (`Bearer …`, `FlyV1 …`); `FlyV1 <token>` for bare Fly macaroons
    /// (`fm1…`, `fm2_…`, possibly several joined by commas), as flyctl sends
    /// them; `Bearer <token>` otherwise. Marked sensitive. Its problem is
    /// the `token` key's, found at load.
    pub fn authorization(&self) -> Result<HeaderValue, SpecProblem> {
        let token = self.0.trim();
        if token.is_empty() {
            return Err(SpecProblem::new(
                "token",
                "token: empty (is the environment variable it names set?)",
            ));
        }
        let value = if token.starts_with("FlyV1 ") || token.starts_with("Bearer ") {
            token.to_string()
        } else if token
            .split(',')
            .any(|part| part.trim().starts_with("fm1") || part.trim().starts_with("fm2"))
        {
            format!("FlyV1 {token}")
        } else {
            format!("Bearer {token}")
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            SpecProblem::new(
                "token",
                "token: contains characters not allowed in an HTTP header",
            )
        })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// The token as configured, for the one place that compares or sends it
    /// (an ingest source's auth check). Never log or show it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the token replaced by `***`, for
    /// quoting a server that echoes what it was sent.
    pub fn scrub(&self, text: &str) -> String {
        let token = self.0.trim();
        if token.len() < 4 {
            return text.to_string();
        }
        text.replace(token, "***")
    }
}

/// The client of one check: verifies certificates against the system roots,
/// keeps connections to the API open between runs.
pub fn client(roots: &tlsconf::Roots) -> Result<reqwest::Client, BuildError> {
    let tls = roots.verifying_config(&[b"h2", b"http/1.1"])?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(concat!("keeper/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BuildError(format!("building the HTTP client: {e}")))
}

/// An absolute http(s) URL with a host, or the problem with `key` that holds it.
pub fn parse_url(key: &str, raw: &str) -> Result<Url, SpecProblem> {
    let shown = crate::core::redact::url(raw);
    let problem = |e: &dyn fmt::Display| SpecProblem::new(key, format!("{key} {shown:?}: {e}"));
    let url = Url::parse(raw).map_err(|e| problem(&e))?;
    check_url(&url).map_err(|e| problem(&e))?;
    Ok(url)
}

/// Only absolute http(s) URLs with a host can be fetched (also where a
/// redirect leads).
pub fn check_url(url: &Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", url.scheme()));
    }
    if url.host().is_none() {
        return Err("no host".into());
    }
    Ok(())
}

/// `url` with `segments` appended to its path (each percent-encoded).
pub fn join(url: &Url, segments: &[&str]) -> Url {
    let mut url = url.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// `host:port` of `url` (just `host` when the port is the scheme's), for
/// naming the server in a message.
pub fn host_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// An answer as read: its status, its headers and its whole body (at most [`BODY_LIMIT`]).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// GETs `url`. `Err` is a short reason: `connection refused`, `answer larger
/// than 4 MiB`. The caller's deadline bounds it (the probe's `run` is dropped).
pub async fn get(
    client: &reqwest::Client,
    url: &Url,
    authorization: Option<&HeaderValue>,
) -> Result<Reply, String> {
    let mut request = client.get(url.clone());
    if let Some(value) = authorization {
        request = request.header(AUTHORIZATION, value.clone());
    }
    let mut response = request.send().await.map_err(|e| reason(&e))?;
    let status = response.status();
    let headers = response.headers().clone();
    let too_large = || format!("answer larger than {} MiB", BODY_LIMIT / (1024 * 1024));
    if response
        .content_length()
        .is_some_and(|n| n > BODY_LIMIT as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the answer: {}", reason(&e)))?
    {
        if body.len() + chunk.len() > BODY_LIMIT {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Reply {
        status,
        headers,
        body: Bytes::from(body),
    })
}

/// A failed request in a few words: the I/O or TLS error at the bottom of
/// reqwest's chain (`connection refused`, `unknown issuer …`), else the
/// innermost cause (`invalid HTTP version parsed`).
pub fn reason(err: &reqwest::Error) -> String {
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return tlsconf::describe(tls, None);
        }
        if let Some(mut io) = cause.downcast_ref::<std::io::Error>() {
            // The connector wraps I/O errors in I/O errors.
            while let Some(inner) = io
                .get_ref()
                .and_then(|e| e.downcast_ref::<std::io::Error>())
            {
                io = inner;
            }
            if let Some(tls) = tlsconf::rustls_error(io) {
                return tlsconf::describe(tls, None);
            }
            return io_reason(io);
        }
        source = cause.source();
    }
    // reqwest's own words name the URL and its layers ("error sending
    // request for url (…): client error (SendRequest): …"): the innermost
    // cause is what went wrong.
    let mut innermost: &dyn std::error::Error = err;
    while let Some(cause) = innermost.source() {
        innermost = cause;
    }
    innermost.to_string()
}

/// Why a non-2xx answer is bad, for people: `unauthorized: check the token
/// (HTTP 401: …)` or `HTTP 500 Internal Server Error: <excerpt>`. The token
/// is scrubbed from whatever the server said.
pub fn status_reason(status: StatusCode, body: &[u8], token: Option<&Token>) -> String {
    let said = excerpt(body);
    let said = match token {
        Some(token) => token.scrub(&said),
        None => said,
    };
    let code = match status.canonical_reason() {
        Some(words) => format!("HTTP {} {words}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    };
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return if said.is_empty() {
            format!("unauthorized: check the token ({code})")
        } else {
            format!("unauthorized: check the token ({code}: {said})")
        };
    }
    if said.is_empty() {
        code
    } else {
        format!("{code}: {said}")
    }
}

/// What an error body says, short: the `error` field of a JSON object
/// (Fly's and Prometheus's shape), else the text's first characters on one line.
pub fn excerpt(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
    }
    let text = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => e.error,
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    shorten(&text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// At most [`EXCERPT_CHARS`] characters of `text`, with `…` when cut.
pub fn shorten(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(token: &str) -> String {
        Token(token.into())
            .authorization()
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .unwrap_or_else(|e| e.message)
    }

    #[test]
    fn tokens_get_the_scheme_fly_expects() {
        assert_eq!(auth("abc123"), "Bearer abc123");
        assert_eq!(auth("  abc123\n"), "Bearer abc123");
        assert_eq!(auth("Bearer abc123"), "Bearer abc123");
        assert_eq!(auth("FlyV1 fm2_lJPE,fm2_xyz"), "FlyV1 fm2_lJPE,fm2_xyz");
        assert_eq!(auth("fm2_lJPE,fm2_xyz"), "FlyV1 fm2_lJPE,fm2_xyz");
        assert_eq!(auth("fm1r_abc"), "FlyV1 fm1r_abc");
        assert!(auth("").contains("empty"));
        assert!(auth("a\nb").contains("not allowed"));
    }

    #[test]
    fn tokens_never_show() {
        let token = Token("s3cr3t-token".into());
        assert_eq!(format!("{token:?}"), "Token(***)");
        assert_eq!(token.scrub("bad token s3cr3t-token!"), "bad token ***!");
        let reason = status_reason(
            StatusCode::UNAUTHORIZED,
            br#"{"error":"token s3cr3t-token is invalid"}"#,
            Some(&token),
        );
        assert_eq!(
            reason,
            "unauthorized: check the token (HTTP 401 Unauthorized: token *** is invalid)"
        );
    }

    #[test]
    fn error_bodies_are_quoted_short() {
        assert_eq!(
            status_reason(
                StatusCode::BAD_GATEWAY,
                b"<html>\n  bad\n gateway</html>",
                None
            ),
            "HTTP 502 Bad Gateway: <html> bad gateway</html>"
        );
        assert_eq!(
            status_reason(StatusCode::INTERNAL_SERVER_ERROR, b"", None),
            "HTTP 500 Internal Server Error"
        );
        let long = "x".repeat(1000);
        let quoted = excerpt(long.as_bytes());
        assert_eq!(quoted.chars().count(), EXCERPT_CHARS + 1);
        assert!(quoted.ends_with('…'));
    }

    #[test]
    fn paths_are_appended_encoded() {
        let base = Url::parse("https://api.fly.io/prometheus/my-org/").unwrap();
        assert_eq!(
            join(&base, &["api", "v1", "query"]).as_str(),
            "https://api.fly.io/prometheus/my-org/api/v1/query"
        );
        let base = Url::parse("http://127.0.0.1:4280").unwrap();
        assert_eq!(
            join(&base, &["v1", "apps", "a b", "machines"]).as_str(),
            "http://127.0.0.1:4280/v1/apps/a%20b/machines"
        );
        assert!(parse_url("url", "ftp://x/").is_err());
        assert!(parse_url("url", "nonsense").is_err());
    }
}
