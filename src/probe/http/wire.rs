//! The wire side of an `http` hop: one HTTP/1.1 connection ([`Conn`]), the
//! request written, the response head parsed (by `httparse`) and its body
//! read as the head frames it (`body.rs`), first byte and transfer timed.
//!
//! Everything runs in the probe's own task. A run that gets a plain answer
//! allocates only the buffer its response is read into (a redirect's
//! `Location` and a failure's reason are strings of their own). Between the
//! runs of a `keepalive` check only the stream is kept ([`Idle`]).

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, timeout_at};

use super::body::{self, Framing};
use super::{BODY_LIMIT, Response, Run, add};
use crate::probe::tcp;

/// A stream an HTTP/1.1 connection runs over: TCP, or TLS over TCP.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// The most a response head may take; hyper's default limit is larger, but
/// no health endpoint sends 64 KiB of headers.
const HEAD_LIMIT: usize = 64 * 1024;
/// The most header fields in a response head.
const MAX_HEADERS: usize = 100;
/// The buffer a response is first read into: a health endpoint's whole
/// answer usually fits, and an allocation this small is served from the
/// allocator's per-thread cache.
const FIRST_READ: usize = 1024;

/// One HTTP/1.1 connection to `addr`.
pub(super) struct Conn {
    io: Box<dyn Io>,
    pub addr: SocketAddr,
    /// The last exchange left the connection ready for another request.
    reusable: bool,
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

    fn invalid(addr: SocketAddr, what: impl std::fmt::Display) -> Failure {
        Failure::plain(format!("invalid HTTP response from {addr}: {what}"))
    }

    /// The connection failed or closed before a whole response head came.
    fn on_the_way_in(addr: SocketAddr, err: &io::Error) -> Failure {
        let words = if err.kind() == io::ErrorKind::UnexpectedEof {
            body::CLOSED_EARLY.to_string()
        } else {
            tcp::io_reason(err)
        };
        Failure {
            reason: format!("request to {addr}: {words}"),
            before_response: true,
        }
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("addr", &self.addr).finish()
    }
}

/// What a response head says, owned: the parsed head borrows the buffer.
struct Head {
    status: StatusCode,
    version: (u8, u8),
    location: Option<String>,
    /// `Content-Length`, -1 when undeclared.
    content_length: i64,
    chunked: bool,
    /// `Transfer-Encoding` with a last coding other than chunked: the body
    /// ends with the connection.
    other_coding: bool,
    /// The peer keeps the connection open after this response.
    keep_alive: bool,
}

impl Conn {
    /// HTTP/1.1 over a connected (and, for https, handshaken) stream.
    pub fn new(io: impl Io, addr: SocketAddr) -> Conn {
        Conn::over(Box::new(io), addr)
    }

    fn over(io: Box<dyn Io>, addr: SocketAddr) -> Conn {
        Conn {
            io,
            addr,
            reusable: false,
        }
    }

    /// The stream, ready for another request, once a response was read
    /// whole and the peer did not say it would close; `None` otherwise.
    pub fn into_idle(self) -> Option<Idle> {
        self.reusable.then(|| Idle {
            io: self.io,
            addr: self.addr,
        })
    }

    /// Sends `request` (made for `method`) and reads the response, timing
    /// first byte and transfer.
    pub async fn exchange(
        &mut self,
        request: &Bytes,
        method: &Method,
        run: &mut Run,
    ) -> Result<Response, Failure> {
        self.reusable = false;
        let (addr, started) = (self.addr, Instant::now());
        let mut buf = BytesMut::with_capacity(FIRST_READ);
        let sending = async {
            let whole = send(&mut self.io, request, &mut buf)
                .await
                .map_err(|e| Failure::on_the_way_in(addr, &e))?;
            Ok::<_, Failure>((whole, read_head(&mut self.io, &mut buf, addr).await?))
        };
        let (sent_whole, head) = match timeout_at(run.deadline, sending).await {
            Err(_) => return Err(Failure::plain(run.timed_out("waiting for the response"))),
            Ok(result) => result?,
        };
        add(&mut run.phases.first_byte, Some(started.elapsed()));
        let started = Instant::now();
        let framing = head.framing(method);
        let mut response = Response {
            status: head.status,
            location: head.location,
            body: Bytes::new(),
            truncated: false,
            version: head.version,
            content_length: head.content_length,
            read_whole: false,
        };
        if response.location.is_some() && head.status.is_redirection() {
            // Redirect bodies are not read: the connection ends with this hop.
            add(&mut run.phases.transfer, Some(started.elapsed()));
            return Ok(response);
        }
        let reading = body::read(&mut self.io, buf, framing, BODY_LIMIT);
        let body = match timeout_at(run.deadline, reading).await {
            Err(_) => return Err(Failure::plain(run.timed_out("reading the body"))),
            Ok(Err(words)) => {
                return Err(Failure::plain(format!(
                    "reading the body from {addr}: {words}"
                )));
            }
            Ok(Ok(body)) => body,
        };
        add(&mut run.phases.transfer, Some(started.elapsed()));
        self.reusable = sent_whole && head.keep_alive && body.clean_end;
        response.body = body.bytes;
        response.truncated = body.truncated;
        response.read_whole = !body.truncated;
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

    /// The connection again, for the next request.
    pub fn resume(self) -> Conn {
        Conn::over(self.io, self.addr)
    }
}

/// Writes `request` whole and flushes it; `false` when the peer answered
/// (into `buf`) before taking all of it, as a server refusing a large body
/// may: the answer is read, the connection is not kept.
async fn send(io: &mut Box<dyn Io>, request: &Bytes, buf: &mut BytesMut) -> io::Result<bool> {
    let mut written = 0;
    poll_fn(|cx| {
        while written < request.len() {
            match Pin::new(&mut **io).poll_write(cx, &request[written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => break,
            }
        }
        if written == request.len() {
            return Pin::new(&mut **io).poll_flush(cx).map_ok(|()| true);
        }
        // The peer takes no more for now: see whether it has answered.
        match tokio_util::io::poll_read_buf(Pin::new(&mut **io), cx, buf) {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(false)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Reads until a final response head is whole, skipping interim (1xx)
/// ones; leaves in `buf` what came after it.
async fn read_head(
    io: &mut Box<dyn Io>,
    buf: &mut BytesMut,
    addr: SocketAddr,
) -> Result<Head, Failure> {
    loop {
        if !buf.is_empty() {
            let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut fields);
            match parsed.parse(buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let head = Head::of(&parsed).map_err(|what| Failure::invalid(addr, what))?;
                    buf.advance(len);
                    let interim = head.status.is_informational() && head.status.as_u16() != 101;
                    if !interim {
                        return Ok(head);
                    }
                    continue;
                }
                Ok(httparse::Status::Partial) if buf.len() < HEAD_LIMIT => {}
                Ok(httparse::Status::Partial) => {
                    return Err(Failure::invalid(addr, "a response head over 64 KiB"));
                }
                Err(e) => return Err(Failure::invalid(addr, e)),
            }
        }
        match body::read_more(io, buf).await {
            Ok(0) => {
                return Err(Failure::on_the_way_in(
                    addr,
                    &io::ErrorKind::UnexpectedEof.into(),
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(Failure::on_the_way_in(addr, &e)),
        }
    }
}

impl Head {
    /// How the body's end is known (RFC 9112 §6.3): no body, chunks, until
    /// close (another coding, or no length), or the declared length.
    fn framing(&self, method: &Method) -> Framing {
        let status = self.status.as_u16();
        if *method == Method::HEAD || status < 200 || status == 204 || status == 304 {
            Framing::Empty
        } else if self.chunked {
            Framing::Chunked
        } else if self.other_coding {
            Framing::UntilClose
        } else {
            u64::try_from(self.content_length).map_or(Framing::UntilClose, Framing::Length)
        }
    }

    /// The fields keeper uses, or why the head cannot be trusted.
    fn of(parsed: &httparse::Response<'_, '_>) -> Result<Head, String> {
        let code = parsed.code.unwrap_or_default();
        let status = StatusCode::from_u16(code).map_err(|_| format!("status {code}"))?;
        let minor = parsed.version.unwrap_or(1);
        let mut head = Head {
            status,
            version: (1, minor),
            location: None,
            content_length: -1,
            chunked: false,
            other_coding: false,
            keep_alive: minor >= 1,
        };
        let mut has_coding = false;
        for field in parsed.headers.iter() {
            let name = field.name;
            if name.eq_ignore_ascii_case("content-length") {
                let length = std::str::from_utf8(field.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .filter(|&l| l >= 0)
                    .ok_or("invalid Content-Length")?;
                if head.content_length >= 0 && head.content_length != length {
                    return Err("two different Content-Length values".into());
                }
                head.content_length = length;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                has_coding = true;
                let last = field
                    .value
                    .rsplit(|&b| b == b',')
                    .next()
                    .unwrap_or_default();
                head.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                for token in field.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        head.keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && minor == 0 {
                        head.keep_alive = true;
                    }
                }
            } else if name.eq_ignore_ascii_case("location") {
                head.location = visible_text(field.value).map(str::to_string);
            }
        }
        head.other_coding = has_coding && !head.chunked;
        if has_coding {
            // A length beside a coding is not to be trusted (RFC 9112 §6.3).
            head.keep_alive &= head.content_length < 0;
        }
        Ok(head)
    }
}

/// A header value as text when it is visible ASCII (and tabs), as
/// `HeaderValue::to_str` reads it.
fn visible_text(value: &[u8]) -> Option<&str> {
    let visible = value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
    visible.then(|| std::str::from_utf8(value).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(wire: &[u8]) -> Result<Head, String> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut fields);
        assert!(parsed.parse(wire).expect("parses").is_complete());
        Head::of(&parsed)
    }

    #[test]
    fn the_head_frames_the_body_as_rfc_9112_orders_it() {
        let length = head(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n").unwrap();
        assert_eq!(length.framing(&Method::GET), Framing::Length(3));
        assert_eq!(length.framing(&Method::HEAD), Framing::Empty);
        assert!(length.keep_alive);
        // Chunked wins over a length, and such a connection is not kept.
        let both = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        let both = head(both.as_bytes()).unwrap();
        assert_eq!(
            (both.framing(&Method::GET), both.keep_alive),
            (Framing::Chunked, false)
        );
        let gzip = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n").unwrap();
        assert_eq!(gzip.framing(&Method::GET), Framing::UntilClose);
        let none = head(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n").unwrap();
        assert_eq!(none.framing(&Method::GET), Framing::Empty);
    }

    #[test]
    fn connection_tokens_and_the_version_decide_whether_the_peer_keeps_it() {
        let close = head(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\n\r\n").unwrap();
        assert!(!close.keep_alive);
        let old = head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
        assert!(!old.keep_alive);
        assert_eq!(old.version, (1, 0));
        let asked = head(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert!(asked.keep_alive);
    }

    #[test]
    fn lengths_that_cannot_be_trusted_are_refused() {
        for bad in ["-1", "3x", "99999999999999999999"] {
            let wire = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(
                head(wire.as_bytes()).err().as_deref(),
                Some("invalid Content-Length")
            );
        }
        let same = head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(same.map(|h| h.content_length), Ok(2));
    }

    #[test]
    fn a_location_is_kept_only_as_visible_text() {
        let moved = head(b"HTTP/1.1 302 Found\r\nLocation: /next?a=1\r\n\r\n").unwrap();
        assert_eq!(moved.location.as_deref(), Some("/next?a=1"));
        let odd = head(b"HTTP/1.1 302 Found\r\nLocation: /n\xc3\xa4chst\r\n\r\n").unwrap();
        assert_eq!(odd.location, None);
    }
}
