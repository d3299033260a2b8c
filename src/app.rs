//! The one place that knows every part, starting keeper in two steps:
//! [`build`] makes every part from a validated config with nothing running
//! ([`Built`]), and [`Built::run`] starts them under one task tracker and
//! stops them along one shutdown path (probes, then the engine, then the
//! sample writer and the outbox; HTTP alongside). A config reload
//! (`app/reload.rs`) prepares the new config's parts with the same first
//! step, then swaps them in for the running ones ([`Keeper::reload`]).

mod build;
mod check;
mod reload;
mod run;
mod shared;
mod vital;

use std::net::SocketAddr;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::engine::Board;
use crate::probe::log::ingest;
use crate::store::{Store, StoreError};

pub use build::{Built, build};
pub use check::check;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("storage {url}: {source}")]
    Store { url: String, source: StoreError },
    #[error("restoring heartbeats from storage {url}: {source}")]
    Heartbeats {
        url: String,
        source: crate::probe::heartbeat::registry::PersistError,
    },
    #[error("{0}")]
    Build(String),
    /// A check or channel of the config could not be built.
    #[error("invalid config:\n{0}")]
    Invalid(crate::config::ConfigErrors),
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
    reloader: crate::http::reload::Reloader,
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

    /// Re-reads the config file keeper was started with, as SIGHUP and
    /// `POST /api/v1/reload` do: on any error the running config stays.
    pub async fn reload(&self) -> crate::http::reload::Reply {
        self.reloader.reload().await
    }

    /// Where reload requests go: [`Keeper::reload`] from another task.
    pub fn reloader(&self) -> crate::http::reload::Reloader {
        self.reloader.clone()
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

/// [`start`] with [`Options`].
pub async fn start_with(config: Config, options: Options) -> Result<Keeper, AppError> {
    build(config).await?.run(options).await
}
