//! Step one of start-up: every part of keeper made from a validated config —
//! store, metrics, listener, probes and their jobs, channels, outbox, sample
//! writer, engine, HTTP state — with no task running. What reads the
//! database (restored incidents, heartbeat signals, uptime) is read here, so
//! [`Built::run`](super::Built) only starts things.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use futures_util::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::{AppError, open_store};
use crate::cluster;
use crate::config::Config;
use crate::core::CheckName;
use crate::core::deployment::NewDeployment;
use crate::core::health::{ChannelHealth, RegionMembers, WriteHealth};
use crate::core::heartbeat::HeartbeatRow;
use crate::core::ownership::Ownership;
use crate::engine::{Board, Engine, EngineHandle, Inputs, Sink};
use crate::http::reload::{Reloader, Requests};
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
use crate::store::sqlite::InstanceLock;
use crate::store::uptime::UptimeBook;
use crate::store::writer::{SampleBuffer, Writer};
use crate::watchdog;

/// Every part of a keeper, built and not yet running.
pub struct Built {
    /// What lives as long as keeper does, across config reloads.
    pub(super) kept: Kept,
    pub(super) listener: TcpListener,
    pub(super) writer: Writer,
    /// Where reload requests (`POST /api/v1/reload`, SIGHUP) arrive.
    pub(super) reload_requests: Requests,
    /// What a config reload replaces.
    pub(super) parts: Parts,
    /// A SQLite database's lock, held until keeper stopped (one keeper per file).
    pub(super) sqlite_lock: Option<InstanceLock>,
}

/// What a config reload keeps: the store, the listener's address, the
/// shared metrics, the sample buffer and every handle the API reads.
#[derive(Clone)]
pub(super) struct Kept {
    pub(super) store: Store,
    /// The metrics every config's own are made from ([`Metrics::for_checks`]).
    pub(super) metrics: Metrics,
    pub(super) addr: SocketAddr,
    pub(super) health: ChannelHealth,
    /// The sample writer's writes, for `keeper:storage`.
    pub(super) writes: WriteHealth,
    pub(super) buffer: SampleBuffer,
    pub(super) uptime: UptimeBook,
    /// Cleared once shutdown begins: /readyz says 503.
    pub(super) scheduler_running: Arc<AtomicBool>,
    /// Why a vital task died, for /readyz.
    pub(super) task_died: Arc<OnceLock<String>>,
    pub(super) reloader: Reloader,
    /// What `GET /api/v1/cluster` shows: each config's member writes it.
    pub(super) cluster: cluster::View,
    /// The regions' live instances, for `keeper:regions`: the member writes it.
    pub(super) regions: RegionMembers,
    /// What changes here is told to the other instances on the database.
    pub(super) events: Bus,
}

/// The parts made from one config, which a reload replaces.
pub(super) struct Parts {
    pub(super) config: Config,
    pub(super) metrics: Metrics,
    pub(super) router: axum::Router,
    /// One per check, in the config's order (the scheduler's numbering).
    pub(super) jobs: Vec<Job>,
    /// What heartbeats and log feeds send to wake their checks.
    pub(super) wake_requests: mpsc::Receiver<usize>,
    pub(super) probes: probe::Context,
    pub(super) ingest: ingest::Registry,
    pub(super) outbox: Outbox,
    pub(super) engine: Engine,
    pub(super) engine_inputs: Inputs,
    /// Where probes' samples go: the engine's intake.
    pub(super) sink: Sink,
    pub(super) board: Board,
    /// The engine's handle, for the cluster member taking checks on.
    pub(super) engine_handle: EngineHandle,
    /// Which checks and duties this instance owns (all alone).
    pub(super) ownership: Ownership,
}

/// A config's probes and channels, built, while the running keeper (if
/// any) still runs: the step that refuses a config.
pub(super) struct Prepared {
    pub(super) config: Config,
    pub(super) metrics: Metrics,
    pub(super) probes: probe::Context,
    pub(super) wake_requests: mpsc::Receiver<usize>,
    pub(super) deployed: EngineSlot,
    pub(super) jobs: Vec<Job>,
    pub(super) channels: BTreeMap<String, Channel>,
    /// Filled at run by `log` checks with `ingest = "SOURCE"`.
    pub(super) ingest: ingest::Registry,
    pub(super) ownership: Ownership,
}

impl Built {
    /// The address the HTTP listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.kept.addr
    }
}

/// Builds every part of a keeper from `config`, starting nothing.
pub async fn build(config: Config) -> Result<Built, AppError> {
    let url = crate::core::redact::dsn(&config.storage.url);
    let stored = |source| AppError::Store {
        url: url.clone(),
        source,
    };
    // Before migrating: a second keeper on one SQLite file changes nothing.
    let sqlite_lock = InstanceLock::take(&config.storage.url)
        .await
        .map_err(stored)?;
    let store = open_store(&config).await?;
    let (listener, addr) = listen(&config).await?;
    let (reloader, reload_requests) = Reloader::new();
    let mut kept = Kept {
        store: store.clone(),
        metrics: Metrics::new(&[]),
        addr,
        health: ChannelHealth::default(),
        writes: WriteHealth::default(),
        buffer: SampleBuffer::new(config.storage.buffer),
        uptime: UptimeBook::new(),
        scheduler_running: Arc::new(AtomicBool::new(true)),
        task_died: Arc::new(OnceLock::new()),
        reloader,
        cluster: cluster::View::default(),
        regions: RegionMembers::default(),
        events: Bus::new(store),
    };
    let prepared = prepare(config, &kept).await?;
    kept.metrics = prepared.metrics.clone();
    load_heartbeats(&prepared.probes, &url).await?;
    // Uptime for the API, counted once from the rollups and the samples not
    // rolled up yet, then kept up by the writer (which has not started: no
    // batch counts twice).
    (kept.store)
        .seed_uptime(&kept.uptime, chrono::Utc::now())
        .await
        .map_err(stored)?;
    let writer = Writer::new(
        kept.store.clone(),
        kept.buffer.clone(),
        kept.metrics.writer.clone(),
    )
    .with_uptime(kept.uptime.clone())
    .with_health(kept.writes.clone());
    let (outbox, engine_parts) = outbox_and_engine_parts(&prepared, &kept);
    let (engine, sink, engine_handle, engine_inputs) =
        engine(engine_parts).await.map_err(stored)?;
    let parts = finish(
        prepared,
        &kept,
        outbox,
        (engine, sink, engine_handle, engine_inputs),
    );
    Ok(Built {
        kept,
        listener,
        writer,
        reload_requests,
        parts,
        sqlite_lock,
    })
}

/// Builds `config`'s probes and channels (every one that cannot be built is
/// named, at its place in the file) and their metrics, starting nothing.
pub(super) async fn prepare(config: Config, kept: &Kept) -> Result<Prepared, AppError> {
    let names: Vec<CheckName> = config.checks.iter().map(|c| c.name.clone()).collect();
    let metrics = kept.metrics.for_checks(&names);
    for (index, check) in config.checks.iter().enumerate() {
        metrics.describe_check(index, check.probe.kind(), &check.labels);
    }
    let (probes, wake_requests, deployed) = probe_context(&config, kept, &metrics).await?;
    let (jobs, channels) = super::check::built(&config, &probes, Some(&metrics))?;
    let ownership = cluster::ownership(&config, &kept.store);
    Ok(Prepared {
        ownership,
        config,
        metrics,
        probes,
        wake_requests,
        deployed,
        jobs,
        channels,
        ingest: ingest::Registry::default(),
    })
}

/// The outbox of `prepared`'s channels and what its engine is made of.
pub(super) fn outbox_and_engine_parts(
    prepared: &Prepared,
    kept: &Kept,
) -> (Outbox, crate::engine::Parts) {
    let (config, metrics) = (&prepared.config, &prepared.metrics);
    let channels = prepared.channels.clone();
    let outbox = outbox(config, &kept.store, channels, metrics, kept.health.clone());
    let buffer = kept.buffer.clone();
    let parts = engine_parts(
        config,
        &kept.store,
        buffer,
        metrics,
        &outbox,
        &prepared.ownership,
    );
    (outbox, parts)
}

/// The parts of `prepared` once its engine is made: the HTTP state over them.
pub(super) fn finish(
    prepared: Prepared,
    kept: &Kept,
    outbox: Outbox,
    (engine, sink, handle, engine_inputs): (Engine, Sink, EngineHandle, Inputs),
) -> Parts {
    let _ = prepared.deployed.set(handle.clone());
    let board = engine.board();
    let config = prepared.config;
    let ingest = prepared.ingest;
    let router = http::router(AppState {
        board: board.clone(),
        metrics: prepared.metrics.clone(),
        store: kept.store.clone(),
        reads: kept.store.reader(),
        uptime: kept.uptime.clone(),
        engine: handle.clone(),
        api_token: config.server.api_token.clone().map(Arc::from),
        listen: kept.addr,
        scheduler_running: kept.scheduler_running.clone(),
        task_died: kept.task_died.clone(),
        heartbeats: prepared.probes.heartbeats.clone(),
        ingest: ingest.clone(),
        page: Arc::new(http::page::Settings::new(&config)),
        reloader: kept.reloader.clone(),
        cluster: kept.cluster.clone(),
        events: kept.events.clone(),
    });
    Parts {
        config,
        metrics: prepared.metrics,
        router,
        jobs: prepared.jobs,
        wake_requests: prepared.wake_requests,
        probes: prepared.probes,
        ingest,
        outbox,
        engine,
        engine_inputs,
        sink,
        board,
        engine_handle: handle,
        ownership: prepared.ownership,
    }
}

/// Heartbeats' signals and generated tokens, as the last run left them.
pub(super) async fn load_heartbeats(probes: &probe::Context, url: &str) -> Result<(), AppError> {
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
pub(super) type EngineSlot = Arc<OnceLock<EngineHandle>>;

/// The engine, restored from the store.
async fn engine(
    parts: crate::engine::Parts,
) -> Result<(Engine, Sink, EngineHandle, Inputs), crate::store::StoreError> {
    let (mut engine, sink, handle, inputs) = Engine::new(parts);
    engine.restore().await?;
    Ok((engine, sink, handle, inputs))
}

/// The context probes are built with in the daemon: keeper's own checks
/// look at its parts, heartbeats and log feeds wake their checks and keep
/// their signals, the `fly` check records deployments. Also the receiving
/// end of the wakes, for the scheduler, and the slot the engine's handle
/// goes in for those deployments.
async fn probe_context(
    config: &Config,
    kept: &Kept,
    metrics: &Metrics,
) -> Result<(probe::Context, mpsc::Receiver<usize>, EngineSlot), AppError> {
    let (store, health, addr) = (&kept.store, &kept.health, kept.addr);
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
            writes: kept.writes.clone(),
            channels: health.clone(),
            scheduler_lag: metrics.scheduler_lag_worst.clone(),
            regions: kept.regions.clone(),
        }),
        wakes,
        heartbeats: Arc::new(store.clone()),
        ping_base: config
            .server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}")),
        deployments: Arc::new(SeenDeployments::new(config, store, &kept.events, &slot)),
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
    .with_instance(&config.cluster.name)
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
    ownership: &Ownership,
) -> crate::engine::Parts {
    crate::engine::Parts {
        checks: config.checks.clone(),
        rules: config.policy_rules(),
        store: store.clone(),
        buffer,
        metrics: metrics.clone(),
        outbox: outbox.waker(),
        direct: outbox.direct(),
        queue: 4096,
        deploys: config.deploys.clone(),
        ownership: ownership.clone(),
        place: crate::engine::Place {
            region: config.cluster.region.clone(),
            lease: config.cluster.lease,
        },
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
