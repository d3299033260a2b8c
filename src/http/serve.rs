//! The HTTP server loop, with the limits `axum::serve` does not have: a
//! header-read timeout (a slowloris client is dropped, and an idle keep-alive
//! connection closes after the same time), a timeout on each request's
//! handling (503 JSON), a cap on open connections, and a shutdown that closes
//! idle connections at once and gives requests in flight a bounded grace.
//!
//! At the cap, keeper stops accepting: new connections wait in the listen
//! backlog until one closes (at most a header timeout later for a silent one),
//! rather than being accepted and dropped.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::ApiError;

/// The server's limits; [`Limits::default`] is what keeper runs with.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A request's head must arrive within this; also how long an idle
    /// keep-alive connection stays open.
    pub header_read_timeout: Duration,
    /// Handling one request, its body included, takes at most this (then 503).
    pub request_timeout: Duration,
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// At shutdown, how long requests in flight get before their
    /// connections are dropped.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Serves `router` on `listener` until `stop`, then shuts down within
/// `limits.shutdown_grace` whatever the clients do.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let router = router.layer(middleware::from_fn_with_state(
        limits.request_timeout,
        request_timeout,
    ));
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break, // never closed
            },
        };
        let stream = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little, go on.
                    tracing::warn!(%error, "accepting an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(connection(
            stream,
            router.clone(),
            limits.header_read_timeout,
            stop.clone(),
            permit,
        ));
    }
    drop(listener);
    let finished = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "HTTP requests still in flight after the shutdown grace; dropping them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// One connection, HTTP/1.1 with keep-alive. On `stop` an idle connection
/// closes at once and one with a request in flight after its response.
async fn connection(
    stream: TcpStream,
    router: Router,
    header_read_timeout: Duration,
    stop: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        // Slow or vanished clients end here: not keeper's problem.
        tracing::debug!(%error, "HTTP connection ended");
    }
}

/// Answers 503 when handling takes longer than `limit`.
async fn request_timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request was not handled within {}",
                humantime::format_duration(limit)
            ),
        )
        .into_response(),
    }
}
