//! The wire side of an `http` hop: one HTTP/1.1 connection ([`Conn`]), the
//! request sent over it, the response head and body read, first byte and
//! transfer timed.
//!
//! hyper's connection is driven in the probe's own task, only while a
//! request is in flight ([`drive`]): no task is spawned per connection.
//! Between the runs of a `keepalive` check only the stream is kept
//! ([`Idle`]): hyper's buffers and request channel (about 25 kB) are
//! dropped after each response and made anew for the next request.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::Request;
use http::header::{CONTENT_LENGTH, LOCATION};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, timeout_at};

use super::{BODY_LIMIT, Response, Run, add};
use crate::probe::tcp;

/// A stream an HTTP/1.1 connection runs over: TCP, or TLS over TCP.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// hyper's side of a connection: reads and writes the socket when polled.
type Driver = Box<Connection<TokioIo<Box<dyn Io>>, Full<Bytes>>>;

/// One HTTP/1.1 connection to `addr`.
pub(super) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// `None` once the connection has ended.
    driver: Option<Driver>,
    pub addr: SocketAddr,
}

/// A connection between two requests: its stream alone.
pub(super) struct Idle {
    io: Box<dyn Io>,
    addr: SocketAddr,
}

/// Why a hop failed: the reason for people, and whether it failed on the
/// way in — the connection was closed or reset before any response came —
/// which a reused connection retries once on a new one.
pub(super) struct Failure {
    pub reason: String,
    pub before_response: bool,
}

impl Failure {
    fn plain(reason: String) -> Failure {
        Failure {
            reason,
            before_response: false,
        }
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("addr", &self.addr).finish()
    }
}

impl Conn {
    /// Starts HTTP/1.1 over a connected (and, for https, handshaken) stream.
    pub async fn handshake(io: impl Io, addr: SocketAddr) -> Result<Conn, String> {
        Conn::over(Box::new(io), addr).await
    }

    async fn over(io: Box<dyn Io>, addr: SocketAddr) -> Result<Conn, String> {
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| hyper_reason(&e, "request to", addr))?;
        Ok(Conn {
            sender,
            driver: Some(Box::new(connection)),
            addr,
        })
    }

    /// The stream, ready for another request, once a response was read
    /// whole; `None` when the connection ended or holds bytes past the
    /// response. Never waits.
    pub fn into_idle(self) -> Option<Idle> {
        // hyper's side ends with the response that said `Connection: close`
        // (HTTP/1.0 without keep-alive, a close or a reset alike): the poll
        // that delivers the body's end finds the connection done.
        let mut driver = self.driver?;
        // With its sender gone and no request in flight, it finishes at
        // once, leaving the stream open. Polled with a waker that does
        // nothing, it also leaves the stream holding that waker instead of
        // the run's: without this poll 1,000 idle streams held 5 MB more,
        // most likely their finished runs' tasks.
        drop(self.sender);
        let mut cx = Context::from_waker(Waker::noop());
        if !matches!(driver.poll_without_shutdown(&mut cx), Poll::Ready(Ok(()))) {
            return None;
        }
        let parts = driver.into_parts();
        parts.read_buf.is_empty().then(|| Idle {
            io: parts.io.into_inner(),
            addr: self.addr,
        })
    }

    /// Sends `request` and reads the response, timing first byte and transfer.
    pub async fn exchange(
        &mut self,
        request: Request<Full<Bytes>>,
        run: &mut Run,
    ) -> Result<Response, Failure> {
        let addr = self.addr;
        let started = Instant::now();
        let (sender, driver) = (&mut self.sender, &mut self.driver);
        let sending = async {
            poll_fn(|cx| sender.poll_ready(cx)).await?;
            sender.send_request(request).await
        };
        let head = match timeout_at(run.deadline, drive(driver, sending)).await {
            Err(_) => return Err(Failure::plain(run.timed_out("waiting for the response"))),
            Ok(Err(e)) => {
                return Err(Failure {
                    before_response: !(e.is_parse()
                        || e.is_parse_status()
                        || e.is_parse_too_large()),
                    reason: hyper_reason(&e, "request to", addr),
                });
            }
            Ok(Ok(head)) => head,
        };
        add(&mut run.phases.first_byte, Some(started.elapsed()));
        let started = Instant::now();
        let status = head.status();
        let (version, content_length) =
            (version_of(head.version()), content_length(head.headers()));
        let location = head
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut response = Response {
            status,
            location,
            body: Bytes::new(),
            truncated: false,
            version,
            content_length,
            read_whole: false,
        };
        if response.location.is_some() && status.is_redirection() {
            // Redirect bodies are not read: the connection ends with this hop.
            add(&mut run.phases.transfer, Some(started.elapsed()));
            return Ok(response);
        }
        let reading = read_body(head.into_body(), addr);
        let (body, truncated) =
            match timeout_at(run.deadline, drive(&mut self.driver, reading)).await {
                Err(_) => return Err(Failure::plain(run.timed_out("reading the body"))),
                Ok(Err(reason)) => return Err(Failure::plain(reason)),
                Ok(Ok(read)) => read,
            };
        add(&mut run.phases.transfer, Some(started.elapsed()));
        response.body = body;
        response.truncated = truncated;
        response.read_whole = !truncated;
        Ok(response)
    }
}

impl Idle {
    /// Whether the peer closed, reset or wrote to the connection while it
    /// waited: looks once at what already arrived, never waits.
    pub fn has_ended(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        let mut byte = [0u8; 1];
        let mut unread = ReadBuf::new(&mut byte);
        // Pending: nothing arrived, the connection is as it was left. An
        // end of stream, an error or bytes nobody asked for all end it.
        Pin::new(&mut self.io)
            .poll_read(&mut cx, &mut unread)
            .is_ready()
    }

    /// HTTP/1.1 again over the stream, for the next request.
    pub async fn resume(self) -> Result<Conn, String> {
        Conn::over(self.io, self.addr).await
    }
}

/// Runs `fut` to its end while polling the connection that feeds it. When
/// the connection ends first it is dropped, which ends whatever `fut` waits
/// for on it with an error.
async fn drive<F: Future>(driver: &mut Option<Driver>, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        let Some(connection) = driver.as_mut() else {
            return Poll::Pending;
        };
        if Pin::new(&mut **connection).poll(cx).is_pending() {
            return Poll::Pending;
        }
        *driver = None;
        fut.as_mut().poll(cx)
    })
    .await
}

/// The body, up to [`BODY_LIMIT`]; `true` when more followed.
async fn read_body(
    mut body: hyper::body::Incoming,
    addr: SocketAddr,
) -> Result<(Bytes, bool), String> {
    // The usual small body arrives in one frame: kept as it came, not copied.
    let mut first: Option<Bytes> = None;
    let mut read: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| hyper_reason(&e, "reading the body from", addr))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if first.is_none() && read.is_empty() && data.len() <= BODY_LIMIT {
            first = Some(data);
            continue;
        }
        if let Some(earlier) = first.take() {
            read.extend_from_slice(&earlier);
        }
        let room = BODY_LIMIT - read.len();
        if data.len() > room {
            read.extend_from_slice(&data[..room]);
            return Ok((Bytes::from(read), true));
        }
        read.extend_from_slice(&data);
    }
    Ok((first.unwrap_or_else(|| Bytes::from(read)), false))
}

/// A hyper error in a few words, saying what was being done with whom:
/// `request to 127.0.0.1:8080: connection reset by peer`.
fn hyper_reason(err: &hyper::Error, doing: &str, addr: SocketAddr) -> String {
    if err.is_parse() || err.is_parse_status() || err.is_parse_too_large() {
        return format!("invalid HTTP response from {addr}: {err}");
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return format!("{doing} {addr}: {}", tcp::io_reason(io));
        }
        source = cause.source();
    }
    if err.is_incomplete_message() || err.is_canceled() {
        return format!("{doing} {addr}: connection closed before a complete response");
    }
    format!("{doing} {addr}: {err}")
}

/// Go's `resp.ContentLength`, as blackbox_exporter reports it: -1 when undeclared.
fn content_length(headers: &http::HeaderMap) -> i64 {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<i64>().ok())
        .unwrap_or(-1)
}

/// An HTTP version as (major, minor): HTTP/1.1 is (1, 1).
fn version_of(version: http::Version) -> (u8, u8) {
    match version {
        http::Version::HTTP_09 => (0, 9),
        http::Version::HTTP_10 => (1, 0),
        http::Version::HTTP_2 => (2, 0),
        http::Version::HTTP_3 => (3, 0),
        _ => (1, 1),
    }
}
