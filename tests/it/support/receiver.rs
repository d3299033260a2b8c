//! A loopback HTTP receiver for webhook-style channels: records every request
//! (method, path, headers, body) and answers what the test says — a default
//! reply ([`Receiver::set_response`]) after any queued one-shot replies
//! ([`Receiver::push_response`]).
//!
//! ```ignore
//! let rx = Receiver::start().await;
//! rx.push_response(Reply::status(500));   // first request
//! // … point a channel at rx.url() …
//! let bodies = rx.wait_for_json(1, Duration::from_secs(5)).await;
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::recorded::Recorded;

/// What the receiver answers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            body: String::new(),
            headers: Vec::new(),
        }
    }

    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.to_string();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

#[derive(Debug)]
struct Shared {
    requests: Vec<Recorded>,
    queued: VecDeque<Reply>,
    default: Reply,
}

/// The running receiver; stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Receiver {
    /// Listens on a free 127.0.0.1 port, answering `200 ok` until told otherwise.
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the receiver to 127.0.0.1");
        let addr = listener.local_addr().expect("receiver's local address");
        let shared = Arc::new(Mutex::new(Shared {
            requests: Vec::new(),
            queued: VecDeque::new(),
            default: Reply::status(200).body("ok"),
        }));
        let app = Router::new().fallback(record).with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("receiver on {addr} stopped: {e}");
            }
        });
        Receiver {
            addr,
            shared,
            server,
        }
    }

    /// `http://127.0.0.1:PORT/hook`.
    pub fn url(&self) -> String {
        self.url_for("/hook")
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answer every later request with `status` and `body` (after queued replies).
    pub fn set_response(&self, status: u16, body: &str) {
        self.set_reply(Reply::status(status).body(body));
    }

    /// Answer every later request with `reply` (after queued replies).
    pub fn set_reply(&self, reply: Reply) {
        self.lock().default = reply;
    }

    /// Answer the next request not yet answered by a queued reply with `reply`, once.
    pub fn push_response(&self, reply: Reply) {
        self.lock().queued.push_back(reply);
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Every request body so far, parsed as JSON.
    pub fn json_bodies(&self) -> Vec<serde_json::Value> {
        self.requests().iter().map(Recorded::json).collect()
    }

    /// Waits until at least `n` requests arrived; returns all of them.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let what = format!("the receiver on {} gets {n} request(s)", self.addr);
        super::wait_until(&what, timeout, || async { self.lock().requests.len() >= n }).await;
        self.requests()
    }

    /// Waits until at least `n` requests arrived; returns their bodies as JSON.
    pub async fn wait_for_json(&self, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        self.wait_for_requests(n, timeout)
            .await
            .iter()
            .map(Recorded::json)
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panicking test thread must not hide the requests from the others.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn record(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
        let reply = match s.queued.pop_front() {
            Some(r) => r,
            None => s.default.clone(),
        };
        s.requests.push(Recorded {
            method,
            path: uri
                .path_and_query()
                .map_or_else(|| uri.path().to_string(), ToString::to_string),
            headers,
            body,
            replied: reply.status,
        });
        reply
    };
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, reply.body).into_response();
    for (name, value) in &reply.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(n, v);
        }
    }
    response
}
