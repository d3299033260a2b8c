//! The tasks keeper cannot run without (engine, outbox, sample writer,
//! scheduler): spawned by name, and watched so that the first to end before
//! shutdown — or to panic at any time — stops keeper with its reason.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use super::Options;

/// A task keeper cannot run without, by name; ending before shutdown is fatal.
pub(super) struct Vital {
    name: &'static str,
    handle: Option<JoinHandle<()>>,
}

impl Vital {
    /// Spawns `task` on `tracker`; it panics instead when `options` ask so.
    pub(super) fn spawn(
        tracker: &TaskTracker,
        name: &'static str,
        task: impl std::future::Future<Output = ()> + Send + 'static,
        options: &Options,
    ) -> Vital {
        let panics = options.panic_task.as_deref() == Some(name);
        let handle = tracker.spawn(async move {
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
    pub(super) async fn join(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
    }
}

/// Resolves when the first of `vitals` ends, saying which and how, and
/// whether it panicked; never resolves when none is running.
pub(super) async fn first_to_end(vitals: &mut [&mut Vital]) -> (String, bool) {
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
