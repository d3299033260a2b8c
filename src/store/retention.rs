//! Retention: raw samples older than `storage.retention` (default 30 days) and
//! hourly rollups older than [`rollup::KEEP`] (400 days) are deleted, once at
//! start and then hourly. Incidents and their timelines are kept.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{Store, StoreError, rollup};

/// How often old samples are deleted.
pub const EVERY: Duration = Duration::from_secs(3600);

/// One step: deletes what is past `retention`; returns how many samples went.
pub async fn prune(store: &Store, retention: Duration) -> Result<u64, StoreError> {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let cutoff = Utc::now()
        .checked_sub_signed(retention)
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
    store.delete_samples_before(cutoff).await
}

/// One step: deletes rollups older than [`rollup::KEEP`]; returns how many went.
pub async fn prune_rollups(store: &Store) -> Result<u64, StoreError> {
    let keep = chrono::Duration::from_std(rollup::KEEP).unwrap_or(chrono::Duration::MAX);
    let cutoff = Utc::now()
        .checked_sub_signed(keep)
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
    store.delete_rollups_before(cutoff).await
}

/// Prunes at start and every [`EVERY`] until `shutdown`.
pub async fn run(store: Store, retention: Duration, shutdown: CancellationToken) {
    loop {
        match prune(&store, retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "samples past retention deleted"),
            Err(e) => tracing::warn!(error = %e, "deleting samples past retention; will retry"),
        }
        match prune_rollups(&store).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "rollups past 400 days deleted"),
            Err(e) => tracing::warn!(error = %e, "deleting rollups past 400 days; will retry"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}
