//! The `tcp` probe: connect (timed), optionally send a string and expect one back.
//! Also owns the timed "resolve, then connect" step the `http` and `tls`
//! probes start with, and the short wording of I/O errors.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::{BuildError, Context, Kind};
use crate::core::Metric;
use crate::core::Sample;
use crate::core::SpecProblem;
use crate::core::value::HostPort;

/// How much a `tcp` probe reads while looking for `expect`.
const EXPECT_READ_LIMIT: usize = 64 * 1024;

/// `[checks.NAME]` keys of kind `tcp`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub host: HostPort,
    pub send: Option<String>,
    pub expect: Option<String>,
}

impl Kind for Spec {
    const NAME: &'static str = "tcp";
    type Probe = Probe;

    fn target(&self) -> String {
        self.host.to_string()
    }

    fn problems(&self) -> Vec<SpecProblem> {
        if self.expect.as_deref() == Some("") {
            return vec![SpecProblem::new("expect", "expect: must not be empty")];
        }
        Vec::new()
    }

    fn build(&self, _check: &str, _ctx: &Context) -> Result<Probe, BuildError> {
        Ok(Probe {
            host: self.host.clone(),
            send: self.send.clone().map(String::into_bytes),
            expect: self.expect.clone(),
        })
    }
}

#[derive(Debug)]
pub struct Probe {
    host: HostPort,
    send: Option<Vec<u8>>,
    expect: Option<String>,
}

impl Probe {
    pub async fn run(&self, deadline: Instant) -> Sample {
        let mut conn = match connect(&self.host.host, self.host.port, None, deadline).await {
            Ok(conn) => conn,
            Err(reason) => return Sample::down(reason),
        };
        let connect_ms = ms(conn.connect);
        let mut message = format!("connected to {} in {connect_ms:.0} ms", conn.addr);
        let outcome = self.converse(&mut conn.stream, deadline).await;
        let mut sample = match outcome {
            Ok(Some(expect)) => {
                message.push_str(&format!(", got {expect:?}"));
                Sample::up(message)
            }
            Ok(None) => Sample::up(message),
            Err(reason) => Sample::down(format!("{}: {reason}", conn.addr)),
        };
        sample.metrics.push((Metric::LatencyMs, connect_ms));
        sample
    }

    /// Sends `send`, then reads until `expect` shows up. `Ok(Some(expect))`
    /// when it did, `Ok(None)` when nothing was expected.
    async fn converse(
        &self,
        stream: &mut TcpStream,
        deadline: Instant,
    ) -> Result<Option<&str>, String> {
        if let Some(send) = &self.send {
            match timeout_at(deadline, stream.write_all(send)).await {
                Err(_) => return Err("timed out sending".into()),
                Ok(Err(e)) => return Err(format!("send: {}", io_reason(&e))),
                Ok(Ok(())) => {}
            }
        }
        let Some(expect) = &self.expect else {
            return Ok(None);
        };
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if contains(&seen, expect.as_bytes()) {
                return Ok(Some(expect));
            }
            if seen.len() >= EXPECT_READ_LIMIT {
                return Err(format!(
                    "expected {expect:?}, not in the first {} KiB received",
                    EXPECT_READ_LIMIT / 1024
                ));
            }
            let room = (EXPECT_READ_LIMIT - seen.len()).min(buf.len());
            match timeout_at(deadline, stream.read(&mut buf[..room])).await {
                Err(_) => {
                    return Err(format!(
                        "timed out waiting for {expect:?} (received {})",
                        preview(&seen)
                    ));
                }
                Ok(Err(e)) => return Err(format!("receive: {}", io_reason(&e))),
                Ok(Ok(0)) => {
                    return Err(format!(
                        "expected {expect:?}, connection closed after {}",
                        preview(&seen)
                    ));
                }
                Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `12 bytes: "SSH-2.0-Open…"`, for messages.
fn preview(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "nothing".into();
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]);
    let more = if bytes.len() > 60 { "…" } else { "" };
    format!("{} bytes: {text:?}{more}", bytes.len())
}

/// A connected socket and how long getting it took.
#[derive(Debug)]
pub(crate) struct Connected {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    /// `None` when `host` was an IP literal and nothing was looked up.
    pub dns: Option<Duration>,
    pub connect: Duration,
}

/// Resolves `host` (unless it is an IP literal) and connects to the first
/// address that answers, before `deadline`, from `source` when given (a
/// host's chosen address). `Err` is a short reason for people:
/// `connect 127.0.0.1:8080: connection refused`.
pub(crate) async fn connect(
    host: &str,
    port: u16,
    source: Option<IpAddr>,
    deadline: Instant,
) -> Result<Connected, String> {
    let (addrs, dns) = match host.parse::<IpAddr>() {
        Ok(ip) => (vec![SocketAddr::new(ip, port)], None),
        Err(_) => {
            let started = Instant::now();
            let addrs = match timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
                Err(_) => return Err(format!("timed out resolving {host}")),
                Ok(Err(e)) => return Err(format!("resolve {host}: {}", io_reason(&e))),
                Ok(Ok(addrs)) => addrs.collect::<Vec<_>>(),
            };
            if addrs.is_empty() {
                return Err(format!("resolve {host}: no addresses"));
            }
            (addrs, Some(started.elapsed()))
        }
    };
    let started = Instant::now();
    let mut failure = String::new();
    for addr in addrs {
        match timeout_at(deadline, connect_from(source, addr)).await {
            Err(_) => return Err(format!("timed out connecting to {addr}")),
            Ok(Err(e)) => failure = format!("connect {addr}: {}", io_reason(&e)),
            Ok(Ok(stream)) => {
                // Probes write small requests at once; don't let Nagle delay them.
                let _ = stream.set_nodelay(true);
                return Ok(Connected {
                    stream,
                    addr,
                    dns,
                    connect: started.elapsed(),
                });
            }
        }
    }
    Err(failure)
}

/// Connects to `addr`, from `source` when given.
async fn connect_from(source: Option<IpAddr>, addr: SocketAddr) -> io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(addr).await;
    };
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

/// An I/O error in a few lower-case words, without the `(os error 111)` tail.
pub(crate) fn io_reason(err: &io::Error) -> String {
    use io::ErrorKind::*;
    let words = match err.kind() {
        ConnectionRefused => "connection refused",
        ConnectionReset => "connection reset by peer",
        ConnectionAborted => "connection aborted",
        BrokenPipe => "connection closed by peer (broken pipe)",
        UnexpectedEof => "connection closed unexpectedly",
        TimedOut => "timed out",
        HostUnreachable => "host unreachable",
        NetworkUnreachable => "network unreachable",
        AddrNotAvailable => "address not available",
        _ => return err.to_string(),
    };
    words.to_string()
}

/// A duration in milliseconds, fractional.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
