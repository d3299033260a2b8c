//! Connects every log check's source to its [`Feed`]: files are followed
//! ([`super::file`]), ingest sources registered for `POST /ingest/{source}`
//! ([`super::ingest`]), and Fly apps polled ([`super::flylogs`]), each in its
//! own task until shutdown, so a stalled source never stalls another.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::flylogs::{self, Poller};
use super::ingest::{LineSink, Registry};
use super::{Feed, Feeds, Source};
use crate::probe::tlsconf::Roots;

/// How long the Fly logs API may fail before the check says so (yellow):
/// one bad answer is not worth a page.
const FLY_FAILING_GRACE: Duration = Duration::from_secs(60);
/// How often a poller's health is copied to its check.
const FLY_STATUS_EVERY: Duration = Duration::from_secs(1);

/// Starts every log check's source. Fails (naming the check) only on
/// keeper's own faults: an ingest source that cannot be registered, a Fly
/// poller that cannot be built.
pub async fn start(
    feeds: &Feeds,
    ingest: &Registry,
    roots: &Roots,
    shutdown: &CancellationToken,
) -> Result<Vec<JoinHandle<()>>, String> {
    let mut tasks = super::file::spawn_all(feeds, shutdown).await;
    for check in feeds.all() {
        match &check.source {
            Source::File { .. } => {}
            Source::Ingest { source, token } => ingest
                .register(source, token.expose(), sink(&check.feed))
                .map_err(|e| format!("checks.{}: {e}", check.check))?,
            Source::Fly {
                app,
                token,
                api_url,
            } => {
                let mut options = flylogs::Options::new(app.clone(), token.clone());
                options.api_url.clone_from(api_url);
                let poller = Poller::new(&options, roots)
                    .map_err(|e| format!("checks.{}: {e}", check.check))?;
                tasks.push(tokio::spawn(poll(
                    poller,
                    check.feed.clone(),
                    shutdown.clone(),
                )));
            }
        }
    }
    Ok(tasks)
}

/// What a source hands its lines to: the check's feed.
fn sink(feed: &Feed) -> LineSink {
    let feed = feed.clone();
    Arc::new(move |lines: Vec<String>, malformed: usize| {
        feed.lines(lines);
        if malformed > 0 {
            feed.malformed(malformed);
        }
    })
}

/// Polls until shutdown, telling the check when the API has been failing
/// for [`FLY_FAILING_GRACE`] and when it answers again.
async fn poll(poller: Poller, feed: Feed, shutdown: CancellationToken) {
    let status = poller.status();
    let run = poller.run(sink(&feed), shutdown);
    tokio::pin!(run);
    let mut every = tokio::time::interval(FLY_STATUS_EVERY);
    loop {
        tokio::select! {
            _ = &mut run => break,
            _ = every.tick() => {
                let failing = status.snapshot().failing.filter(|f| {
                    (Utc::now() - f.since).to_std().unwrap_or_default() >= FLY_FAILING_GRACE
                });
                feed.problem(failing.map(|f| {
                    format!(
                        "{} (failing since {}, {} attempts)",
                        f.reason,
                        f.since.format("%H:%M:%S UTC"),
                        f.attempts
                    )
                }));
            }
        }
    }
}
