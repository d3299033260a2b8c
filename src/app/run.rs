//! Step two of start-up: the built parts started under one task tracker and
//! one tree of cancellation tokens, watched, and stopped along one path:
//! probes first (scheduler and log sources), then the engine once the
//! samples in flight reached it, then the sample writer drains and the
//! outbox finishes its sends (retention and the rollups stop alongside), and last the
//! store's handles go. HTTP stops alongside, after a dead task's notice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::vital::{Vital, first_to_end};
use super::{AppError, Built, Keeper, Options};
use crate::http;
use crate::probe::log;
use crate::scheduler::{self, Timetable};
use crate::store::{Store, retention, rollup};

// Shutdown budget (DESIGN: exit within 10 s): probes 4 s, then the sample
// writer (gives up on its own after 4 s) and the outbox (2 s) side by side.
// HTTP alongside from the start: idle connections close at once, requests in
// flight get `http::serve::Limits::shutdown_grace` (5 s).
/// How long in-flight probes get to finish at shutdown.
const PROBE_GRACE: Duration = Duration::from_secs(4);
/// How long the sample writer gets to flush at shutdown.
const FLUSH_GRACE: Duration = Duration::from_secs(5);
/// After a task died, how long /readyz says so before the listener closes.
const DEATH_NOTICE: Duration = Duration::from_secs(1);
/// How long tasks still running at the end of the shutdown path are waited for.
const LAST_GRACE: Duration = Duration::from_millis(500);

/// The cancellation tree: one root, one child per stage of the shutdown.
/// Cancelling a stage stops its tasks; the root, cancelled last, stops
/// anything left.
struct Stops {
    root: CancellationToken,
    /// The scheduler and the log sources; what [`Keeper::stopper`] cancels.
    probes: CancellationToken,
    /// The sample writer, the outbox, retention, the rollups, the scheduled
    /// reports, and the changes other instances make.
    drain: CancellationToken,
    /// The HTTP listener.
    http: CancellationToken,
}

impl Stops {
    fn new() -> Stops {
        let root = CancellationToken::new();
        Stops {
            probes: root.child_token(),
            drain: root.child_token(),
            http: root.child_token(),
            root,
        }
    }
}

/// Every started task, for the shutdown path to stop in order.
struct Tasks {
    server: JoinHandle<std::io::Result<()>>,
    scheduler: Vital,
    engine: Vital,
    writer: Vital,
    outbox: Vital,
    logs: JoinHandle<()>,
    retention: JoinHandle<()>,
    rollup: JoinHandle<()>,
    /// The scheduled reports (`[reports]`); ends at once without any.
    reports: JoinHandle<()>,
    /// Other instances' changes applied here; ends at once on SQLite.
    shared: JoinHandle<()>,
}

/// What the supervisor keeps besides the tasks.
struct Watch {
    stops: Stops,
    tracker: TaskTracker,
    /// Dropped last, once every task that used the store ended.
    store: Store,
    scheduler_running: Arc<AtomicBool>,
    task_died: Arc<OnceLock<String>>,
}

impl Built {
    /// Starts every part, and a supervisor that stops them all on request,
    /// when the HTTP server fails or when a vital task dies.
    pub async fn run(self, options: Options) -> Result<Keeper, AppError> {
        let stops = Stops::new();
        let tracker = TaskTracker::new();
        // Each log check's source, in its own task: files opened now (at their
        // end unless from_start) and followed, ingest sources registered before
        // the listener serves, Fly apps polled.
        let log_tasks = log::sources::start(
            &self.probes.logs,
            &self.ingest,
            &self.probes.roots,
            &stops.probes,
        )
        .await
        .map_err(|e| {
            stops.root.cancel();
            AppError::Build(e)
        })?;
        let logs = tracker.spawn(async move {
            for task in log_tasks {
                let _ = task.await;
            }
        });
        let (addr, board, ingest) = (self.addr, self.board.clone(), self.ingest.clone());
        for (check, ping_url) in self.probes.heartbeats.generated() {
            // The URL carries the token: not at info (`keeper check-config` shows it).
            tracing::debug!(%check, %ping_url, "heartbeat ping URL (generated token)");
        }
        let watch = Watch {
            store: self.store.clone(),
            scheduler_running: self.scheduler_running.clone(),
            task_died: self.task_died.clone(),
            tracker: tracker.clone(),
            stops,
        };
        let tasks = self.spawn(&watch, logs, &options);
        tracker.close();
        let shutdown = watch.stops.probes.clone();
        Ok(Keeper {
            addr,
            board,
            ingest,
            shutdown,
            done: tokio::spawn(supervise(tasks, watch)),
        })
    }

    /// Spawns the HTTP server and every worker on the tracker.
    fn spawn(self, watch: &Watch, logs: JoinHandle<()>, options: &Options) -> Tasks {
        let (tracker, stops, config) = (&watch.tracker, &watch.stops, &self.config);
        let server = tracker.spawn(http::serve::serve(
            self.listener,
            self.router,
            http::serve::Limits::default(),
            stops.http.clone(),
        ));
        let reports = reports(config, self.addr, &self.store, &self.outbox, &stops.drain);
        let shared = tracker.spawn(self.shared.run(stops.drain.clone()));
        let writer = self.writer.run(stops.drain.clone());
        let outbox = self.outbox.run(stops.drain.clone());
        let rollup = rollup::run(
            self.store.clone(),
            config.storage.retention,
            stops.drain.clone(),
        );
        let retention = retention::run(self.store, config.storage.retention, stops.drain.clone());
        let timetable = Timetable::new(
            config.checks.iter().map(|c| c.schedule.clone()).collect(),
            tokio::time::Instant::now(),
        );
        let scheduler = scheduler::run(
            timetable,
            self.jobs,
            config.concurrency,
            self.sink,
            self.metrics,
            stops.probes.clone(),
            PROBE_GRACE,
            self.wake_requests,
        );
        tracing::info!(addr = %self.addr, checks = config.checks.len(), channels = config.channels.len(), "keeper started");
        Tasks {
            server,
            writer: Vital::spawn(tracker, "writer", writer, options),
            outbox: Vital::spawn(tracker, "outbox", outbox, options),
            engine: Vital::spawn(
                tracker,
                "engine",
                self.engine.run(self.engine_inputs),
                options,
            ),
            retention: tracker.spawn(retention),
            rollup: tracker.spawn(rollup),
            reports: tracker.spawn(reports),
            shared,
            scheduler: Vital::spawn(tracker, "scheduler", scheduler, options),
            logs,
        }
    }
}

/// Waits for a reason to stop (asked, the HTTP server failed, a vital task
/// died), then stops everything in order and says how keeper ended.
async fn supervise(mut tasks: Tasks, watch: Watch) -> Result<(), AppError> {
    let (server_result, died) = {
        let mut vitals = [
            &mut tasks.scheduler,
            &mut tasks.engine,
            &mut tasks.writer,
            &mut tasks.outbox,
        ];
        tokio::select! {
            biased;
            _ = watch.stops.probes.cancelled() => (None, None),
            r = &mut tasks.server => (Some(r), None),
            // A vital task ends by itself only when shutdown has begun
            // (a panic is a death whenever it comes).
            (why, panicked) = first_to_end(&mut vitals) => {
                if panicked || !watch.stops.probes.is_cancelled() {
                    tracing::error!(error = %why, "a task keeper cannot run without ended: stopping");
                    let _ = watch.task_died.set(why.clone());
                    (None, Some(why))
                } else {
                    (None, None)
                }
            }
        }
    };
    let server_result = stop(tasks, watch, died.is_some(), server_result).await;
    tracing::info!("keeper stopped");
    if let Some(why) = died {
        return Err(AppError::TaskDied(why));
    }
    match server_result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(AppError::Serve(e)),
        Err(e) => Err(AppError::Build(format!("HTTP server task failed: {e}"))),
    }
}

/// The one shutdown path. Returns the HTTP server's result.
async fn stop(
    mut tasks: Tasks,
    watch: Watch,
    died: bool,
    server_result: Option<Result<std::io::Result<()>, tokio::task::JoinError>>,
) -> Result<std::io::Result<()>, tokio::task::JoinError> {
    let notice = tokio::time::sleep(if died { DEATH_NOTICE } else { Duration::ZERO });
    watch.stops.probes.cancel();
    watch.scheduler_running.store(false, Ordering::Release);
    // The listener closes now (after a dead task's notice, so load
    // balancers and supervisors see /readyz fail first), idle connections at
    // once, and requests in flight get the server's grace while the rest
    // stops alongside.
    let stop_listener = async {
        notice.await;
        watch.stops.http.cancel();
    };
    let stop_the_rest = async {
        tasks.scheduler.join().await;
        let _ = (&mut tasks.logs).await;
        // The scheduler dropped its sink: the engine ends once it took in
        // the last samples.
        tasks.engine.join().await;
        // The writer flushes while the outbox finishes its sends and
        // retention and the rollups stop.
        watch.stops.drain.cancel();
        let (writer_done, _, _, _, _, _) = tokio::join!(
            tokio::time::timeout(FLUSH_GRACE, tasks.writer.join()),
            tasks.outbox.join(),
            &mut tasks.retention,
            &mut tasks.rollup,
            &mut tasks.reports,
            &mut tasks.shared
        );
        if writer_done.is_err() {
            tracing::warn!("sample writer did not finish flushing in time");
        }
    };
    tokio::join!(stop_listener, stop_the_rest);
    let server_result = match server_result {
        Some(r) => r,
        None => tasks.server.await,
    };
    // Anything still running is told to stop, and waited for briefly: a
    // writer past its grace is not waited for.
    watch.stops.root.cancel();
    if tokio::time::timeout(LAST_GRACE, watch.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("a task did not stop in time; leaving it");
    }
    // Then the store's last handle here goes, closing its connections.
    drop(watch.store);
    server_result
}

/// The daily health report's task (`[reports] health`), on the store's
/// reader and the outbox's channels; nothing to do without the key.
fn reports(
    config: &crate::config::Config,
    addr: std::net::SocketAddr,
    store: &Store,
    outbox: &crate::notify::outbox::Outbox,
    stop: &CancellationToken,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    use crate::report::health::daily;
    let Some(schedule) = config.reports.health.clone() else {
        return Box::pin(async {});
    };
    let daily = daily::Daily {
        schedule,
        checks: config.checks.clone(),
        channels: daily::routed_channels(&config.routes),
        link: (config.server.public_url.clone()).unwrap_or_else(|| format!("http://{addr}/")),
    };
    Box::pin(daily::run(
        daily,
        store.reader(),
        outbox.channels(),
        stop.clone(),
    ))
}
