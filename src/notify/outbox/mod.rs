//! The durable delivery worker: claims due rows of the store's outbox, sends
//! each through its channel, and marks it sent, due again later (exponential
//! backoff) or failed. It owns retries; channels do transport only, and
//! rendering is [`super::render`]'s.
//!
//! A transient failure (timeout, connection error, 5xx, 408, 429) is retried
//! with exponential backoff and jitter, capped at `delivery.max_backoff`, for
//! as long as the row is younger than `delivery.max_age` (counted from when
//! it was queued); the attempt count and the next attempt's time live in the
//! row, so a restart carries on where it left off. A permanent refusal fails
//! the row at once with the receiver's answer. Every attempt carries the same
//! idempotency key, the notification's id ([`super::Channel::send`]). A row the
//! store cannot decode is failed with the reason; the others go on. The rule
//! itself is [`super::retry`]'s.
//!
//! One step ([`Outbox::step`]) claims the due rows, groups them by channel and
//! sends the groups concurrently: rows of one channel go in order, one at a
//! time, and a transient failure backs off the rest of that channel's group
//! with it, so a dead channel costs one attempt per step, not one per row. A
//! channel still busy from an earlier step is left alone (its rows are not
//! claimed), so a slow channel never holds up another. [`Outbox::run`] is the
//! thin loop: a step on every wake-up ([`Outbox::waker`]) or poll tick, each in
//! its own task.
//!
//! Several instances may share one outbox (PostgreSQL): a step claims its rows
//! in the store under the instance's name ([`Outbox::with_instance`]) for a
//! lease ([`Outbox::with_claim_lease`]), renewed while its sends go on, and
//! each outcome is recorded only while the claim is still this instance's
//! (which releases it). An instance that dies mid-send leaves its rows to
//! another once the claim lapses; the notification's idempotency key covers
//! the rare send made twice that way. See [`Store::claim_notifications`].
//!
//! Keeper's own incidents about its storage cannot wait in a store that is
//! away: [`Outbox::direct`] hands such notifications straight to the worker,
//! which sends them with the same retries, in memory. Every attempt, either
//! way, is recorded in [`ChannelHealth`].
//!
//! Here: the worker, its settings and its loop; sending and recording one
//! channel's rows is [`send`]'s, the store-less path [`direct`]'s.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::future::join_all;
use prometheus::IntCounterVec;
use tokio::sync::{Mutex, Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Channel;
use crate::core::OutboxEntry;
use crate::core::health::ChannelHealth;
use crate::store::{Claim, Store, StoreError};

mod direct;
mod send;

pub use direct::Direct;
use direct::DirectRow;

/// How long a notification is retried, from when it was queued (`delivery.max_age`).
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The first retry's delay; each next one doubles (`delivery.min_backoff`).
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(1);

/// The longest delay between two attempts (`delivery.max_backoff`).
pub const DEFAULT_BACKOFF_CAP: Duration = Duration::from_secs(300);

/// How long one send may take before it counts as a transient failure.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the loop looks for due rows when nobody wakes it.
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// How long shutdown waits for sends in flight (keeper exits within 10 s).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Rows claimed per step.
const BATCH: u32 = 500;

/// What a claim's lease adds to the send timeout by default: a claim must
/// outlast the send it covers (renewed before each send, see [`send`]).
const CLAIM_MARGIN: Duration = Duration::from_secs(30);

/// What one step did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Delivered.
    pub sent: usize,
    /// Failed this time, due again later.
    pub retried: usize,
    /// Given up: permanent error, past `max_age`, unknown channel or undecodable row.
    pub failed: usize,
    /// Not tried this step: an earlier row of their channel had just failed.
    pub deferred: usize,
    /// Tried, but the claim had lapsed and another instance took the row:
    /// the outcome is left to it.
    pub lost: usize,
}

impl StepReport {
    fn add(&mut self, other: &StepReport) {
        self.sent += other.sent;
        self.retried += other.retried;
        self.failed += other.failed;
        self.deferred += other.deferred;
        self.lost += other.lost;
    }
}

/// The outbox worker. Cheap to clone: clones share the channels, the wake-up
/// and the set of busy channels.
#[derive(Clone, Debug)]
pub struct Outbox {
    store: Store,
    channels: Arc<BTreeMap<String, Channel>>,
    wake: Arc<Notify>,
    sent: IntCounterVec,
    max_age: Duration,
    backoff_base: Duration,
    backoff_cap: Duration,
    send_timeout: Duration,
    poll: Duration,
    /// This instance's name: who claims rows (`claimed_by`).
    instance: Arc<str>,
    /// How long a claim holds; by default twice the send timeout plus
    /// [`CLAIM_MARGIN`].
    claim_lease: Option<Duration>,
    /// Base URL for incident links (`server.public_url`).
    public_url: Option<String>,
    /// At most one message per interval, by channel (`min_interval`).
    pacing: Arc<BTreeMap<String, Duration>>,
    /// When each channel last sent, for the pacing.
    last_sent: Arc<std::sync::Mutex<std::collections::HashMap<String, tokio::time::Instant>>>,
    /// Channels with a send in flight. Claiming rows and releasing a channel
    /// both hold this lock, so no row is claimed twice.
    busy: Arc<Mutex<HashSet<String>>>,
    /// Every attempt's outcome, by channel.
    health: ChannelHealth,
    /// Notifications sent without the store ([`Outbox::direct`]).
    direct_tx: mpsc::UnboundedSender<DirectRow>,
    direct_rx: Arc<std::sync::Mutex<Option<mpsc::UnboundedReceiver<DirectRow>>>>,
}

impl Outbox {
    /// A worker over `store`'s outbox, sending through `channels` (by name) and
    /// counting into `keeper_notifications_total`.
    pub fn new(
        store: Store,
        channels: Arc<BTreeMap<String, Channel>>,
        notifications_total: IntCounterVec,
    ) -> Outbox {
        let (direct_tx, direct_rx) = mpsc::unbounded_channel();
        Outbox {
            store,
            channels,
            wake: Arc::new(Notify::new()),
            sent: notifications_total,
            max_age: DEFAULT_MAX_AGE,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_cap: DEFAULT_BACKOFF_CAP,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            poll: DEFAULT_POLL,
            instance: Arc::from(crate::telemetry::host_name()),
            claim_lease: None,
            public_url: None,
            pacing: Arc::default(),
            last_sent: Arc::default(),
            busy: Arc::new(Mutex::new(HashSet::new())),
            health: ChannelHealth::default(),
            direct_tx,
            direct_rx: Arc::new(std::sync::Mutex::new(Some(direct_rx))),
        }
    }

    /// Records every attempt in `health` (shared with keeper's own channel checks).
    /// The built channels, by name (the scheduled reports send through them too).
    pub fn channels(&self) -> Arc<BTreeMap<String, Channel>> {
        self.channels.clone()
    }

    pub fn with_health(mut self, health: ChannelHealth) -> Outbox {
        self.health = health;
        self
    }

    /// Where to hand notifications that must not wait for the store.
    pub fn direct(&self) -> Direct {
        Direct(self.direct_tx.clone())
    }

    /// Retry delays: `base`, `2 × base`, `4 × base`… at most `cap`.
    pub fn with_backoff(mut self, base: Duration, cap: Duration) -> Outbox {
        self.backoff_base = base;
        self.backoff_cap = cap.max(base);
        self
    }

    /// How long a transiently failing notification is retried, from when it
    /// was queued; past it, it is failed.
    pub fn with_max_age(mut self, max_age: Duration) -> Outbox {
        self.max_age = max_age;
        self
    }

    pub fn with_send_timeout(mut self, timeout: Duration) -> Outbox {
        self.send_timeout = timeout;
        self
    }

    /// Links notifications to `{public_url}/incidents/{id}` when they carry no link yet.
    pub fn with_public_url(mut self, public_url: Option<String>) -> Outbox {
        self.public_url = public_url;
        self
    }

    /// Paces channels: at most one message per interval, by channel name.
    pub fn with_pacing(mut self, pacing: BTreeMap<String, Duration>) -> Outbox {
        self.pacing = Arc::new(pacing);
        self
    }

    /// Claims rows as `name` (the instance's name, unique among the
    /// instances sharing the database; by default the host name).
    pub fn with_instance(mut self, name: &str) -> Outbox {
        self.instance = Arc::from(name);
        self
    }

    /// How long a claim on rows holds before another instance may take them.
    /// Keep it well above the send timeout (the default is twice it plus
    /// 30 s): a send still running when its claim lapses may be repeated by
    /// another instance (with the same idempotency key).
    pub fn with_claim_lease(mut self, lease: Duration) -> Outbox {
        self.claim_lease = Some(lease);
        self
    }

    fn claim_lease(&self) -> Duration {
        self.claim_lease
            .unwrap_or(self.send_timeout * 2 + CLAIM_MARGIN)
    }

    pub fn with_poll_interval(mut self, poll: Duration) -> Outbox {
        self.poll = poll;
        self
    }

    /// Wake the worker right after committing new rows (`notify_one`), so they
    /// go out at once rather than at the next poll tick.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Claims the due rows and delivers them, each channel's group concurrently.
    /// Returns after every send it started has been marked.
    pub async fn step(&self) -> Result<StepReport, StoreError> {
        let mut report = StepReport::default();
        let claimed = tokio::time::Instant::now();
        let (groups, bad) = {
            let mut busy = self.busy.lock().await;
            // Rows of channels busy here are neither claimed nor sent: they wait
            // for that channel's send in flight.
            let busy_now: Vec<String> = busy.iter().cloned().collect();
            let claim = Claim {
                by: &self.instance,
                lease: self.claim_lease(),
                busy: &busy_now,
            };
            let due = self
                .store
                .claim_notifications(Utc::now(), BATCH, claim)
                .await?;
            let mut groups: BTreeMap<String, Vec<OutboxEntry>> = BTreeMap::new();
            for entry in due.entries {
                groups.entry(entry.channel.clone()).or_default().push(entry);
            }
            busy.extend(groups.keys().cloned());
            (groups, due.bad)
        };
        let results = join_all(
            groups
                .into_iter()
                .map(|(channel, entries)| self.deliver_group(channel, entries, claimed)),
        )
        .await;
        let mut first_error = None;
        // After the groups: their channels are released whatever becomes of these.
        for row in bad {
            match self.fail_bad_row(row).await {
                Ok(()) => report.failed += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        for (group, error) in results {
            report.add(&group);
            if first_error.is_none() {
                first_error = error;
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Steps until `shutdown`: on every wake-up or poll tick, a step in its own
    /// task (so a slow channel delays no one). On shutdown, waits for the sends
    /// in flight (each bounded by the send timeout).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut steps = JoinSet::new();
        let mut direct_sends = JoinSet::new();
        let mut direct = self
            .direct_rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .expect("Outbox::run is called once");
        loop {
            while direct_sends.try_join_next().is_some() {}
            while let Some(done) = steps.try_join_next() {
                log_step(done);
            }
            // Live steps are bounded: each ends when its slowest channel does,
            // and a busy channel is in one step only. A hung store is not.
            if steps.len() <= self.channels.len() {
                let this = self.clone();
                steps.spawn(async move { this.step().await });
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                Some(row) = direct.recv() => {
                    let this = self.clone();
                    direct_sends.spawn(async move { this.deliver_direct(row).await });
                }
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
        let drain = async {
            while let Some(done) = steps.join_next().await {
                log_step(done);
            }
            while direct_sends.join_next().await.is_some() {}
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            // Still pending in the outbox: sent after the next start.
            tracing::warn!(
                grace = ?SHUTDOWN_GRACE,
                "notifications still sending at shutdown; leaving them to the next start"
            );
        }
    }
}

fn log_step(done: Result<Result<StepReport, StoreError>, tokio::task::JoinError>) {
    match done {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "outbox step failed"),
        Err(e) => tracing::error!(error = %e, "outbox step panicked"),
    }
}
