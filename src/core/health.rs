//! keeper's own health as its parts record it and its self-checks read it:
//! how each channel's deliveries have been going (the outbox records every
//! attempt; a channel failing for `watchdog.channel_failing_for` is an
//! incident of its own), whether the sample writer's writes fail while the
//! database still answers, and how late the scheduler starts probes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The current failure streak of a channel: since its first failed attempt
/// after the last success.
#[derive(Clone, Debug, PartialEq)]
pub struct Failing {
    pub since: DateTime<Utc>,
    /// Attempts failed in this streak.
    pub attempts: u32,
    /// The last attempt's error.
    pub error: String,
}

impl Failing {
    /// A streak starting at `at`, with no attempt counted yet.
    fn starting(at: DateTime<Utc>) -> Failing {
        Failing {
            since: at,
            attempts: 0,
            error: String::new(),
        }
    }

    /// One more failed attempt, with its error; the attempts so far.
    fn failed(&mut self, error: &str) -> u32 {
        self.attempts += 1;
        error.clone_into(&mut self.error);
        self.attempts
    }
}

/// Per channel, the failure streak if the last attempt failed. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct ChannelHealth {
    failing: Arc<Mutex<HashMap<String, Failing>>>,
}

impl ChannelHealth {
    /// A delivery through `channel` succeeded: its streak ends.
    pub fn succeeded(&self, channel: &str) {
        self.lock().remove(channel);
    }

    /// A delivery through `channel` failed at `at`: the streak starts or goes on.
    pub fn failed(&self, channel: &str, error: &str, at: DateTime<Utc>) {
        (self.lock().entry(channel.to_string()))
            .or_insert_with(|| Failing::starting(at))
            .failed(error);
    }

    /// The channel's failure streak, if its last attempt failed.
    pub fn failing(&self, channel: &str) -> Option<Failing> {
        self.lock().get(channel).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failing>> {
        self.failing.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How `keeper:storage`'s message begins when the database does not answer
/// (the engine then stops asking it; a database that answers but refuses
/// samples is red too, with another message, and the engine goes on).
pub const STORAGE_UNREACHABLE: &str = "storage unreachable";

/// The sample writer's failure streak, if its last write failed (the
/// writer records every batch; `keeper:storage` reads it). Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct WriteHealth(Arc<Mutex<Option<Failing>>>);

impl WriteHealth {
    /// A batch was written: the streak ends.
    pub fn succeeded(&self) {
        *self.lock() = None;
    }

    /// A write failed at `at`: the streak starts or goes on. Returns the
    /// attempts failed in the streak so far.
    pub fn failed(&self, error: &str, at: DateTime<Utc>) -> u32 {
        (self.lock())
            .get_or_insert_with(|| Failing::starting(at))
            .failed(error)
    }

    /// The failure streak, if the last write failed.
    pub fn failing(&self) -> Option<Failing> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Failing>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The worst scheduler lag since the `keeper:scheduler` check last looked.
#[derive(Clone, Debug, Default)]
pub struct SchedulerLag(Arc<AtomicU64>);

impl SchedulerLag {
    pub fn observe(&self, lag: Duration) {
        let micros = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        self.0.fetch_max(micros, Ordering::Relaxed);
    }

    /// The worst lag seen since the last call, and starts over.
    pub fn take(&self) -> Duration {
        Duration::from_micros(self.0.swap(0, Ordering::Relaxed))
    }
}

/// The regions checks are probed from, each with its live instances, as
/// the cluster last saw them; `None` until it has looked (and alone).
#[derive(Clone, Debug, Default)]
pub struct RegionMembers(Arc<std::sync::RwLock<Option<Vec<RegionCount>>>>);

/// A region's name and how many live instances are in it.
pub type RegionCount = (String, usize);

impl RegionMembers {
    pub fn set(&self, regions: Vec<RegionCount>) {
        if let Ok(mut r) = self.0.write() {
            *r = Some(regions);
        }
    }

    pub fn get(&self) -> Option<Vec<RegionCount>> {
        self.0.read().ok()?.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streak_starts_at_the_first_failure_and_ends_at_a_success() {
        let health = ChannelHealth::default();
        let t0 = Utc::now();
        assert_eq!(health.failing("slack"), None);
        health.failed("slack", "503", t0);
        health.failed("slack", "timed out", t0 + chrono::Duration::seconds(30));
        let streak = health.failing("slack").expect("failing");
        assert_eq!(streak.since, t0);
        assert_eq!(streak.attempts, 2);
        assert_eq!(streak.error, "timed out");
        assert_eq!(health.failing("email"), None);
        health.succeeded("slack");
        assert_eq!(health.failing("slack"), None);
    }

    #[test]
    fn a_write_streak_keeps_its_start_and_the_last_error() {
        let writes = WriteHealth::default();
        let t0 = Utc::now();
        assert_eq!(writes.failing(), None);
        assert_eq!(writes.failed("disk full", t0), 1);
        let t1 = t0 + chrono::Duration::seconds(1);
        assert_eq!(writes.failed("database is locked", t1), 2);
        let streak = writes.failing().expect("failing");
        assert_eq!((streak.since, streak.attempts), (t0, 2));
        assert_eq!(streak.error, "database is locked");
        writes.succeeded();
        assert_eq!(writes.failing(), None);
    }
}
