//! A TCP proxy to PostgreSQL that reads the wire protocol both ways and
//! tallies, by kind of statement, the statements executed and the bytes sent
//! and read (a response's bytes go to the statement it answers).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// What a statement does, from its SQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `SELECT … FROM check_leases`: the lease read.
    LeaseRead,
    /// `INSERT INTO check_leases … ON CONFLICT`: claims and renewals.
    LeaseClaim,
    /// `UPDATE check_leases`: leases given up.
    LeaseRelease,
    /// `cluster_members`: the heartbeat and the live members.
    Members,
    /// The outbox's claims, sends and renewals (its advisory lock too).
    Outbox,
    /// `BEGIN`, `COMMIT`, `ROLLBACK`.
    Transaction,
    /// Samples, incidents, startup, `LISTEN`, everything else.
    Other,
}

impl Kind {
    fn of(sql: &str) -> Kind {
        let sql = sql.trim_start();
        let starts = |w: &str| {
            sql.get(..w.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(w))
        };
        if sql.contains("check_leases") {
            match () {
                _ if starts("INSERT") => Kind::LeaseClaim,
                _ if starts("UPDATE") => Kind::LeaseRelease,
                _ if starts("SELECT") => Kind::LeaseRead,
                _ => Kind::Other,
            }
        } else if sql.contains("cluster_members") {
            Kind::Members
        } else if sql.contains("outbox") {
            Kind::Outbox
        } else if ["BEGIN", "COMMIT", "ROLLBACK"].iter().any(|w| starts(w)) {
            Kind::Transaction
        } else {
            Kind::Other
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Count {
    statements: u64,
    sent: u64,
    read: u64,
}

/// Statements and bytes by kind, as counted so far.
#[derive(Clone, Debug, Default)]
pub struct Counts(BTreeMap<Kind, Count>);

impl Counts {
    pub fn minus(&self, before: &Counts) -> Counts {
        let mut out = self.clone();
        for (kind, b) in &before.0 {
            let c = out.0.entry(*kind).or_default();
            c.statements -= b.statements;
            c.sent -= b.sent;
            c.read -= b.read;
        }
        out
    }

    pub fn plus(&self, other: &Counts) -> Counts {
        let mut out = self.clone();
        for (kind, o) in &other.0 {
            let c = out.0.entry(*kind).or_default();
            c.statements += o.statements;
            c.sent += o.sent;
            c.read += o.read;
        }
        out
    }

    pub fn statements(&self) -> u64 {
        self.0.values().map(|c| c.statements).sum()
    }

    pub fn sent(&self) -> u64 {
        self.0.values().map(|c| c.sent).sum()
    }

    pub fn read(&self) -> u64 {
        self.0.values().map(|c| c.read).sum()
    }

    /// One line per kind: per second over `secs`, and per renewal round.
    pub fn print_kinds(&self, secs: f64, rounds: f64) {
        for (kind, c) in &self.0 {
            println!(
                "          {:<13} {:>7.2} stmts/s  {:>6.2} per round  read {:>9.1} KB/round  sent {:>9.1} KB/round",
                format!("{kind:?}"),
                c.statements as f64 / secs,
                c.statements as f64 / rounds,
                c.read as f64 / 1024.0 / rounds,
                c.sent as f64 / 1024.0 / rounds,
            );
        }
    }
}

/// The counts of one proxy, shared by its connections.
#[derive(Debug, Default)]
pub struct Tally(Mutex<Counts>);

impl Tally {
    pub fn snapshot(&self) -> Counts {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn add(&self, kind: Kind, f: impl FnOnce(&mut Count)) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(counts.0.entry(kind).or_default());
    }
}

/// One connection's protocol state: its prepared statements' kinds, the
/// kind of the request being built, and the requests awaiting an answer.
#[derive(Debug, Default)]
struct Conn {
    prepared: HashMap<Vec<u8>, Kind>,
    building: Option<Kind>,
    waiting: VecDeque<Kind>,
}

/// Listens on a loopback port; each connection goes on to `db`.
pub async fn serve(db: SocketAddr, tally: Arc<Tally>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let tally = tally.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(db).await else {
                    return;
                };
                let conn = Arc::new(Mutex::new(Conn::default()));
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let up = pump(cr, sw, true, conn.clone(), tally.clone());
                let down = pump(sr, cw, false, conn, tally);
                let _ = tokio::join!(up, down);
            });
        }
    });
    Ok(addr)
}

/// Copies one direction, framing its messages as it goes.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    client: bool,
    conn: Arc<Mutex<Conn>>,
    tally: Arc<Tally>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    // The client's first messages (startup, an SSL request) have no type byte.
    let mut untyped = client;
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        to.write_all(&buf[..n]).await?;
        pending.extend_from_slice(&buf[..n]);
        let mut at = 0;
        loop {
            let rest = &pending[at..];
            let (head, kind_byte) = if untyped {
                (0, 0)
            } else {
                (1, *rest.first().unwrap_or(&0))
            };
            let Some(len) = rest.get(head..head + 4) else {
                break;
            };
            let total = head + u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            if rest.len() < total {
                break;
            }
            let body = &rest[head + 4..total];
            if untyped {
                // An SSL request (80877103) is followed by another untyped message.
                untyped = body.get(..4) == Some(&80_877_103u32.to_be_bytes()[..]);
            } else {
                let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
                match client {
                    true => from_client(&mut conn, &tally, kind_byte, body, total as u64),
                    false => from_server(&mut conn, &tally, kind_byte, total as u64),
                }
            }
            at += total;
        }
        pending.drain(..at);
    }
}

/// The text before the first NUL of `bytes`, and what follows it.
fn cstr(bytes: &[u8]) -> (&[u8], &[u8]) {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    (&bytes[..end], bytes.get(end + 1..).unwrap_or_default())
}

fn from_client(conn: &mut Conn, tally: &Tally, kind: u8, body: &[u8], len: u64) {
    let this = match kind {
        b'P' => {
            let (name, rest) = cstr(body);
            let sql = Kind::of(&String::from_utf8_lossy(cstr(rest).0));
            conn.prepared.insert(name.to_vec(), sql);
            conn.building = Some(sql);
            sql
        }
        b'B' => {
            let statement = cstr(cstr(body).1).0;
            let sql = conn.prepared.get(statement).copied().unwrap_or(Kind::Other);
            conn.building = Some(sql);
            sql
        }
        b'Q' => {
            let sql = Kind::of(&String::from_utf8_lossy(cstr(body).0));
            conn.waiting.push_back(sql);
            tally.add(sql, |c| c.statements += 1);
            sql
        }
        _ => conn.building.unwrap_or(Kind::Other),
    };
    match kind {
        b'E' => tally.add(this, |c| c.statements += 1),
        b'S' => conn
            .waiting
            .push_back(conn.building.take().unwrap_or(Kind::Other)),
        _ => {}
    }
    tally.add(this, |c| c.sent += len);
}

fn from_server(conn: &mut Conn, tally: &Tally, kind: u8, len: u64) {
    let this = conn.waiting.front().copied().unwrap_or(Kind::Other);
    tally.add(this, |c| c.read += len);
    if kind == b'Z' {
        conn.waiting.pop_front();
    }
}
