//! The wire side of one `http` hop: the request sent over a connected
//! stream, the response head and body read, first byte and transfer timed.

use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use http::header::{CONTENT_LENGTH, LOCATION};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout_at};
use tokio_util::task::AbortOnDropHandle;

use super::{BODY_LIMIT, Response, Run, add};
use crate::probe::tcp;

/// Sends `request` over `io` and reads the response, timing first byte and transfer.
pub(super) async fn send<S>(
    io: S,
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
    run: &mut Run,
) -> Result<Response, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| hyper_reason(&e, "request to", addr))?;
    // The connection task ends when the response is read or dropped, and is
    // aborted with this guard if the probe is abandoned.
    let _connection = AbortOnDropHandle::new(tokio::spawn(connection));
    let started = Instant::now();
    let head = match timeout_at(run.deadline, sender.send_request(request)).await {
        Err(_) => return Err(run.timed_out("waiting for the response")),
        Ok(Err(e)) => return Err(hyper_reason(&e, "request to", addr)),
        Ok(Ok(head)) => head,
    };
    add(&mut run.phases.first_byte, Some(started.elapsed()));
    let started = Instant::now();
    let status = head.status();
    let (version, content_length) = (version_of(head.version()), content_length(head.headers()));
    let location = head
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if location.is_some() && status.is_redirection() {
        // Redirect bodies are not read: the connection closes with this hop.
        add(&mut run.phases.transfer, Some(started.elapsed()));
        return Ok(Response {
            status,
            location,
            body: Bytes::new(),
            truncated: false,
            version,
            content_length,
        });
    }
    let mut body = head.into_body();
    let mut read = Vec::new();
    let mut truncated = false;
    let reading = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| hyper_reason(&e, "reading the body from", addr))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let room = BODY_LIMIT - read.len();
            if data.len() > room {
                read.extend_from_slice(&data[..room]);
                truncated = true;
                break;
            }
            read.extend_from_slice(&data);
        }
        Ok::<(), String>(())
    };
    match timeout_at(run.deadline, reading).await {
        Err(_) => return Err(run.timed_out("reading the body")),
        Ok(Err(reason)) => return Err(reason),
        Ok(Ok(())) => {}
    }
    add(&mut run.phases.transfer, Some(started.elapsed()));
    Ok(Response {
        status,
        location,
        body: Bytes::from(read),
        truncated,
        version,
        content_length,
    })
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
    if err.is_incomplete_message() {
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
