//! A config reload (SIGHUP, `POST /api/v1/reload`): the file keeper was
//! started with is read and built again by the same steps as at start
//! ([`build::prepare`]: the loader, then every probe and channel) while the
//! running parts go on; anything refused leaves them untouched. Then the
//! running config's probes stop, its engine takes in the samples in flight,
//! its outbox finishes its sends, and the same engine carries on with the new
//! checks and rules ([`Engine::reshape`](crate::engine::Engine::reshape)),
//! under new workers. The store, the sample writer and its buffer, the
//! listener and the connections it serves stay.

use super::AppError;
use super::build::{self, Kept};
use super::run::{self, Tasks, Watch};
use crate::config::{Config, ConfigErrors};
use crate::http::reload::{Refused, Reply};

/// Reloads the config of `tasks`' running generation; says what changed,
/// or why nothing did.
pub(super) async fn reload(tasks: &mut Tasks, watch: &Watch) -> Reply {
    let path = tasks.current.config.path.clone();
    let outcome = swap(tasks, watch).await;
    let metrics = &watch.kept.metrics;
    match &outcome {
        Ok(done) => {
            metrics.config_reload.succeeded();
            tracing::info!(config = %path.display(), added = ?done.added, removed = ?done.removed, kept = done.kept.len(), "config reloaded");
        }
        Err(e) => {
            metrics.config_reload.failed();
            tracing::error!(config = %path.display(), error = %e, "config reload failed");
        }
    }
    outcome
}

/// Prepares the new config's parts, then stops the running ones and starts
/// the new.
async fn swap(tasks: &mut Tasks, watch: &Watch) -> Reply {
    let config = load(&tasks.current.config).await?;
    if let Some(waiting) = unwritten(&watch.kept) {
        return Err(Refused::Unavailable(format!(
            "storage is away and {waiting} incident change(s) wait to be written; reload once it is back"
        )));
    }
    let prepared = build::prepare(config, &watch.kept)
        .await
        .map_err(|e| refused(&tasks.current.config.path, e))?;
    let probes = watch.stops.root.child_token();
    let logs = run::start_logs(&prepared.probes, &prepared.ingest, &probes, &watch.tracker)
        .await
        .map_err(|e| {
            probes.cancel();
            Refused::Invalid(ConfigErrors::single(&prepared.config.path, e))
        })?;
    // From here on the running parts stop: nothing can refuse the config.
    // The running member keeps its leases: the next config's renews them.
    let (Some(engine), _) = run::halt(&mut tasks.current).await else {
        let why =
            "config reload: the engine's task ended without handing the engine over".to_string();
        let _ = watch.kept.task_died.set(why.clone());
        watch.stops.root.cancel();
        return Err(Refused::Unavailable(why));
    };
    run::drain(&mut tasks.current).await;
    let url = crate::core::redact::dsn(&prepared.config.storage.url);
    if let Err(e) = build::load_heartbeats(&prepared.probes, &url).await {
        tracing::error!(error = %e, "config reload: heartbeats start without their stored signals");
    }
    let (outbox, parts) = build::outbox_and_engine_parts(&prepared, &watch.kept);
    let (engine, sink, handle, inputs, reshaped) = engine.reshape(parts).await;
    let parts = build::finish(
        prepared,
        &watch.kept,
        outbox,
        (engine, sink, handle, inputs),
    );
    match watch.router.write() {
        Ok(mut router) => *router = parts.router.clone(),
        Err(poisoned) => *poisoned.into_inner() = parts.router.clone(),
    }
    let running = &tasks.current;
    crate::cluster::carry_over(
        (&running.config, &running.ownership),
        (&parts.config, &parts.ownership),
    );
    tasks.current = run::spawn_generation(parts, probes, logs, watch);
    Ok(reshaped)
}

/// Reads the file `running` came from (environment overrides applied, as
/// at start); warns of what only a restart changes.
async fn load(running: &Config) -> Result<Config, Refused> {
    let path = running.path.clone();
    let config = tokio::task::spawn_blocking(move || Config::load(&path))
        .await
        .map_err(|e| Refused::Unavailable(format!("reading the config: {e}")))?
        .map_err(Refused::Invalid)?;
    let restart = [
        (
            "server.listen",
            running.server.listen != config.server.listen,
        ),
        ("storage.url", running.storage.url != config.storage.url),
        (
            "storage.retention",
            running.storage.retention != config.storage.retention,
        ),
        (
            "storage.buffer",
            running.storage.buffer != config.storage.buffer,
        ),
    ];
    for (key, changed) in restart {
        if changed {
            tracing::warn!(
                key,
                "config reload: this key changed and takes effect at the next start"
            );
        }
    }
    Ok(config)
}

/// How many incident changes made while storage was away wait to be
/// written, if any: a reload waits for them.
fn unwritten(kept: &Kept) -> Option<i64> {
    let waiting = kept.metrics.unwritten.get();
    (waiting > 0).then_some(waiting)
}

/// A failed preparation as a reload's refusal.
fn refused(path: &std::path::Path, e: AppError) -> Refused {
    match e {
        AppError::Invalid(errors) => Refused::Invalid(errors),
        e => Refused::Unavailable(format!("{}: {e}", path.display())),
    }
}
