//! Step one of start-up: every part of keeper made from a validated config —
//! store, metrics, listener, probes and their jobs, channels, outbox, sample
//! writer, engine, HTTP state — with no task running. What reads the
//! database (restored incidents, heartbeat signals, uptime) is read here, so
//! [`Built::run`](super::Built) only starts things.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::{AppError, open_store};
use crate::config::Config;
use crate::core::CheckName;
use crate::core::deployment::NewDeployment;
use crate::core::health::ChannelHealth;
use crate::core::heartbeat::HeartbeatRow;
use crate::engine::{Board, Engine, EngineHandle, Inputs, Parts, Sink};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::notify::Channel;
use crate::notify::outbox::Outbox;
use crate::probe::heartbeat::registry::PersistError;
use crate::probe::heartbeat::registry::Persistence;
use crate::probe::log::ingest;
use crate::probe::{self, tlsconf};
use crate::scheduler::Job;
use crate::store::Store;
use crate::store::events::{Bus, Event};
use crate::store::uptime::UptimeBook;
use crate::store::writer::{SampleBuffer, Writer};
use crate::watchdog;

/// Every part of a keeper, built and not yet running.
pub struct Built {
    pub(super) config: Config,
    pub(super) store: Store,
    pub(super) metrics: Metrics,
    pub(super) listener: TcpListener,
    pub(super) addr: SocketAddr,
    pub(super) router: axum::Router,
    /// One per check, in the config's order (the scheduler's numbering).
    pub(super) jobs: Vec<Job>,
    /// What heartbeats and log feeds send to wake their checks.
    pub(super) wake_requests: mpsc::Receiver<usize>,
    pub(super) probes: probe::Context,
    pub(super) ingest: ingest::Registry,
    pub(super) writer: Writer,
    pub(super) outbox: Outbox,
    pub(super) engine: Engine,
    pub(super) engine_inputs: Inputs,
    /// Where probes' samples go: the engine's intake.
    pub(super) sink: Sink,
    pub(super) board: Board,
    /// Cleared once shutdown begins: /readyz says 503.
    pub(super) scheduler_running: Arc<AtomicBool>,
    /// Why a vital task died, for /readyz.
    pub(super) task_died: Arc<OnceLock<String>>,
    /// Where other instances' changes are applied.
    pub(super) shared: super::shared::Shared,
}

impl Built {
    /// The address the HTTP listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Builds every part of a keeper from `config`, starting nothing.
pub async fn build(config: Config) -> Result<Built, AppError> {
    let store = open_store(&config).await?;
    let url = crate::core::redact::dsn(&config.storage.url);
    let stored = |source| AppError::Store {
        url: url.clone(),
        source,
    };
    let events = Bus::new(store.clone());
    let metrics = metrics_of(&config);
    let (listener, addr) = listen(&config).await?;
    let health = ChannelHealth::default();
    let (probes, wake_requests, deployed) =
        probe_context(&config, &store, &events, &metrics, &health, addr).await?;
    let (jobs, channels) = built_or_every_problem(&config, &probes, &metrics)?;
    load_heartbeats(&probes, &url).await?;
    // Uptime for the API, counted once from the rollups and the samples not
    // rolled up yet, then kept up by the writer (which has not started: no
    // batch counts twice).
    let uptime = UptimeBook::new();
    store
        .seed_uptime(&uptime, chrono::Utc::now())
        .await
        .map_err(stored)?;
    let buffer = SampleBuffer::new(config.storage.buffer);
    let writer = Writer::new(store.clone(), buffer.clone(), metrics.writer.clone())
        .with_uptime(uptime.clone());
    let outbox = outbox(&config, &store, channels, &metrics, health);
    let parts = engine_parts(&config, &store, buffer, &metrics, &outbox);
    let (engine, sink, engine_handle, engine_inputs) =
        engine(parts, &deployed).await.map_err(stored)?;
    let board = engine.board();
    let scheduler_running = Arc::new(AtomicBool::new(true));
    let task_died = Arc::new(OnceLock::new());
    // Filled at run by `log` checks with `ingest = "SOURCE"`.
    let ingest = ingest::Registry::default();
    let shared = super::shared::Shared {
        bus: events.clone(),
        store: store.clone(),
        engine: engine_handle.clone(),
        heartbeats: probes.heartbeats.clone(),
        ingest: ingest.clone(),
    };
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
        heartbeats: probes.heartbeats.clone(),
        ingest: ingest.clone(),
        page: Arc::new(http::page::Settings::new(&config)),
        events,
    });
    Ok(Built {
        config,
        store,
        metrics,
        listener,
        addr,
        router,
        jobs,
        wake_requests,
        probes,
        ingest,
        writer,
        outbox,
        engine,
        engine_inputs,
        sink,
        board,
        scheduler_running,
        task_died,
        shared,
    })
}

/// The metrics of `config`'s checks, each described by its kind and labels.
fn metrics_of(config: &Config) -> Metrics {
    let names: Vec<CheckName> = config.checks.iter().map(|c| c.name.clone()).collect();
    let metrics = Metrics::new(&names);
    for (index, check) in config.checks.iter().enumerate() {
        metrics.describe_check(index, check.probe.kind(), &check.labels);
    }
    metrics
}

/// Heartbeats' signals and generated tokens, as the last run left them.
async fn load_heartbeats(probes: &probe::Context, url: &str) -> Result<(), AppError> {
    probes
        .heartbeats
        .load()
        .await
        .map_err(|source| AppError::Heartbeats {
            url: url.to_string(),
            source,
        })
}

/// Where the engine's handle goes once it is built: the `fly` check, built
/// before it, tells it of the deployments it sees through [`SeenDeployments`].
type EngineSlot = Arc<OnceLock<EngineHandle>>;

/// The engine, restored from the store, its handle also put in `slot`.
async fn engine(
    parts: Parts,
    slot: &EngineSlot,
) -> Result<(Engine, Sink, EngineHandle, Inputs), crate::store::StoreError> {
    let (mut engine, sink, handle, inputs) = Engine::new(parts);
    engine.restore().await?;
    let _ = slot.set(handle.clone());
    Ok((engine, sink, handle, inputs))
}

/// The context probes are built with in the daemon: keeper's own checks
/// look at its parts, heartbeats and log feeds wake their checks and keep
/// their signals, the `fly` check records deployments. Also the receiving
/// end of the wakes, for the scheduler, and the slot the engine's handle
/// goes in for those deployments.
async fn probe_context(
    config: &Config,
    store: &Store,
    events: &Bus,
    metrics: &Metrics,
    health: &ChannelHealth,
    addr: SocketAddr,
) -> Result<(probe::Context, mpsc::Receiver<usize>, EngineSlot), AppError> {
    let slot = EngineSlot::default();
    let names: Vec<CheckName> = config.checks.iter().map(|c| c.name.clone()).collect();
    let (wakes, wake_requests) = probe::wake::wakes(names.into(), 1024);
    // Reads and parses the system CA bundle: off the async runtime.
    let roots = tokio::task::spawn_blocking(tlsconf::Roots::system)
        .await
        .map_err(|e| AppError::Build(format!("loading the system CA certificates: {e}")))?;
    let daemon = probe::Daemon {
        keeper: Arc::new(watchdog::Sources {
            store: store.clone(),
            channels: health.clone(),
            scheduler_lag: metrics.scheduler_lag_worst.clone(),
        }),
        wakes,
        heartbeats: Arc::new(store.clone()),
        ping_base: config
            .server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}")),
        deployments: Arc::new(SeenDeployments::new(config, store, events, &slot)),
    };
    Ok((probe::Context::daemon(roots, daemon), wake_requests, slot))
}

/// Binds the configured HTTP address (serving waits for the run).
async fn listen(config: &Config) -> Result<(TcpListener, SocketAddr), AppError> {
    let err = |source| AppError::Listen {
        addr: config.server.listen,
        source,
    };
    let listener = TcpListener::bind(config.server.listen).await.map_err(err)?;
    let addr = listener.local_addr().map_err(err)?;
    Ok((listener, addr))
}

/// Every check's job and every channel, or each one that could not be
/// built, all named at once.
fn built_or_every_problem(
    config: &Config,
    probes: &probe::Context,
    metrics: &Metrics,
) -> Result<(Vec<Job>, BTreeMap<String, Channel>), AppError> {
    let (jobs, mut problems) = jobs(config, probes);
    let (channels, channel_problems) = channels(config, metrics)?;
    problems.extend(channel_problems);
    if !problems.is_empty() {
        return Err(AppError::Build(problems.join("\n")));
    }
    Ok((jobs, channels))
}

/// Each check's probe, built, as a scheduler job; and what could not be built.
fn jobs(config: &Config, ctx: &probe::Context) -> (Vec<Job>, Vec<String>) {
    let mut problems = Vec::new();
    let mut jobs = Vec::new();
    for check in &config.checks {
        match check.probe.build(&check.name, ctx) {
            Ok(probe) => jobs.push(Job {
                name: check.name.clone(),
                probe: Arc::new(probe),
                timeout: check.timeout,
                running: Arc::new(AtomicBool::new(false)),
            }),
            Err(e) => problems.push(format!("checks.{}: {e}", check.name)),
        }
    }
    (jobs, problems)
}

/// Every channel, built, by name; and what could not be built.
fn channels(
    config: &Config,
    metrics: &Metrics,
) -> Result<(BTreeMap<String, Channel>, Vec<String>), AppError> {
    let http_client = reqwest::Client::builder()
        .user_agent(concat!("keeper/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| AppError::Build(format!("building the HTTP client: {e}")))?;
    let mut problems = Vec::new();
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
    Ok((channels, problems))
}

fn outbox(
    config: &Config,
    store: &Store,
    channels: BTreeMap<String, Channel>,
    metrics: &Metrics,
    health: ChannelHealth,
) -> Outbox {
    Outbox::new(
        store.clone(),
        Arc::new(channels),
        metrics.notifications.clone(),
    )
    .with_health(health)
    .with_backoff(config.delivery.min_backoff, config.delivery.max_backoff)
    .with_max_age(config.delivery.max_age)
    .with_public_url(config.server.public_url.clone())
    .with_pacing(
        config
            .channels
            .iter()
            .map(|c| (c.name.clone(), c.min_interval))
            .collect(),
    )
}

fn engine_parts(
    config: &Config,
    store: &Store,
    buffer: SampleBuffer,
    metrics: &Metrics,
    outbox: &Outbox,
) -> Parts {
    Parts {
        checks: config.checks.iter().cloned().map(Arc::new).collect(),
        rules: config.policy_rules(),
        store: store.clone(),
        buffer,
        metrics: metrics.clone(),
        outbox: outbox.waker(),
        direct: outbox.direct(),
        queue: 4096,
        deploys: config.deploys.clone(),
    }
}

/// Heartbeats keep their signals and generated tokens in the store.
impl Persistence for Store {
    fn load(&self) -> BoxFuture<'_, Result<Vec<HeartbeatRow>, PersistError>> {
        Box::pin(async { Ok(self.heartbeats().await?) })
    }

    fn save<'a>(
        &'a self,
        row: &'a HeartbeatRow,
    ) -> BoxFuture<'a, Result<Option<String>, PersistError>> {
        Box::pin(async move { Ok(self.save_heartbeat(row).await?) })
    }
}

/// Deployments the `fly` check sees: recorded under the check's app, then
/// told to the engine (once it is built), which watches the app.
#[derive(Debug)]
struct SeenDeployments {
    store: Store,
    /// Each check's app ([`CheckConfig::app`](crate::config::CheckConfig::app)).
    apps: BTreeMap<String, String>,
    engine: EngineSlot,
    /// Other instances on the database hear of each deployment too.
    events: Bus,
}

impl SeenDeployments {
    fn new(config: &Config, store: &Store, events: &Bus, engine: &EngineSlot) -> Self {
        let apps = config
            .checks
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.app()?.to_string())))
            .collect();
        SeenDeployments {
            store: store.clone(),
            apps,
            engine: engine.clone(),
            events: events.clone(),
        }
    }
}

impl probe::DeploymentSink for SeenDeployments {
    fn record<'a>(
        &'a self,
        check: &'a str,
        mut deployment: NewDeployment,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if let Some(app) = self.apps.get(check) {
                deployment.app.clone_from(app);
            }
            let recorded = (self.store.record_deployment(&deployment).await)
                .map_err(|e| format!("recording the deployment: {e}"))?;
            tracing::info!(check, app = %recorded.app, version = %recorded.version, "deployment seen");
            if let Some(engine) = self.engine.get() {
                engine.deployed(recorded.clone()).await;
            }
            self.events.publish(Event::Deployed(recorded.id)).await;
            Ok(())
        })
    }
}
