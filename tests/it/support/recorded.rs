//! One request as a test server saw it: the [`Receiver`](super::receiver::Receiver)
//! channels post to and the [`Target`](super::target::Target) probes fetch
//! record the same [`Recorded`].

use axum::body::Bytes;
use axum::http::{HeaderMap, Method};

/// One request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    /// Path and query, e.g. `/hook?x=1`.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status the server answered with: 2xx means delivered.
    pub replied: u16,
}

impl Recorded {
    /// A header's value as text (the first, when repeated), if present; any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON; panics (naming the body) when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "request body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}
