//! The HTTP server's limits (issue 9, point 5): a slowloris client is dropped
//! after the header timeout without holding up anyone else, a slow handler
//! answers 503, connections past the cap wait and are served once others
//! close, and shutdown completes with idle keep-alive and slowloris
//! connections open. Bounds here are hang detectors, not timings.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use keeper::http::serve::{Limits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::support::app::{TestApp, spawn_app};
use crate::support::config::{Check, TestConfig};
use crate::support::db::Backend;

/// keeper on a database of its own with one quiet check.
async fn start() -> TestApp {
    let config = TestConfig::new().check(Check::tcp("port", "127.0.0.1:9").interval("1h"));
    spawn_app(Backend::Sqlite, config).await
}

/// A connection that sent half a request head and then nothing.
async fn slowloris(base: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).await.expect("connecting");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: keeper\r\nX-Slow: ")
        .await
        .expect("sending half a head");
    conn
}

/// A keep-alive connection that was answered once and stays open, idle.
async fn idle_keep_alive(base: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).await.expect("connecting");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: keeper\r\n\r\n")
        .await
        .expect("sending a request");
    let mut buf = [0u8; 1024];
    let n = conn.read(&mut buf).await.expect("reading the answer");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    conn
}

/// Reads until the server closes the connection; panics if it stays open past `bound`.
async fn closed_within(conn: &mut TcpStream, bound: Duration) {
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(bound, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // a 408 or the like, then the close
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server kept the connection open past {bound:?}"
    );
}

#[tokio::test]
async fn a_slowloris_client_is_dropped_and_holds_up_nobody() {
    let app = start().await;
    let mut slow = slowloris(&app.base).await;
    // Others are served meanwhile.
    for _ in 0..3 {
        assert_eq!(app.get_text("/healthz").await, "ok\n");
    }
    // The header timeout is 10 s; 25 s only detects a hang.
    closed_within(&mut slow, Duration::from_secs(25)).await;
    app.stop().await;
}

#[tokio::test]
async fn shutdown_completes_with_idle_and_slowloris_connections_open() {
    let app = start().await;
    let _idle = idle_keep_alive(&app.base).await;
    let _slow = slowloris(&app.base).await;
    let stopped = tokio::time::timeout(Duration::from_secs(15), app.stop()).await;
    assert!(
        stopped.is_ok(),
        "keeper did not stop with idle and slow clients connected"
    );
}

/// A server of its own with `limits` around a router with `/ok` and `/slow`.
async fn small_server(limits: Limits) -> (String, CancellationToken) {
    // Its tests ask with reqwest, which needs the process's TLS provider.
    crate::support::init();
    let router = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, router, limits, stop.clone()));
    (base, stop)
}

#[tokio::test]
async fn a_slow_handler_answers_503_with_a_json_reason() {
    let (base, stop) = small_server(Limits {
        request_timeout: Duration::from_millis(200),
        ..Limits::default()
    })
    .await;
    let resp = reqwest::get(format!("{base}/slow"))
        .await
        .expect("an answer");
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.expect("JSON");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("not handled within")),
        "{body}"
    );
    assert_eq!(
        reqwest::get(format!("{base}/ok"))
            .await
            .expect("ok")
            .status(),
        200
    );
    stop.cancel();
}

#[tokio::test]
async fn connections_past_the_cap_wait_and_are_served_once_others_close() {
    let (base, stop) = small_server(Limits {
        max_connections: 4,
        ..Limits::default()
    })
    .await;
    let addr = base.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(idle_keep_alive(&base).await);
    }
    // A fifth is not accepted while four are open…
    let fifth = tokio::spawn({
        let base = base.clone();
        async move { reqwest::get(format!("{base}/ok")).await.map(|r| r.status()) }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !fifth.is_finished(),
        "a fifth connection was served past a cap of four"
    );
    // …and is served as soon as they close; so are new ones.
    held.clear();
    let status = tokio::time::timeout(Duration::from_secs(10), fifth)
        .await
        .expect("the waiting request is served once connections close")
        .expect("task")
        .expect("answer");
    assert_eq!(status, 200);
    for _ in 0..8 {
        let mut conn = idle_keep_alive(&base).await;
        let _ = conn.shutdown().await;
    }
    assert!(TcpStream::connect(&addr).await.is_ok());
    stop.cancel();
}
