//! The `dns` probe's exchange with one server: a query over UDP (sent again
//! while unanswered), again over TCP when the answer comes back truncated.
//! Replies to other queries, and datagrams that are no DNS message, are
//! ignored rather than believed.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, sleep_until, timeout_at};

use crate::probe::command::as_configured;
use crate::probe::tcp::io_reason;

/// A UDP query unanswered this long is sent again (same id), until the deadline.
const RESEND_AFTER: Duration = Duration::from_secs(1);

/// One question to `server`, answered before `deadline`: over UDP, again
/// over TCP when the answer was truncated. `Err` is a short reason.
pub async fn exchange(
    server: SocketAddr,
    name: &Name,
    record_type: RecordType,
    deadline: Instant,
) -> Result<Message, String> {
    let query = question(name, record_type);
    let bytes = query
        .to_vec()
        .map_err(|e| format!("encoding the query: {e}"))?;
    let msg = ask_udp(server, &query, &bytes, deadline).await?;
    if !msg.truncation {
        return Ok(msg);
    }
    ask_tcp(server, &query, &bytes, deadline).await
}

/// The query message for `name`'s `record_type`, with a random id.
pub(super) fn question(name: &Name, record_type: RecordType) -> Message {
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name.clone(), record_type));
    query
}

/// Sends `bytes` to `server` over UDP (again every [`RESEND_AFTER`]) and
/// waits for the reply that answers `query`, ignoring any other datagram.
async fn ask_udp(
    server: SocketAddr,
    query: &Message,
    bytes: &[u8],
    deadline: Instant,
) -> Result<Message, String> {
    let budget = as_configured(deadline.saturating_duration_since(Instant::now()));
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("opening a UDP socket: {}", io_reason(&e)))?;
    socket
        .connect(server)
        .await
        .map_err(|e| format!("udp: {}", io_reason(&e)))?;
    let mut buf = vec![0u8; 65_535];
    let mut unreadable = None;
    let mut resend = Instant::now();
    loop {
        if Instant::now() >= resend {
            socket
                .send(bytes)
                .await
                .map_err(|e| format!("sending: {}", io_reason(&e)))?;
            resend = Instant::now() + RESEND_AFTER;
        }
        tokio::select! {
            received = socket.recv(&mut buf) => {
                let n = received.map_err(|e| io_reason(&e))?;
                match reply_to(query, &buf[..n]) {
                    Ok(msg) => return Ok(msg),
                    Err(why) => unreadable = Some(why),
                }
            }
            _ = sleep_until(resend.min(deadline)) => {
                if Instant::now() >= deadline {
                    let waited = humantime::format_duration(budget);
                    return Err(match unreadable {
                        Some(why) => format!("no usable answer within {waited} ({why})"),
                        None => format!("no answer within {waited}"),
                    });
                }
            }
        }
    }
}

/// The same question over TCP (two-byte length prefix each way).
async fn ask_tcp(
    server: SocketAddr,
    query: &Message,
    bytes: &[u8],
    deadline: Instant,
) -> Result<Message, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(server)
            .await
            .map_err(|e| format!("tcp connect: {}", io_reason(&e)))?;
        let len = u16::try_from(bytes.len()).map_err(|_| "query too long".to_string())?;
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(bytes);
        stream
            .write_all(&framed)
            .await
            .map_err(|e| format!("tcp send: {}", io_reason(&e)))?;
        let len = stream
            .read_u16()
            .await
            .map_err(|e| format!("tcp receive: {}", tcp_words(&e)))?;
        let mut reply = vec![0u8; usize::from(len)];
        stream
            .read_exact(&mut reply)
            .await
            .map_err(|e| format!("tcp receive: {}", tcp_words(&e)))?;
        reply_to(query, &reply).map_err(|why| format!("tcp: {why}"))
    };
    match timeout_at(deadline, exchange).await {
        Ok(result) => result,
        Err(_) => Err("truncated over UDP, no answer over TCP".into()),
    }
}

fn tcp_words(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        "connection closed before the whole answer".into()
    } else {
        io_reason(e)
    }
}

/// `bytes` read as the reply to `query`; `Err` says why it is not one.
pub(super) fn reply_to(query: &Message, bytes: &[u8]) -> Result<Message, String> {
    let msg = Message::from_vec(bytes).map_err(|_| "garbage reply".to_string())?;
    if msg.id != query.id || msg.message_type != MessageType::Response {
        return Err("reply to another query".into());
    }
    if msg.op_code != OpCode::Query || msg.queries != query.queries {
        // A server may leave the question out of an error reply.
        if !(msg.queries.is_empty() && msg.response_code != ResponseCode::NoError) {
            return Err("reply for another question".into());
        }
    }
    Ok(msg)
}
