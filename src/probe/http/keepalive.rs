//! `keepalive = true`: one idle connection to the configured URL, kept
//! between runs, and the rule for using it.
//!
//! A run takes the kept connection, if there is one and it has not ended
//! while idle (a peer that closes idle connections is seen here, before any
//! request), and sends its first hop's request on it. A kept connection that
//! fails before any response arrived — closed or reset as the request went
//! out, the race every client of keep-alive servers meets — is retried once,
//! on a new connection; anything else (a timeout, an invalid response, a
//! failure on a new connection) is the run's result. After a response read
//! whole, the connection is kept for the next run. Redirected runs, bodies
//! cut at the limit and requests with a body over 4 KiB leave no connection
//! behind.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::Method;

use super::wire::{Conn, Failure, Idle};
use super::{Peer, Probe, Response, Run};

/// The largest request body after which the connection is kept. A server
/// may answer before it has read a large body, and what it never read
/// would be taken for the next request; a body this small goes out whole
/// with its request (an idle connection's send buffer holds far more).
const KEPT_BODY_MAX: usize = 4096;

/// How a `keepalive` run's first hop got its connection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Got {
    /// The connection kept from an earlier run.
    Reused,
    /// A new one: no connection was kept (the first run, or the last one
    /// left none).
    New,
    /// A new one: the kept connection had been closed by the peer while idle.
    Replaced,
    /// A new one: the kept connection failed before any response.
    Retried,
}

impl Got {
    pub fn reused(self) -> bool {
        self == Got::Reused
    }

    /// Said after the run's message: `200 OK in 1 ms on a reused connection`.
    pub fn words(self) -> &'static str {
        match self {
            Got::Reused => " on a reused connection",
            Got::New => " on a new connection",
            Got::Replaced => " on a new connection (the kept one had been closed)",
            Got::Retried => " on a new connection (the kept one failed before a response)",
        }
    }
}

/// The idle connection of one check, between its runs.
#[derive(Default)]
pub(super) struct Slot(Mutex<Option<Kept>>);

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("keepalive::Slot")
    }
}

/// A kept connection and what its opening run learned of the peer.
struct Kept {
    idle: Idle,
    peer: Peer,
}

impl Slot {
    /// The first hop of a run to the probe's configured URL.
    pub async fn exchange(
        &self,
        probe: &Probe,
        method: &Method,
        body: &Bytes,
        run: &mut Run,
    ) -> Result<Response, String> {
        let mut got = Got::New;
        if let Some(mut kept) = self.take() {
            if kept.idle.has_ended() {
                got = Got::Replaced;
            } else {
                let request = probe.request(&probe.url, method, body, run)?;
                kept.tell(probe, run);
                run.connection = Some(Got::Reused);
                let Kept { idle, peer } = kept;
                let mut conn = idle.resume();
                match conn.exchange(&request, method, run).await {
                    Ok(response) => {
                        self.keep_if_reusable(conn, peer, body, &response);
                        return Ok(response);
                    }
                    Err(Failure {
                        before_response: true,
                        ..
                    }) => got = Got::Retried,
                    Err(failure) => return Err(failure.reason),
                }
                // What the kept connection told is not the new one's.
                (run.conn, run.cert, run.ssl) = Default::default();
            }
        }
        run.connection = Some(got);
        let request = probe.request(&probe.url, method, body, run)?;
        let (mut conn, peer) = probe.open(&probe.url, run).await?;
        let exchanged = conn.exchange(&request, method, run).await;
        let response = exchanged.map_err(|f| f.reason)?;
        self.keep_if_reusable(conn, peer, body, &response);
        Ok(response)
    }

    fn take(&self) -> Option<Kept> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Keeps `conn`'s stream for the next run when `response` left it
    /// ready for another request.
    fn keep_if_reusable(&self, conn: Conn, peer: Peer, body: &Bytes, response: &Response) {
        if !response.read_whole || body.len() > KEPT_BODY_MAX {
            return;
        }
        if let Some(idle) = conn.into_idle() {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(Kept { idle, peer });
        }
    }
}

impl Kept {
    /// Tells `run` what the connection's opening run learned: no lookup and
    /// no connect this time, the same peer and certificate.
    fn tell(&self, probe: &Probe, run: &mut Run) {
        run.ssl = probe.url.scheme() == "https";
        run.conn.dns_lookup = Some(Duration::ZERO);
        run.conn.ip_protocol = self.peer.ip_protocol;
        run.conn.tls_version = self.peer.tls_version;
        run.conn.verified_chain_expiry = self.peer.verified_chain_expiry;
        if let Some(cert) = &self.peer.cert {
            run.see_cert(cert.clone());
        }
    }
}
