//! The one place that knows every part: builds them from a validated config,
//! spawns their tasks, and shuts them down in order (scheduler, engine, sample
//! writer, outbox; HTTP alongside) when asked.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::core::health::ChannelHealth;
use crate::engine::{Board, Engine, Parts};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::notify::outbox::Outbox;
use crate::probe;
use crate::probe::log::{self, ingest};
use crate::scheduler::{self, Job, Timetable};
use crate::store::uptime::UptimeBook;
use crate::store::writer::{SampleBuffer, Writer};
use crate::store::{Store, StoreError, retention};

// Shutdown budget (DESIGN: exit within 10 s): probes 4 s, then the sample
// writer (gives up on its own after 4 s) and the outbox (2 s) side by side.
// HTTP alongside from the start: idle connections close at once, requests in
// flight get `http::serve::Limits::shutdown_grace` (5 s).
/// How long in-flight probes get to finish at shutdown.
const PROBE_GRACE: Duration = Duration::from_secs(4);
/// How long the sample writer gets to flush at shutdown.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("storage {url}: {source}")]
    Store { url: String, source: StoreError },
    #[error("{0}")]
    Build(String),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
    /// A task keeper cannot run without ended before it was asked to stop.
    #[error("{0}; keeper stopped so that its supervisor restarts it")]
    TaskDied(String),
}

/// How to start keeper beyond its config: for tests of keeper's own faults.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Makes the named vital task (`engine`, `outbox`, `writer`, `scheduler`)
    /// panic shortly after start, to show what keeper does when one dies.
    pub panic_task: Option<String>,
}

/// Connects to the configured database and applies the migrations.
pub async fn open_store(config: &Config) -> Result<Store, AppError> {
    let err = |source| AppError::Store {
        url: crate::core::redact::dsn(&config.storage.url),
        source,
    };
    let store = Store::connect(&config.storage.url).await.map_err(err)?;
    store.migrate().await.map_err(err)?;
    Ok(store)
}

/// A running keeper.
pub struct Keeper {
    addr: SocketAddr,
    board: Board,
    ingest: ingest::Registry,
    shutdown: CancellationToken,
    done: JoinHandle<Result<(), AppError>>,
}

impl Keeper {
    /// The address the HTTP listener is bound to (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn board(&self) -> &Board {
        &self.board
    }

    /// The log ingest sources `POST /ingest/{source}` delivers to.
    pub fn ingest(&self) -> &ingest::Registry {
        &self.ingest
    }

    /// Stops scheduling, lets in-flight probes finish (or abandons them after
    /// a grace period), flushes samples, and returns once everything stopped.
    pub async fn shutdown(self) -> Result<(), AppError> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// A token that stops keeper when cancelled, as [`Keeper::shutdown`]
    /// does, while another task waits on [`Keeper::wait`].
    pub fn stopper(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until keeper stops: asked to (see [`Keeper::stopper`]), or on its
    /// own because its HTTP server failed or a vital task died (an error).
    pub async fn wait(self) -> Result<(), AppError> {
        match self.done.await {
            Ok(result) => result,
            Err(e) => Err(AppError::Build(format!("keeper task failed: {e}"))),
        }
    }
}

/// Builds every part from `config` and starts them.
pub async fn start(config: Config) -> Result<Keeper, AppError> {
    start_with(config, Options::default()).await
}

/// A task keeper cannot run without, by name; ending before shutdown is fatal.
struct Vital {
    name: &'static str,
    handle: Option<JoinHandle<()>>,
}

impl Vital {
    fn spawn(
        name: &'static str,
        task: impl std::future::Future<Output = ()> + Send + 'static,
        options: &Options,
    ) -> Vital {
        let panics = options.panic_task.as_deref() == Some(name);
        let handle = tokio::spawn(async move {
            if panics {
                tokio::time::sleep(Duration::from_millis(500)).await;
                panic!("{name}: panicking as asked (Options::panic_task)");
            }
            task.await
        });
        Vital {
            name,
            handle: Some(handle),
        }
    }

    /// Waits for the task to end, if it still runs.
    async fn join(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
    }
}

/// Resolves when the first of `vitals` ends, saying which and how, and
/// whether it panicked; never resolves when none is running.
async fn first_to_end(vitals: &mut [&mut Vital]) -> (String, bool) {
    let running: Vec<_> = vitals
        .iter_mut()
        .filter_map(|v| v.handle.as_mut().map(|h| (v.name, h)))
        .collect();
    if running.is_empty() {
        return std::future::pending().await;
    }
    let names: Vec<&str> = running.iter().map(|(name, _)| *name).collect();
    let (result, i, _) =
        futures_util::future::select_all(running.into_iter().map(|(_, h)| h)).await;
    let name = names[i];
    for v in vitals.iter_mut().filter(|v| v.name == name) {
        v.handle = None;
    }
    match result {
        Ok(()) => (format!("the {name} task ended unexpectedly"), false),
        Err(e) if e.is_panic() => (
            format!("the {name} task panicked: {}", panic_message(e)),
            true,
        ),
        Err(e) => (format!("the {name} task failed: {e}"), true),
    }
}

/// A panic's message, when it carried one.
fn panic_message(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// After a task died, how long /readyz says so before the listener closes.
const DEATH_NOTICE: Duration = Duration::from_secs(1);

/// [`start`] with [`Options`].
pub async fn start_with(config: Config, options: Options) -> Result<Keeper, AppError> {
    let store = open_store(&config).await?;
    let names: Vec<_> = config.checks.iter().map(|c| c.name.clone()).collect();
    let metrics = Metrics::new(&names);

    // Reads and parses the system CA bundle: off the async runtime.
    let mut probe_context = tokio::task::spawn_blocking(probe::Context::system)
        .await
        .map_err(|e| AppError::Build(format!("loading the system CA certificates: {e}")))?;
    let channel_health = ChannelHealth::default();
    probe_context.keeper = Some(probe::keeper::Sources {
        store: store.clone(),
        channels: channel_health.clone(),
        scheduler_lag: metrics.scheduler_lag_worst.clone(),
    });
    let mut problems = Vec::new();
    let mut jobs = Vec::new();
    for check in &config.checks {
        match check.probe.build(&check.name, &probe_context) {
            Ok(probe) => jobs.push(Job {
                name: check.name.clone(),
                probe: Arc::new(probe),
                timeout: check.timeout,
                running: Arc::new(AtomicBool::new(false)),
            }),
            Err(e) => problems.push(format!("checks.{}: {e}", check.name)),
        }
    }
    let http_client = reqwest::Client::builder()
        .user_agent(concat!("keeper/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| AppError::Build(format!("building the HTTP client: {e}")))?;
    let mut channels = BTreeMap::new();
    for ch in &config.channels {
        match ch.spec.build(&http_client) {
            Ok(c) => {
                metrics.declare_channel(&ch.name);
                channels.insert(ch.name.clone(), c);
            }
            Err(e) => problems.push(format!("channels.{}: {e}", ch.name)),
        }
    }
    if !problems.is_empty() {
        return Err(AppError::Build(problems.join("\n")));
    }
    // Heartbeats' signals and generated tokens, as the last run left them.
    let heartbeats = probe_context.heartbeats.clone();
    heartbeats
        .load(&store)
        .await
        .map_err(|source| AppError::Store {
            url: crate::core::redact::dsn(&config.storage.url),
            source,
        })?;

    // Uptime for the API, counted once from the stored samples, then kept up
    // by the writer (which has not started: no batch counts twice).
    let uptime = UptimeBook::new(config.storage.retention);
    store
        .seed_uptime(&uptime, chrono::Utc::now())
        .await
        .map_err(|source| AppError::Store {
            url: crate::core::redact::dsn(&config.storage.url),
            source,
        })?;
    let buffer = SampleBuffer::new(config.storage.buffer);
    let writer = Writer::new(store.clone(), buffer.clone(), metrics.writer.clone())
        .with_uptime(uptime.clone());
    let outbox = Outbox::new(
        store.clone(),
        Arc::new(channels),
        metrics.notifications.clone(),
    )
    .with_health(channel_health)
    .with_backoff(config.delivery.min_backoff, config.delivery.max_backoff)
    .with_max_age(config.delivery.max_age)
    .with_public_url(config.server.public_url.clone())
    .with_pacing(
        config
            .channels
            .iter()
            .map(|c| (c.name.clone(), c.min_interval))
            .collect(),
    );
    let checks: Vec<_> = config.checks.iter().cloned().map(Arc::new).collect();
    let (mut engine, sink, engine_handle, engine_inputs) = Engine::new(Parts {
        checks,
        routes: config.routes.clone(),
        repeat: config.severities.repeat.clone(),
        maintenance: config.maintenance.clone(),
        digest: config.severities.low_digest.clone(),
        store: store.clone(),
        buffer,
        metrics: metrics.clone(),
        outbox: outbox.waker(),
        direct: outbox.direct(),
        resend: config
            .channels
            .iter()
            .filter_map(|c| {
                c.spec
                    .resend_interval()
                    .map(|every| (c.name.clone(), every))
            })
            .collect(),
        queue: 4096,
    });
    engine.restore().await.map_err(|source| AppError::Store {
        url: crate::core::redact::dsn(&config.storage.url),
        source,
    })?;
    let board = engine.board();

    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|source| AppError::Listen {
            addr: config.server.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| AppError::Listen {
        addr: config.server.listen,
        source,
    })?;
    let (wakes, wake_requests) = probe::wake::wakes(1024);
    // Log checks: a critical line wakes its check. `log_feeds` maps each log
    // check to its feed and source: file sources are followed here.
    let log_feeds = probe_context.logs.clone();
    log_feeds.attach(&wakes, &names);
    let ping_base = config
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    heartbeats.attach(store.clone(), wakes, &names, ping_base);
    let scheduler_running = Arc::new(AtomicBool::new(true));
    let task_died = Arc::new(std::sync::OnceLock::new());
    // Filled below by `log` checks with `ingest = "SOURCE"`.
    let ingest = ingest::Registry::default();
    let router = http::router(AppState {
        board: board.clone(),
        metrics: metrics.clone(),
        store: store.clone(),
        reads: store.reader(),
        uptime,
        engine: engine_handle,
        api_token: config.server.api_token.clone().map(Arc::from),
        listen: addr,
        scheduler_running: scheduler_running.clone(),
        task_died: task_died.clone(),
        heartbeats: heartbeats.clone(),
        ingest: ingest.clone(),
    });

    let shutdown = CancellationToken::new();
    let stop_http = CancellationToken::new();
    let stop_writer = CancellationToken::new();
    let stop_workers = CancellationToken::new();
    // Each log check's source, in its own task: files opened now (at their
    // end unless from_start) and followed, ingest sources registered before
    // the listener serves, Fly apps polled.
    let log_tasks = log::sources::start(&log_feeds, &ingest, &probe_context.roots, &shutdown)
        .await
        .map_err(|e| {
            shutdown.cancel();
            AppError::Build(e)
        })?;
    let server = tokio::spawn({
        let stop = stop_http.clone();
        async move { http::serve::serve(listener, router, http::serve::Limits::default(), stop).await }
    });
    let mut writer_task = Vital::spawn("writer", writer.run(stop_writer.clone()), &options);
    let mut outbox_task = Vital::spawn("outbox", outbox.run(stop_workers.clone()), &options);
    let mut engine_task = Vital::spawn("engine", engine.run(engine_inputs), &options);
    let retention_task = tokio::spawn(retention::run(
        store.clone(),
        config.storage.retention,
        stop_workers.clone(),
    ));
    let timetable = Timetable::new(
        config.checks.iter().map(|c| c.schedule.clone()).collect(),
        tokio::time::Instant::now(),
    );
    let mut scheduler_task = Vital::spawn(
        "scheduler",
        scheduler::run(
            timetable,
            jobs,
            config.concurrency,
            sink,
            metrics.clone(),
            shutdown.clone(),
            PROBE_GRACE,
            wake_requests,
        ),
        &options,
    );
    tracing::info!(%addr, checks = config.checks.len(), channels = config.channels.len(), "keeper started");
    for (check, ping_url) in heartbeats.generated() {
        // The URL carries the token: not at info (`keeper check-config` shows it).
        tracing::debug!(%check, %ping_url, "heartbeat ping URL (generated token)");
    }

    let done = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            // The HTTP server ends early only on an error, a vital task only
            // when it died: either way, stop the rest too.
            let mut server = server;
            let mut died = None;
            let mut vitals = [
                &mut scheduler_task,
                &mut engine_task,
                &mut writer_task,
                &mut outbox_task,
            ];
            let server_result = tokio::select! {
                biased;
                _ = shutdown.cancelled() => None,
                r = &mut server => Some(r),
                // A vital task ends by itself only when shutdown has begun
                // (a panic is a death whenever it comes).
                (why, panicked) = first_to_end(&mut vitals) => {
                    if panicked || !shutdown.is_cancelled() {
                        tracing::error!(error = %why, "a task keeper cannot run without ended: stopping");
                        let _ = task_died.set(why.clone());
                        died = Some(why);
                    }
                    None
                }
            };
            let notice = tokio::time::sleep(if died.is_some() {
                DEATH_NOTICE
            } else {
                Duration::ZERO
            });
            shutdown.cancel();
            scheduler_running.store(false, Ordering::Release);
            // The listener closes now (after a dead task's notice, so load
            // balancers and supervisors see /readyz fail first), idle
            // connections at once, and requests in flight get the server's
            // grace while the rest stops alongside.
            let stop_listener = async {
                notice.await;
                stop_http.cancel();
            };
            let stop_the_rest = async {
                scheduler_task.join().await;
                for task in log_tasks {
                    let _ = task.await;
                }
                engine_task.join().await;
                // The writer flushes while the outbox finishes its sends and retention stops.
                stop_writer.cancel();
                stop_workers.cancel();
                let (writer_done, _, _) = tokio::join!(
                    tokio::time::timeout(FLUSH_GRACE, writer_task.join()),
                    outbox_task.join(),
                    retention_task
                );
                if writer_done.is_err() {
                    tracing::warn!("sample writer did not finish flushing in time");
                }
            };
            tokio::join!(stop_listener, stop_the_rest);
            let server_result = match server_result {
                Some(r) => r,
                None => server.await,
            };
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
    });
    Ok(Keeper {
        addr,
        board,
        ingest,
        shutdown,
        done,
    })
}
