//! Step two of start-up: the built parts started under one task tracker and
//! one tree of cancellation tokens, watched, and stopped along one path:
//! probes first (scheduler and log sources), then the engine once the
//! samples in flight reached it, then the sample writer drains and the
//! outbox finishes its sends (retention and the rollups stop alongside), and last the
//! store's handles go. HTTP stops alongside, after a dead task's notice.
//!
//! What one config makes (scheduler, log sources, engine, outbox, reports)
//! runs as a [`Generation`]: a config reload stops it along the same path
//! ([`halt`], then [`drain`]) and starts the next, while the listener, the
//! sample writer, retention and the rollups run on.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hyper_util::service::TowerToHyperService;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::build::{Kept, Parts};
use super::vital::{Vital, first_to_end};
use super::{AppError, Built, Keeper, Options};
use crate::cluster::{self, Cluster};
use crate::config::Config;
use crate::engine::Engine;
use crate::http;
use crate::http::reload::{Reply, Requests};
use crate::probe::log;
use crate::scheduler::{self, Timetable};
use crate::store::{retention, rollup};

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

/// The cancellation tree: one root, one child per stage of the shutdown;
/// each config's parts have stages of their own ([`Generation`]).
/// Cancelling a stage stops its tasks; the root, cancelled last, stops
/// anything left.
pub(super) struct Stops {
    pub(super) root: CancellationToken,
    /// What [`Keeper::stopper`] cancels.
    shutdown: CancellationToken,
    /// The sample writer, retention and the rollups.
    drain: CancellationToken,
    /// The HTTP listener.
    http: CancellationToken,
}

impl Stops {
    fn new() -> Stops {
        let root = CancellationToken::new();
        Stops {
            shutdown: CancellationToken::new(),
            drain: root.child_token(),
            http: root.child_token(),
            root,
        }
    }
}

/// The running parts of one config, which a reload stops and replaces.
pub(super) struct Generation {
    /// The scheduler and the log sources.
    probes: CancellationToken,
    /// The outbox and the scheduled reports.
    drain: CancellationToken,
    scheduler: Vital,
    engine: Vital,
    outbox: Vital,
    logs: JoinHandle<()>,
    /// The scheduled reports (`[reports]`); ends at once without any.
    reports: JoinHandle<()>,
    /// The engine once its task ended: a reload carries it on.
    engine_back: Arc<Mutex<Option<Engine>>>,
    /// Renewing this config's leases (on PostgreSQL; ends at once alone),
    /// stopped with the probes; it hands the member back to give them up.
    cluster: JoinHandle<Option<Cluster>>,
    cluster_stop: CancellationToken,
    /// Other instances' changes applied to this config's parts (stopped
    /// with the outbox); ends at once on SQLite.
    shared: JoinHandle<()>,
    /// Which checks and duties are this instance's under this config.
    pub(super) ownership: crate::core::ownership::Ownership,
    pub(super) config: Config,
}

/// Every started task, for the shutdown path to stop in order.
pub(super) struct Tasks {
    server: JoinHandle<std::io::Result<()>>,
    writer: Vital,
    retention: JoinHandle<()>,
    rollup: JoinHandle<()>,
    pub(super) current: Generation,
}

/// What the supervisor keeps besides the tasks.
pub(super) struct Watch {
    pub(super) stops: Stops,
    pub(super) tracker: TaskTracker,
    /// The store (dropped last, once every task that used it ended) and
    /// what else lives across reloads.
    pub(super) kept: Kept,
    /// The router the HTTP server serves through: a reload swaps it.
    pub(super) router: Arc<RwLock<axum::Router>>,
    pub(super) options: Options,
    /// Dropped last, with the store: the next keeper may open the SQLite file.
    pub(super) _sqlite_lock: Option<crate::store::sqlite::InstanceLock>,
}

impl Built {
    /// Starts every part, and a supervisor that stops them all on request,
    /// when the HTTP server fails or when a vital task dies, and reloads the
    /// config when asked.
    pub async fn run(self, options: Options) -> Result<Keeper, AppError> {
        let stops = Stops::new();
        let tracker = TaskTracker::new();
        let Built {
            kept,
            listener,
            writer,
            reload_requests,
            parts,
            sqlite_lock,
        } = self;
        let probes = stops.root.child_token();
        let logs = start_logs(&parts.probes, &parts.ingest, &probes, &tracker)
            .await
            .map_err(|e| {
                stops.root.cancel();
                AppError::Build(e)
            })?;
        for (check, ping_url) in parts.probes.heartbeats.generated() {
            // The URL carries the token: not at info (`keeper check-config` shows it).
            tracing::debug!(%check, %ping_url, "heartbeat ping URL (generated token)");
        }
        let (addr, board, ingest) = (kept.addr, parts.board.clone(), parts.ingest.clone());
        let router = Arc::new(RwLock::new(parts.router.clone()));
        let server = tracker.spawn(http::serve::serve(
            listener,
            swappable(router.clone()),
            http::serve::Limits::default(),
            stops.http.clone(),
        ));
        let retention = parts.config.storage.retention;
        let watch = Watch {
            stops,
            tracker: tracker.clone(),
            kept,
            router,
            options,
            _sqlite_lock: sqlite_lock,
        };
        let tasks = Tasks {
            server,
            writer: Vital::spawn(
                &tracker,
                "writer",
                writer.run(watch.stops.drain.clone()),
                &watch.options,
            ),
            retention: tracker.spawn(retention::run(
                watch.kept.store.clone(),
                retention,
                watch.stops.drain.clone(),
            )),
            rollup: tracker.spawn(rollup::run(
                watch.kept.store.clone(),
                retention,
                watch.stops.drain.clone(),
            )),
            current: spawn_generation(parts, probes, logs, &watch),
        };
        tracker.close();
        let config = &tasks.current.config;
        tracing::info!(%addr, checks = config.checks.len(), channels = config.channels.len(), "keeper started");
        Ok(Keeper {
            addr,
            board,
            ingest,
            shutdown: watch.stops.shutdown.clone(),
            reloader: watch.kept.reloader.clone(),
            done: tokio::spawn(supervise(tasks, watch, reload_requests)),
        })
    }
}

/// Starts each log check's source of `parts` under `stop`, in tasks of its
/// own: files opened now (at their end unless from_start) and followed,
/// ingest sources registered before the listener serves, Fly apps polled.
/// One task on `tracker` waits for them.
pub(super) async fn start_logs(
    probes: &crate::probe::Context,
    ingest: &log::ingest::Registry,
    stop: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<JoinHandle<()>, String> {
    let tasks = log::sources::start(&probes.logs, ingest, &probes.roots, stop).await?;
    Ok(tracker.spawn(async move {
        for task in tasks {
            let _ = task.await;
        }
    }))
}

/// The HTTP service that hands each request to the router in `slot`, which
/// a reload replaces while connections keep being served.
fn swappable(slot: Arc<RwLock<axum::Router>>) -> axum::Router {
    axum::Router::new().fallback(move |request: axum::extract::Request| {
        let router = match slot.read() {
            Ok(router) => router.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        async move {
            use hyper::service::Service;
            let served = TowerToHyperService::new(router).call(request).await;
            match served {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    })
}

/// Spawns the workers of one config's `parts` on the tracker: the
/// scheduler (under `probes`, like `logs`), the engine, the outbox and the
/// scheduled reports.
pub(super) fn spawn_generation(
    parts: Parts,
    probes: CancellationToken,
    logs: JoinHandle<()>,
    watch: &Watch,
) -> Generation {
    let (tracker, options) = (&watch.tracker, &watch.options);
    let drain = watch.stops.root.child_token();
    let reports = reports(&parts.config, &watch.kept, &parts, &drain);
    let cluster_stop = watch.stops.root.child_token();
    let (cluster, ready) = spawn_member(&parts, watch, &cluster_stop);
    let config = parts.config;
    let shared = tracker.spawn(
        super::shared::Shared {
            bus: watch.kept.events.clone(),
            store: watch.kept.store.clone(),
            engine: parts.engine_handle.clone(),
            heartbeats: parts.probes.heartbeats.clone(),
            ingest: parts.ingest.clone(),
        }
        .run(drain.clone()),
    );
    let outbox = parts.outbox.run(drain.clone());
    let schedules: Vec<_> = config.checks.iter().map(|c| c.schedule.clone()).collect();
    let (lease, concurrency, stop) = (config.cluster.lease, config.concurrency, probes.clone());
    let (jobs, sink, metrics, wakes) = (parts.jobs, parts.sink, parts.metrics, parts.wake_requests);
    let ownership = parts.ownership.clone();
    // The first runs are planned (spread over their intervals) once this
    // instance knows which checks are its own: none is lost to the first
    // renewal. A database that does not answer holds them back one lease.
    let scheduler = async move {
        let _ = tokio::time::timeout(lease, ready).await;
        let timetable = Timetable::new(schedules, tokio::time::Instant::now());
        let grace = PROBE_GRACE;
        scheduler::run(
            timetable,
            jobs,
            concurrency,
            sink,
            metrics,
            stop,
            grace,
            wakes,
            ownership,
        )
        .await;
    };
    let engine_back = Arc::new(Mutex::new(None));
    let back = engine_back.clone();
    let (engine, inputs) = (parts.engine, parts.engine_inputs);
    let engine = async move {
        let engine = engine.run(inputs).await;
        if let Ok(mut slot) = back.lock() {
            *slot = Some(engine);
        }
    };
    Generation {
        scheduler: Vital::spawn(tracker, "scheduler", scheduler, options),
        engine: Vital::spawn(tracker, "engine", engine, options),
        outbox: Vital::spawn(tracker, "outbox", outbox, options),
        reports: tracker.spawn(reports),
        logs,
        engine_back,
        cluster,
        cluster_stop,
        shared,
        ownership: parts.ownership,
        probes,
        drain,
        config,
    }
}

/// This config's cluster member, renewing its leases until `stop` (none
/// on SQLite), and what hears once its first renewal is over.
fn spawn_member(
    parts: &Parts,
    watch: &Watch,
    stop: &CancellationToken,
) -> (
    JoinHandle<Option<Cluster>>,
    tokio::sync::oneshot::Receiver<()>,
) {
    let member = cluster::start(
        &parts.config,
        cluster::Parts {
            store: watch.kept.store.clone(),
            board: parts.board.clone(),
            engine: parts.engine_handle.clone(),
            metrics: parts.metrics.clone(),
            ownership: parts.ownership.clone(),
            regions: watch.kept.regions.clone(),
        },
        &watch.kept.cluster,
    );
    let until = stop.clone();
    let (known, ready) = tokio::sync::oneshot::channel();
    let cluster = watch.tracker.spawn(async move {
        match member {
            Some(member) => Some(member.run(until, known).await),
            None => {
                let _ = known.send(());
                None
            }
        }
    });
    (cluster, ready)
}

/// What woke the supervisor.
enum Event {
    /// Stop: asked, the HTTP server ended (its result), or a vital task died (why).
    Stop(
        Option<Result<std::io::Result<()>, tokio::task::JoinError>>,
        Option<String>,
    ),
    /// Reload the config; the answer goes here.
    Reload(tokio::sync::oneshot::Sender<Reply>),
}

/// Waits for a reason to stop (asked, the HTTP server failed, a vital task
/// died), reloading the config whenever asked meanwhile, then stops
/// everything in order and says how keeper ended.
async fn supervise(mut tasks: Tasks, watch: Watch, mut reloads: Requests) -> Result<(), AppError> {
    let (server_result, died) = loop {
        match next_event(&mut tasks, &watch, &mut reloads).await {
            Event::Stop(server_result, died) => break (server_result, died),
            Event::Reload(reply) => {
                let outcome = super::reload::reload(&mut tasks, &watch).await;
                let _ = reply.send(outcome);
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

/// The supervisor's next reason to act.
async fn next_event(tasks: &mut Tasks, watch: &Watch, reloads: &mut Requests) -> Event {
    let current = &mut tasks.current;
    let mut vitals = [
        &mut current.scheduler,
        &mut current.engine,
        &mut tasks.writer,
        &mut current.outbox,
    ];
    tokio::select! {
        biased;
        _ = watch.stops.shutdown.cancelled() => Event::Stop(None, None),
        r = &mut tasks.server => Event::Stop(Some(r), None),
        // A vital task ends by itself only when shutdown has begun
        // (a panic is a death whenever it comes).
        (why, panicked) = first_to_end(&mut vitals) => {
            if panicked || !watch.stops.shutdown.is_cancelled() {
                tracing::error!(error = %why, "a task keeper cannot run without ended: stopping");
                let _ = watch.kept.task_died.set(why.clone());
                Event::Stop(None, Some(why))
            } else {
                Event::Stop(None, None)
            }
        }
        Some(reply) = reloads.recv() => Event::Reload(reply),
    }
}

/// Stops `generation`'s probes, then its engine once the samples in flight
/// reached it, then its cluster member (which keeps its leases); returns
/// the engine and the member.
pub(super) async fn halt(generation: &mut Generation) -> (Option<Engine>, Option<Cluster>) {
    generation.probes.cancel();
    generation.scheduler.join().await;
    let _ = (&mut generation.logs).await;
    // The scheduler dropped its sink: the engine ends once it took in
    // the last samples.
    generation.engine.join().await;
    generation.cluster_stop.cancel();
    let member = (&mut generation.cluster).await.ok().flatten();
    let engine = generation
        .engine_back
        .lock()
        .ok()
        .and_then(|mut e| e.take());
    (engine, member)
}

/// Lets `generation`'s outbox finish its sends and its reports stop.
pub(super) async fn drain(generation: &mut Generation) {
    generation.drain.cancel();
    let _ = tokio::join!(
        generation.outbox.join(),
        &mut generation.reports,
        &mut generation.shared
    );
}

/// The one shutdown path. Returns the HTTP server's result.
async fn stop(
    mut tasks: Tasks,
    watch: Watch,
    died: bool,
    server_result: Option<Result<std::io::Result<()>, tokio::task::JoinError>>,
) -> Result<std::io::Result<()>, tokio::task::JoinError> {
    let notice = tokio::time::sleep(if died { DEATH_NOTICE } else { Duration::ZERO });
    watch.stops.shutdown.cancel();
    watch.kept.scheduler_running.store(false, Ordering::Release);
    // The listener closes now (after a dead task's notice, so load
    // balancers and supervisors see /readyz fail first), idle connections at
    // once, and requests in flight get the server's grace while the rest
    // stops alongside.
    let stop_listener = async {
        notice.await;
        watch.stops.http.cancel();
    };
    let stop_the_rest = async {
        // The engine is done: this instance's leases go to the others now.
        if let (_, Some(member)) = halt(&mut tasks.current).await {
            member.leave().await;
        }
        // The writer flushes while the outbox finishes its sends and
        // retention and the rollups stop.
        watch.stops.drain.cancel();
        let (writer_done, _, _, _) = tokio::join!(
            tokio::time::timeout(FLUSH_GRACE, tasks.writer.join()),
            drain(&mut tasks.current),
            &mut tasks.retention,
            &mut tasks.rollup,
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
    drop(watch.kept);
    server_result
}

/// The daily health report's task (`[reports] health`), on the store's
/// reader and the outbox's channels; nothing to do without the key.
fn reports(
    config: &crate::config::Config,
    kept: &Kept,
    parts: &Parts,
    stop: &CancellationToken,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    use crate::report::health::daily;
    let addr = kept.addr;
    let Some(schedule) = config.reports.health.clone() else {
        return Box::pin(async {});
    };
    let daily = daily::Daily {
        schedule,
        checks: config.checks.clone(),
        channels: daily::routed_channels(&config.routes),
        link: (config.server.public_url.clone()).unwrap_or_else(|| format!("http://{addr}/")),
        ownership: parts.ownership.clone(),
    };
    Box::pin(daily::run(
        daily,
        kept.store.reader(),
        parts.outbox.channels(),
        stop.clone(),
    ))
}
