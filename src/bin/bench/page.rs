//! `--page N`: how soon a page follows a failure. keeper runs in-process
//! with one `http` check (every second, paged after two failures, resolved
//! after two successes) against a loopback target, and one webhook channel
//! to a loopback receiver. N times, the target starts answering 503 and the
//! time until the `opened` webhook arrives is taken; then it answers 200
//! again and the `resolved` one is awaited. The floor is the detection
//! budget (up to `interval × failures_before_alert`); what lies above it is
//! keeper's own delay (classifying, committing, the outbox, the send).

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::mpsc;

const INTERVAL_MS: u64 = 1000;
const FAILURES: u64 = 2;

pub async fn run(rounds: usize) -> anyhow::Result<()> {
    let status = Arc::new(AtomicU16::new(200));
    let target = serve_target(status.clone()).await?;
    let (hooks, mut states) = mpsc::unbounded_channel();
    let hook = serve_receiver(hooks).await?;
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("page.db").display());
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nurl = \"{url}\"\n\
         [defaults]\nfailures_before_alert = {FAILURES}\nsuccesses_before_resolve = 2\n\
         [channels.hook]\nkind = \"webhook\"\nurl = \"http://{hook}/hook\"\n\
         [[routes]]\nchannels = [\"hook\"]\n\
         [checks.web]\nkind = \"http\"\nurl = \"http://{target}/health\"\n\
         interval = \"{INTERVAL_MS}ms\"\ntimeout = \"2s\"\n"
    );
    let config = keeper::config::Config::parse(std::path::Path::new("page.toml"), &text, &|_| None)
        .map_err(|e| anyhow::anyhow!("bench config: {e}"))?;
    let keeper = keeper::app::start(config)
        .await
        .context("starting keeper")?;
    // Let the check run green first.
    tokio::time::sleep(Duration::from_millis(3 * INTERVAL_MS)).await;

    let mut to_page = Vec::with_capacity(rounds);
    let mut to_resolve = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        status.store(503, Ordering::SeqCst);
        to_page.push(until(&mut states, "opened").await?);
        status.store(200, Ordering::SeqCst);
        to_resolve.push(until(&mut states, "resolved").await?);
    }
    keeper.shutdown().await?;
    to_page.sort();
    to_resolve.sort();
    let budget = Duration::from_millis(INTERVAL_MS * FAILURES);
    println!(
        "rounds  budget_ms  page_ms_min  page_ms_p50  page_ms_max  resolve_ms_p50  resolve_ms_max"
    );
    println!(
        "{rounds:>6}  {:>9.0}  {:>11.0}  {:>11.0}  {:>11.0}  {:>14.0}  {:>14.0}",
        ms(budget),
        ms(to_page[0]),
        ms(to_page[rounds / 2]),
        ms(to_page[rounds - 1]),
        ms(to_resolve[rounds / 2]),
        ms(to_resolve[rounds - 1]),
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Time from now until a webhook with `state` arrives (others are skipped), at most 30 s.
async fn until(
    states: &mut mpsc::UnboundedReceiver<String>,
    state: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let got = tokio::time::timeout(Duration::from_secs(30), states.recv())
            .await
            .with_context(|| format!("no {state:?} webhook within 30 s"))?;
        match got {
            Some(s) if s == state => return Ok(started.elapsed()),
            Some(_) => continue,
            None => bail!("the webhook receiver stopped"),
        }
    }
}

/// A loopback target answering `/health` with the status in `status`.
async fn serve_target(status: Arc<AtomicU16>) -> anyhow::Result<std::net::SocketAddr> {
    use axum::http::StatusCode;
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let code = status.load(Ordering::SeqCst);
            async move { StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR) }
        }),
    );
    serve(app).await
}

/// A loopback webhook receiver handing each notification's `state` to `states`.
async fn serve_receiver(
    states: mpsc::UnboundedSender<String>,
) -> anyhow::Result<std::net::SocketAddr> {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<serde_json::Value>| {
            let state = body["state"].as_str().unwrap_or_default().to_string();
            let _ = states.send(state);
            async {}
        }),
    );
    serve(app).await
}

async fn serve(app: axum::Router) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("bench server stopped: {e}");
        }
    });
    Ok(addr)
}
