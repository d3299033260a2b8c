//! The `webhook` channel: POSTs keeper's own JSON (DESIGN.md §5), one object per notification.
//!
//! Also home of the HTTP delivery rule every webhook-style channel shares
//! ([`post_json`], [`classify_response`]): 2xx is success; 5xx, 408, 429 and
//! network errors are worth retrying; any other 4xx is permanent. Every POST
//! carries the notification's id as `Idempotency-Key` ([`IDEMPOTENCY_KEY`]), the
//! same on every retry, so a receiver can drop a duplicate. URLs may carry
//! secrets, so neither errors nor `Debug` ever show them.
//!
//! With a `secret`, each body is signed: `X-Keeper-Signature: sha256=<hex>`,
//! the HMAC-SHA256 of the exact body bytes under the secret ([`signature`]).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde::Deserialize;
use sha2::Sha256;

use super::{Deliver, Kind, SendError, render};
use crate::core::{Notification, SpecProblem};

/// How long one HTTP delivery may take, connect to last byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an error response's body goes into the error message.
const ERROR_BODY_MAX: usize = 200;
/// How much of an error response's body is read at most, in bytes.
const ERROR_BODY_READ: usize = 4096;

/// The header carrying the notification's id: the same on every attempt.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The header carrying a signed body's HMAC: `sha256=<lowercase hex>`.
pub const SIGNATURE_HEADER: &str = "x-keeper-signature";

/// `[channels.NAME]` keys of kind `webhook`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub url: String,
    /// Extra request headers (an `Authorization` for the receiver, say).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Signs every body (e.g. `secret = "${WEBHOOK_SECRET}"`): the request carries
    /// `X-Keeper-Signature: sha256=<hex>`, the HMAC-SHA256 of the exact body
    /// bytes keyed with this secret. A receiver recomputes it over the raw body
    /// and compares in constant time.
    #[serde(default)]
    pub secret: Option<String>,
}

#[derive(Clone)]
pub struct Webhook {
    http: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    secret: Option<Vec<u8>>,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL and header values may be secrets.
        f.debug_struct("Webhook")
            .field("host", &self.url.host_str())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("signed", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

impl Kind for Spec {
    const NAME: &'static str = "webhook";
    type Channel = Webhook;

    fn problems(&self) -> Vec<SpecProblem> {
        let mut out: Vec<SpecProblem> = url_problem(&self.url).into_iter().collect();
        out.extend(header_problems(&self.headers));
        if self.secret.as_deref() == Some("") {
            out.push(SpecProblem::new("secret", "secret is empty"));
        }
        out
    }

    fn build(&self, http: &reqwest::Client) -> Result<Webhook, String> {
        Webhook::new(self, http.clone())
    }
}

impl Webhook {
    pub fn new(spec: &Spec, http: reqwest::Client) -> Result<Webhook, String> {
        let url = parse_url(&spec.url)?;
        let headers = parse_headers(&spec.headers)?;
        let secret = match &spec.secret {
            Some(s) if s.is_empty() => return Err("secret is empty".to_string()),
            Some(s) => Some(s.as_bytes().to_vec()),
            None => None,
        };
        Ok(Webhook {
            http,
            url,
            headers,
            secret,
        })
    }

    /// POSTs a JSON body, signed when the channel has a secret.
    async fn post_signed(&self, body: Vec<u8>, key: &str) -> Result<(), SendError> {
        match &self.secret {
            None => post_json(&self.http, &self.url, &self.headers, key, body).await,
            Some(secret) => {
                let mut headers = self.headers.clone();
                let value = HeaderValue::from_str(&signature(secret, &body))
                    .map_err(|e| SendError::permanent(format!("signing the body: {e}")))?;
                headers.insert(HeaderName::from_static(SIGNATURE_HEADER), value);
                post_json(&self.http, &self.url, &headers, key, body).await
            }
        }
    }
}

impl Webhook {
    /// POSTs a report's JSON ([`super::report`]), signed like a notification.
    pub(super) async fn post_report(&self, body: Vec<u8>, key: &str) -> Result<(), SendError> {
        self.post_signed(body, key).await
    }
}

impl Deliver for Webhook {
    async fn send(&self, n: &Notification, key: &str) -> Result<(), SendError> {
        let body = render::webhook_body(n)
            .map_err(|e| SendError::permanent(format!("encoding the notification: {e}")))?;
        self.post_signed(body, key).await
    }

    /// A grouped send: one JSON array of the notifications.
    async fn send_group(&self, ns: &[Notification], key: &str) -> Result<(), SendError> {
        let body = serde_json::to_vec(ns)
            .map_err(|e| SendError::permanent(format!("encoding the notifications: {e}")))?;
        self.post_signed(body, key).await
    }
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` keyed with `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length; the error arm cannot happen.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Config `headers` as a [`HeaderMap`], values marked sensitive. Errors name
/// the header, never its value.
pub(crate) fn parse_headers(raw: &BTreeMap<String, String>) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for (name, value) in raw {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value for header {name:?}"))?;
        value.set_sensitive(true);
        headers.insert(header, value);
    }
    Ok(headers)
}

/// The problem with a channel's `url`, found at load by the rule [`parse_url`] applies.
pub(crate) fn url_problem(raw: &str) -> Option<SpecProblem> {
    parse_url(raw).err().map(|e| SpecProblem::new("url", e))
}

/// The problem of each config header [`parse_headers`] would refuse, at its key.
pub(crate) fn header_problems(raw: &BTreeMap<String, String>) -> Vec<SpecProblem> {
    raw.iter()
        .filter_map(|(name, value)| {
            let one = BTreeMap::from([(name.clone(), value.clone())]);
            let e = parse_headers(&one).err()?;
            Some(SpecProblem::new(format!("headers.{name}"), e))
        })
        .collect()
}

/// Parses a channel URL, accepting only http and https. The error never repeats
/// the URL: it may carry a secret.
pub(crate) fn parse_url(raw: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(raw).map_err(|e| format!("invalid url: {e}"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!(
            "invalid url: scheme {other:?}, expected http or https"
        )),
    }
}

/// POSTs `body` as JSON with `headers`, idempotency `key` and
/// [`REQUEST_TIMEOUT`], and classifies the answer.
pub(crate) async fn post_json(
    http: &reqwest::Client,
    url: &reqwest::Url,
    headers: &HeaderMap,
    key: &str,
    body: Vec<u8>,
) -> Result<(), SendError> {
    post(http, url, headers, "application/json", key, body).await
}

/// POSTs `body` of `content_type` with `headers`, `Idempotency-Key: key` and
/// [`REQUEST_TIMEOUT`], and classifies the answer ([`classify_response`]).
pub(crate) async fn post(
    http: &reqwest::Client,
    url: &reqwest::Url,
    headers: &HeaderMap,
    content_type: &'static str,
    key: &str,
    body: Vec<u8>,
) -> Result<(), SendError> {
    let response = http
        .post(url.clone())
        .headers(headers.clone())
        .header(CONTENT_TYPE, content_type)
        .header(IDEMPOTENCY_KEY, key)
        .timeout(REQUEST_TIMEOUT)
        .body(body)
        .send()
        .await
        .map_err(|e| SendError::transient(describe(e)))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, Utc::now()));
    // The body matters only on failure, and only a little of it.
    let text = if status.is_success() {
        String::new()
    } else {
        read_prefix(response, ERROR_BODY_READ).await
    };
    classify_response(status, retry_after, &text)
}

/// At most `max` bytes of a response body, as lossy UTF-8 (a receiver's error
/// page may be huge; only its start goes into the message).
async fn read_prefix(mut response: reqwest::Response, max: usize) -> String {
    let mut buf = Vec::new();
    while buf.len() < max {
        match response.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    buf.truncate(max);
    String::from_utf8_lossy(&buf).into_owned()
}

/// The delivery rule: 2xx success; 429 retry (after `retry_after` when given);
/// 408 and 5xx retry; any other status permanent (the receiver refused this
/// notification and will refuse it again). `body` goes into the error message.
pub(crate) fn classify_response(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &str,
) -> Result<(), SendError> {
    if status.is_success() {
        return Ok(());
    }
    let body = render::truncate(body.trim(), ERROR_BODY_MAX);
    let message = if body.is_empty() {
        format!("receiver answered {status}")
    } else {
        format!("receiver answered {status}: {body}")
    };
    if status == StatusCode::TOO_MANY_REQUESTS {
        let mut e = SendError::transient(message);
        e.retry_after = retry_after;
        Err(e)
    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        Err(SendError::transient(message))
    } else {
        Err(SendError::permanent(message))
    }
}

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// A transport error without its URL, with its causes.
fn describe(e: reqwest::Error) -> String {
    let what = if e.is_timeout() {
        format!("timed out after {}s", REQUEST_TIMEOUT.as_secs())
    } else if e.is_connect() {
        "connecting failed".to_string()
    } else {
        "request failed".to_string()
    };
    let e = e.without_url();
    let mut out = what;
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn statuses() {
        let cases = [
            (200, true, false),
            (202, true, false),
            (204, true, false),
            (400, false, true),
            (401, false, true),
            (404, false, true),
            (408, false, false),
            (422, false, true),
            (410, false, true),
            (429, false, false),
            (500, false, false),
            (502, false, false),
            (503, false, false),
            (301, false, true),
        ];
        for (code, ok, permanent) in cases {
            let status = StatusCode::from_u16(code).unwrap();
            match classify_response(status, None, "") {
                Ok(()) => assert!(ok, "{code} should fail"),
                Err(e) => {
                    assert!(!ok, "{code} should succeed");
                    assert_eq!(e.permanent, permanent, "{code}");
                }
            }
        }
    }

    #[test]
    fn error_message_carries_the_body() {
        let e = classify_response(StatusCode::NOT_FOUND, None, " channel_not_found\n").unwrap_err();
        assert_eq!(
            e.message,
            "receiver answered 404 Not Found: channel_not_found"
        );
        let e = classify_response(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(7)),
            "",
        )
        .unwrap_err();
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        assert!(!e.permanent);
    }

    #[test]
    fn retry_after_forms() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap();
        let cases = [
            ("7", Some(7)),
            (" 120 ", Some(120)),
            ("Wed, 21 Oct 2015 07:28:30 GMT", Some(30)),
            ("Wed, 21 Oct 2015 07:27:00 GMT", Some(0)),
            ("soon", None),
            ("-3", None),
        ];
        for (value, want) in cases {
            assert_eq!(
                parse_retry_after(value, now),
                want.map(Duration::from_secs),
                "{value:?}"
            );
        }
    }

    #[test]
    fn bad_config_is_refused_without_echoing_secrets() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let spec = |url: &str, headers: &[(&str, &str)]| Spec {
            url: url.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            secret: None,
        };
        let e = Webhook::new(&spec("ftp://secret@x/", &[]), http.clone()).unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        let e = Webhook::new(&spec("not a url", &[]), http.clone()).unwrap_err();
        assert!(e.starts_with("invalid url"), "{e}");
        let e = Webhook::new(&spec("http://x/", &[("bad name", "v")]), http.clone()).unwrap_err();
        assert!(e.contains("bad name"), "{e}");
        let e =
            Webhook::new(&spec("http://x/", &[("X-Token", "sec\nret")]), http.clone()).unwrap_err();
        assert!(!e.contains("sec"), "{e}");
        let ok = Webhook::new(&spec("http://x/", &[("X-Token", "secret")]), http.clone()).unwrap();
        assert!(!format!("{ok:?}").contains("secret"));
        let mut signed = spec("http://x/", &[]);
        signed.secret = Some("hush-hush".into());
        let ok = Webhook::new(&signed, http.clone()).unwrap();
        assert!(!format!("{ok:?}").contains("hush"), "{ok:?}");
        signed.secret = Some(String::new());
        let e = Webhook::new(&signed, http).unwrap_err();
        assert_eq!(e, "secret is empty");
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
