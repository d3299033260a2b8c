//! `keepalive = true` on an `http` check, against loopback servers of this
//! file that count the TCP connections they accept: one connection carries
//! every run; a connection the server closed while idle, or closed as the
//! next request came, is replaced without a red run; a server that hangs or
//! answers garbage on the kept connection is a red run with its reason.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keeper::core::{Outcome, Sample};
use keeper::probe::{Context, Probe, Spec, http};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::task::AbortOnDropHandle;

use crate::support::{self, target::TestCa};

const TIMEOUT: Duration = Duration::from_secs(5);

/// What the server does with the requests of one connection.
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// Answers every request, keeping the connection open.
    KeepsAlive,
    /// Answers the first request, then closes the connection.
    ClosesAfterOne,
    /// Answers the first request; closes the connection unanswered when the
    /// second arrives (the idle-close race).
    DropsTheSecond,
    /// Answers the first request; reads the second and never answers it.
    HangsOnTheSecond,
    /// Answers the first request; answers the second with bytes that are not HTTP.
    GarbageOnTheSecond,
    /// Answers every request with `Connection: close`, but leaves the
    /// connection open for the client to close.
    SaysClose,
    /// Answers every request with a few bytes more than the response.
    SaysTooMuch,
    /// Answers every request with these bytes, keeping the connection open.
    Answers(&'static [u8]),
}

/// A loopback HTTP server counting connections and requests.
struct Server {
    url: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    /// Connections the server has closed.
    closed: Arc<AtomicUsize>,
    /// Each request's head, as received.
    heads: Arc<Mutex<Vec<String>>>,
    _accepting: AbortOnDropHandle<()>,
}

impl Server {
    async fn start(behaviour: Behaviour) -> Server {
        Server::spawn(behaviour, None).await
    }

    /// HTTPS with `tls`'s certificate; the URL names `localhost`.
    async fn start_tls(behaviour: Behaviour, tls: tokio_rustls::TlsAcceptor) -> Server {
        Server::spawn(behaviour, Some(tls)).await
    }

    async fn spawn(behaviour: Behaviour, tls: Option<tokio_rustls::TlsAcceptor>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let url = match &tls {
            None => format!("http://{addr}/health"),
            Some(_) => format!("https://localhost:{}/health", addr.port()),
        };
        let server = Server {
            url,
            connections: Arc::default(),
            requests: Arc::default(),
            closed: Arc::default(),
            heads: Arc::default(),
            _accepting: AbortOnDropHandle::new(tokio::spawn(async {})),
        };
        let shared = (
            server.connections.clone(),
            server.requests.clone(),
            server.closed.clone(),
            server.heads.clone(),
        );
        let accepting = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                shared.0.fetch_add(1, Ordering::SeqCst);
                let (requests, closed, heads) =
                    (shared.1.clone(), shared.2.clone(), shared.3.clone());
                let tls = tls.clone();
                conns.spawn(async move {
                    match tls {
                        None => serve(tcp, behaviour, &requests, &heads).await,
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(tcp).await {
                                serve(stream, behaviour, &requests, &heads).await;
                            }
                        }
                    }
                    closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Server {
            _accepting: AbortOnDropHandle::new(accepting),
            ..server
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Serves one connection as `behaviour` says; returns when it is closed.
async fn serve(
    mut tcp: impl AsyncRead + AsyncWrite + Unpin,
    behaviour: Behaviour,
    requests: &AtomicUsize,
    heads: &Mutex<Vec<String>>,
) {
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";
    const CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    for nth in 1.. {
        let Some(head) = read_head(&mut tcp).await else {
            return;
        };
        requests.fetch_add(1, Ordering::SeqCst);
        heads.lock().unwrap().push(head);
        let answer: &[u8] = match (behaviour, nth) {
            (Behaviour::SaysClose, _) => CLOSE,
            (Behaviour::SaysTooMuch, _) => {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1"
            }
            (Behaviour::Answers(bytes), _) => bytes,
            (Behaviour::KeepsAlive, _) | (_, 1) => OK,
            (Behaviour::ClosesAfterOne | Behaviour::DropsTheSecond, _) => return,
            (Behaviour::HangsOnTheSecond, _) => {
                // Holds the connection until the client leaves.
                let mut sink = [0u8; 1024];
                while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
            (Behaviour::GarbageOnTheSecond, _) => b"\x16\x03 certainly not HTTP\r\n\r\n",
        };
        if tcp.write_all(answer).await.is_err() {
            return;
        }
        if let (Behaviour::ClosesAfterOne, 1) = (behaviour, nth) {
            let _ = tcp.shutdown().await;
            return;
        }
    }
}

/// One request head (GET: no body), or `None` once the client left.
async fn read_head(tcp: &mut (impl AsyncRead + Unpin)) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tcp.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

fn probe(url: &str, keepalive: bool) -> Probe {
    probe_with(url, keepalive, "")
}

fn probe_with(url: &str, keepalive: bool, more: &str) -> Probe {
    support::init();
    let spec: http::Spec =
        toml::from_str(&format!("url = {url:?}\nkeepalive = {keepalive}\n{more}"))
            .expect("http spec");
    Spec::Http(spec)
        .build("test", &Context::system())
        .expect("build http probe")
}

fn reused(sample: &Sample) -> Option<bool> {
    sample.http.as_ref().expect("http info").connection_reused
}

fn assert_up(sample: &Sample) {
    assert!(sample.is_up(), "expected up, got {sample:?}");
}

fn reason(sample: &Sample) -> &str {
    match &sample.outcome {
        Outcome::Down(reason) => reason,
        _ => panic!("expected a down sample, got {sample:?}"),
    }
}

#[tokio::test]
async fn keepalive_runs_share_one_connection_and_say_it_was_reused() {
    let server = Server::start(Behaviour::KeepsAlive).await;
    let probe = probe(&server.url, true);

    let first = probe.run(TIMEOUT).await;
    assert_up(&first);
    assert_eq!(reused(&first), Some(false), "{first:?}");
    assert!(
        first.message.ends_with(" on a new connection"),
        "{}",
        first.message
    );
    assert!(first.http.as_ref().unwrap().phases.connect.is_some());
    for _ in 0..4 {
        let sample = probe.run(TIMEOUT).await;
        assert_up(&sample);
        assert_eq!(reused(&sample), Some(true), "{sample:?}");
        assert!(
            sample.message.starts_with("200 OK in "),
            "{}",
            sample.message
        );
        assert!(
            sample.message.ends_with(" on a reused connection"),
            "{}",
            sample.message
        );
        let http = sample.http.as_ref().unwrap();
        assert_eq!(
            http.phases.connect, None,
            "no connect on a reused connection"
        );
        assert!(http.phases.first_byte.is_some() && http.phases.transfer.is_some());
        assert_eq!(http.status, 200);
        assert_eq!(sample.conn.ip_protocol, Some(4));
    }
    assert_eq!(server.requests(), 5);
    assert_eq!(
        server.connections(),
        1,
        "every run on the one kept connection"
    );
    let heads = server.heads.lock().unwrap().clone();
    assert!(
        heads
            .iter()
            .all(|h| h.starts_with("GET /health HTTP/1.1\r\n")),
        "{heads:?}"
    );
    assert!(
        heads
            .iter()
            .all(|h| !h.to_ascii_lowercase().contains("connection: close")),
        "{heads:?}"
    );
}

#[tokio::test]
async fn https_keepalive_reuses_the_connection_and_still_reports_the_certificate() {
    support::init();
    let ca = TestCa::new();
    let leaf = ca.leaf_expiring_in(chrono::Duration::days(5));
    let tls = tokio_rustls::TlsAcceptor::from(leaf.server_config());
    let server = Server::start_tls(Behaviour::KeepsAlive, tls).await;
    let probe = probe_with(&server.url, true, &format!("ca_file = {:?}", ca.ca_file()));

    let first = probe.run(TIMEOUT).await;
    let second = probe.run(TIMEOUT).await;

    assert_up(&first);
    assert_up(&second);
    assert_eq!(reused(&first), Some(false), "{first:?}");
    assert_eq!(reused(&second), Some(true), "{second:?}");
    assert!(first.http.as_ref().unwrap().phases.tls.is_some());
    assert_eq!(
        second.http.as_ref().unwrap().phases.tls,
        None,
        "no handshake when reused"
    );
    assert!(second.http.as_ref().unwrap().ssl);
    for sample in [&first, &second] {
        let days = sample
            .metric(keeper::core::Metric::CertDaysLeft)
            .unwrap_or_else(|| panic!("no cert_days_left in {sample:?}"));
        assert!((4.9..=5.0).contains(&days), "{days}");
        assert_eq!(sample.conn.tls_version, first.conn.tls_version);
        assert!(sample.conn.verified_chain_expiry.is_some(), "{sample:?}");
    }
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn without_keepalive_every_run_opens_a_connection_and_asks_to_close_it() {
    let server = Server::start(Behaviour::KeepsAlive).await;
    let probe = probe(&server.url, false);

    for _ in 0..3 {
        let sample = probe.run(TIMEOUT).await;
        assert_up(&sample);
        assert_eq!(reused(&sample), None);
        assert!(!sample.message.contains("connection"), "{}", sample.message);
    }
    assert_eq!(server.connections(), 3);
    let heads = server.heads.lock().unwrap().clone();
    assert!(
        heads
            .iter()
            .all(|h| h.to_ascii_lowercase().contains("connection: close")),
        "{heads:?}"
    );
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_replaced_without_a_red_run() {
    let server = Server::start(Behaviour::ClosesAfterOne).await;
    let probe = probe(&server.url, true);

    for run in 1..=3 {
        let sample = probe.run(TIMEOUT).await;
        assert_up(&sample);
        assert_eq!(reused(&sample), Some(false), "run {run}: {sample:?}");
        // The next run starts after the server has closed this one.
        let closed = server.closed.clone();
        support::wait_until("the server closed the connection", TIMEOUT, || {
            let closed = closed.clone();
            async move { closed.load(Ordering::SeqCst) == run }
        })
        .await;
    }
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn a_connection_the_server_said_it_would_close_is_not_kept() {
    for behaviour in [Behaviour::SaysClose, Behaviour::SaysTooMuch] {
        let server = Server::start(behaviour).await;
        let probe = probe(&server.url, true);

        for run in 1..=3 {
            let sample = probe.run(TIMEOUT).await;
            assert_up(&sample);
            assert_eq!(
                reused(&sample),
                Some(false),
                "{behaviour:?} run {run}: {sample:?}"
            );
            assert!(
                sample.message.ends_with(" on a new connection"),
                "{behaviour:?} run {run}: {}",
                sample.message
            );
        }
        assert_eq!(server.connections(), 3, "{behaviour:?}");
        assert_eq!(server.requests(), 3, "{behaviour:?}");
    }
}

#[tokio::test]
async fn a_connection_is_kept_after_every_framing_that_ends_the_response_cleanly() {
    let kept: [(&[u8], bool); 6] = [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", true),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx-sum: 1\r\n\r\n", true),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true),
        (b"HTTP/1.1 204 No Content\r\n\r\n", true),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", true),
        // HTTP/1.0 closes after each response unless it says otherwise.
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
    ];
    for (answer, reusable) in kept {
        let server = Server::start(Behaviour::Answers(answer)).await;
        let probe = probe(&server.url, true);
        let shown = String::from_utf8_lossy(answer);

        assert_up(&probe.run(TIMEOUT).await);
        let second = probe.run(TIMEOUT).await;

        assert_up(&second);
        assert_eq!(reused(&second), Some(reusable), "{shown}: {second:?}");
        let connections = if reusable { 1 } else { 2 };
        assert_eq!(server.connections(), connections, "{shown}");
    }
}

#[tokio::test]
async fn a_request_with_a_body_over_4_kib_leaves_no_connection_behind() {
    // The server answers without reading the body, as one that refuses
    // early may: part of the body could still be unsent on that connection.
    let server = Server::start(Behaviour::KeepsAlive).await;
    let body = "x".repeat(4097);
    let probe = probe_with(
        &server.url,
        true,
        &format!("method = \"POST\"\nbody = \"{body}\"\n"),
    );

    for run in 1..=3 {
        let sample = probe.run(TIMEOUT).await;
        assert_up(&sample);
        assert_eq!(reused(&sample), Some(false), "run {run}: {sample:?}");
    }
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn a_kept_connection_closed_as_the_request_came_is_retried_once_on_a_new_one() {
    let server = Server::start(Behaviour::DropsTheSecond).await;
    let probe = probe(&server.url, true);

    assert_up(&probe.run(TIMEOUT).await);
    let second = probe.run(TIMEOUT).await;

    assert_up(&second);
    assert_eq!(reused(&second), Some(false), "{second:?}");
    assert!(
        second
            .message
            .ends_with("(the kept one failed before a response)"),
        "{}",
        second.message
    );
    // The first connection carried two requests (the second unanswered), the new one one.
    assert_eq!(server.connections(), 2);
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn a_server_that_hangs_on_the_kept_connection_is_red_within_the_timeout_and_not_retried() {
    let server = Server::start(Behaviour::HangsOnTheSecond).await;
    let probe = probe(&server.url, true);

    assert_up(&probe.run(TIMEOUT).await);
    let hung = probe.run(Duration::from_millis(500)).await;

    assert!(reason(&hung).contains("timed out"), "{hung:?}");
    assert_eq!(server.connections(), 1, "a timeout is not retried");
    // The hung connection is not kept: the next run opens a new one (answered: its first request).
    let next = probe.run(TIMEOUT).await;
    assert_up(&next);
    assert_eq!(reused(&next), Some(false), "{next:?}");
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn a_server_that_never_answers_a_keepalive_check_is_red_with_a_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("address"));
    let _server = AbortOnDropHandle::new(tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    }));
    let probe = probe(&url, true);

    let sample = probe.run(Duration::from_millis(500)).await;

    assert!(reason(&sample).contains("timed out"), "{sample:?}");
}

#[tokio::test]
async fn garbage_on_the_kept_connection_is_red_as_an_invalid_response_and_not_retried() {
    let server = Server::start(Behaviour::GarbageOnTheSecond).await;
    let probe = probe(&server.url, true);

    assert_up(&probe.run(TIMEOUT).await);
    let garbage = probe.run(TIMEOUT).await;

    assert!(
        reason(&garbage).contains("invalid HTTP response"),
        "{garbage:?}"
    );
    assert_eq!(reused(&garbage), Some(true));
    assert_eq!(server.connections(), 1);
}

#[test]
fn keepalive_is_reported_in_the_metrics_only_for_checks_that_ask_for_it() {
    let metrics = keeper::metrics::Metrics::new(&[Arc::from("kept"), Arc::from("plain")]);
    let mut kept = Sample::up("200 OK in 1 ms on a reused connection");
    kept.http = Some(keeper::core::HttpInfo {
        status: 200,
        connection_reused: Some(true),
        ..Default::default()
    });
    let mut plain = Sample::up("200 OK in 1 ms");
    plain.http = Some(keeper::core::HttpInfo {
        status: 200,
        ..Default::default()
    });
    metrics.observe_sample(0, &kept);
    metrics.observe_sample(1, &plain);

    let out = metrics.render().expect("render");
    assert!(
        out.contains("keeper_http_connection_reused{check=\"kept\"} 1\n"),
        "{out}"
    );
    assert!(
        !out.contains("keeper_http_connection_reused{check=\"plain\"}"),
        "{out}"
    );
}

#[test]
fn a_keepalive_that_is_not_a_boolean_is_refused_at_its_line_and_column() {
    let text =
        "[checks.web]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nkeepalive = \"yes\"\n";
    let errors =
        keeper::config::Config::parse(std::path::Path::new("keeper.toml"), text, &|_| None)
            .expect_err("keepalive = \"yes\" is refused");
    let shown = errors.to_string();
    assert!(shown.contains("keeper.toml:4:13"), "{shown}");
    assert!(shown.contains("keepalive"), "{shown}");
    let ok = "[checks.web]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nkeepalive = true\n";
    keeper::config::Config::parse(std::path::Path::new("keeper.toml"), ok, &|_| None)
        .expect("keepalive = true loads");
}
