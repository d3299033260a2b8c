//! A loopback DNS server for the `dns` probe: UDP and TCP on one
//! `127.0.0.1` port, a small fixed zone under `test.`, and modes that
//! misbehave. Stops when dropped.
//!
//! The zone:
//!
//! | name | records |
//! | --- | --- |
//! | `www.test` | A 192.0.2.10, 192.0.2.11; AAAA 2001:db8::10 |
//! | `alias.test` | CNAME www.test (answered with www.test's records, as a recursive server does) |
//! | `test` | MX 10 mail.test, 20 backup.test; TXT "v=spf1 -all" |
//! | `big.test` | 40 TXT records: too big for UDP, truncated there, whole over TCP |
//! | `empty.test` | exists, no records |
//!
//! Any other name is NXDOMAIN.

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tokio_util::task::AbortOnDropHandle;

/// How the server behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Answers from the zone.
    Zone,
    /// Reads queries and never answers.
    Silent,
    /// Answers SERVFAIL to everything.
    ServFail,
    /// Answers bytes that are no DNS message.
    Garbage,
}

pub struct DnsServer {
    pub addr: SocketAddr,
    /// Queries received over UDP and over TCP.
    pub udp_queries: Arc<AtomicUsize>,
    pub tcp_queries: Arc<AtomicUsize>,
    _tasks: AbortOnDropHandle<()>,
}

impl DnsServer {
    pub async fn start(mode: Mode) -> DnsServer {
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().expect("udp local addr");
        let udp_queries = Arc::new(AtomicUsize::new(0));
        let tcp_queries = Arc::new(AtomicUsize::new(0));
        let counts = (udp_queries.clone(), tcp_queries.clone());
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            let mut buf = vec![0u8; 65_535];
            loop {
                tokio::select! {
                    received = udp.recv_from(&mut buf) => {
                        let Ok((n, peer)) = received else { continue };
                        counts.0.fetch_add(1, Ordering::SeqCst);
                        if let Some(reply) = reply(mode, &buf[..n], true) {
                            let _ = udp.send_to(&reply, peer).await;
                        }
                    }
                    accepted = tcp.accept() => {
                        let Ok((mut stream, _)) = accepted else { continue };
                        let count = counts.1.clone();
                        conns.spawn(async move {
                            let Ok(len) = stream.read_u16().await else { return };
                            let mut query = vec![0u8; usize::from(len)];
                            if stream.read_exact(&mut query).await.is_err() {
                                return;
                            }
                            count.fetch_add(1, Ordering::SeqCst);
                            if let Some(reply) = reply(mode, &query, false) {
                                let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                                framed.extend_from_slice(&reply);
                                let _ = stream.write_all(&framed).await;
                            }
                        });
                    }
                }
            }
        });
        DnsServer {
            addr,
            udp_queries,
            tcp_queries,
            _tasks: AbortOnDropHandle::new(task),
        }
    }
}

/// A UDP socket and a TCP listener on the same free loopback port.
async fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
        let port = udp.local_addr().expect("udp addr").port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("zone name")
}

/// The zone's records of `rtype` at `owner`: `None` when the name does not exist.
fn zone(owner: &Name, rtype: RecordType) -> Option<Vec<Record>> {
    let at = |data: RData| Record::from_rdata(owner.clone(), 300, data);
    let owner_text = owner.to_ascii().to_ascii_lowercase();
    let all: Vec<Record> = match owner_text.as_str() {
        "www.test." => vec![
            at(RData::A(A::new(192, 0, 2, 10))),
            at(RData::A(A::new(192, 0, 2, 11))),
            at(RData::AAAA(AAAA(Ipv6Addr::new(
                0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10,
            )))),
        ],
        "alias.test." => vec![at(RData::CNAME(CNAME(name("www.test."))))],
        "test." => vec![
            at(RData::MX(MX::new(10, name("mail.test.")))),
            at(RData::MX(MX::new(20, name("backup.test.")))),
            at(RData::TXT(TXT::new(vec!["v=spf1 -all".into()]))),
        ],
        "big.test." => (0..40)
            .map(|i| {
                at(RData::TXT(TXT::new(vec![format!(
                    "record {i:02} {}",
                    "x".repeat(40)
                )])))
            })
            .collect(),
        "empty.test." => vec![],
        _ => return None,
    };
    Some(
        all.into_iter()
            .filter(|r| r.record_type() == rtype || r.record_type() == RecordType::CNAME)
            .collect(),
    )
}

/// The reply to `query` in `mode`, as bytes; `None`: no reply at all.
fn reply(mode: Mode, query: &[u8], over_udp: bool) -> Option<Vec<u8>> {
    match mode {
        Mode::Silent => return None,
        Mode::Garbage => return Some(b"\xde\xad this is not DNS".to_vec()),
        Mode::Zone | Mode::ServFail => {}
    }
    let req = Message::from_vec(query).ok()?;
    let mut resp = Message::response(req.id, req.op_code);
    resp.metadata.recursion_desired = req.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.add_queries(req.queries.clone());
    let q = req.queries.first()?;
    if mode == Mode::ServFail {
        resp.metadata.response_code = ResponseCode::ServFail;
    } else {
        match zone(q.name(), q.query_type()) {
            None => resp.metadata.response_code = ResponseCode::NXDomain,
            Some(records) => {
                // Follow a CNAME unless the CNAME itself was asked for.
                let target = records.iter().find_map(|r| match &r.data {
                    RData::CNAME(c) if q.query_type() != RecordType::CNAME => Some(c.0.clone()),
                    _ => None,
                });
                resp.add_answers(records);
                if let Some(target) = target {
                    resp.add_answers(zone(&target, q.query_type()).unwrap_or_default());
                }
            }
        }
    }
    let bytes = resp.to_vec().ok()?;
    if over_udp && bytes.len() > 512 {
        return resp.truncate().to_vec().ok();
    }
    Some(bytes)
}
