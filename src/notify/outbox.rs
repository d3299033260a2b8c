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
//! channel still busy from an earlier step is left alone (its rows stay due),
//! so a slow channel never holds up another. [`Outbox::run`] is the thin loop:
//! a step on every wake-up ([`Outbox::waker`]) or poll tick, each in its own task.
//!
//! Keeper's own incidents about its storage cannot wait in a store that is
//! away: [`Outbox::direct`] hands such notifications straight to the worker,
//! which sends them with the same retries, in memory. Every attempt, either
//! way, is recorded in [`ChannelHealth`].

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use prometheus::IntCounterVec;
use rand::Rng;
use tokio::sync::{Mutex, Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::retry::{Disposition, Limits, backoff, decide};
use super::{Channel, SendError, policy};
use crate::core::Notification;
use crate::core::health::ChannelHealth;
use crate::core::{OutboxEntry, Outgoing};
use crate::store::{BadRow, Store, StoreError};

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

/// What one step did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Delivered.
    pub sent: usize,
    /// Failed this time, due again later.
    pub retried: usize,
    /// Given up: permanent error, past `max_age`, unknown channel or undecodable row.
    pub failed: usize,
    /// Not tried this step: their channel was busy or had just failed.
    pub deferred: usize,
}

impl StepReport {
    fn add(&mut self, other: &StepReport) {
        self.sent += other.sent;
        self.retried += other.retried;
        self.failed += other.failed;
        self.deferred += other.deferred;
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

/// Hands notifications to the outbox worker to send at once, without the
/// store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Direct(mpsc::UnboundedSender<DirectRow>);

/// A notification sent without the store, with what an outbox row would
/// hold: its id (the idempotency key, made once here) and when it was made.
#[derive(Debug)]
struct DirectRow {
    key: String,
    created_at: DateTime<Utc>,
    row: Outgoing,
}

impl Direct {
    /// Queues `rows` for sending, each with an id of its own that every
    /// attempt carries; dropped (and logged) when the worker has stopped.
    pub fn send(&self, rows: Vec<Outgoing>) {
        for row in rows {
            let direct = DirectRow {
                key: format!("direct-{:032x}", rand::rng().random::<u128>()),
                created_at: Utc::now(),
                row,
            };
            if self.0.send(direct).is_err() {
                tracing::warn!("outbox stopped; a direct notification is dropped");
            }
        }
    }
}

/// A channel's due rows as units of delivery, in order: rows sharing a
/// `batch_at` (a route's `group_wait` window) go out as one message; the
/// others one by one.
fn batches(entries: &[OutboxEntry]) -> Vec<Vec<&OutboxEntry>> {
    let mut units: Vec<Vec<&OutboxEntry>> = Vec::new();
    for entry in entries {
        let joins = entry
            .batch_at
            .and_then(|at| units.iter().position(|u| u[0].batch_at == Some(at)));
        match joins {
            Some(i) => units[i].push(entry),
            None => units.push(vec![entry]),
        }
    }
    units
}

/// What is being sent, as [`Outbox::attempt`] needs it.
struct Unit<'a> {
    notifications: &'a [Notification],
    /// The idempotency key: the (first) notification's id.
    key: &'a str,
    /// Failed attempts so far.
    attempts: u32,
    /// When it was queued (its age is counted against `max_age`).
    created_at: DateTime<Utc>,
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

    /// Waits until channel `name` may send again, then books the send.
    async fn pace(&self, name: &str) {
        let Some(interval) = self.pacing.get(name).filter(|i| !i.is_zero()) else {
            return;
        };
        let next = {
            let mut last = self
                .last_sent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = tokio::time::Instant::now();
            let next = last.get(name).map_or(now, |at| (*at + *interval).max(now));
            last.insert(name.to_string(), next);
            next
        };
        tokio::time::sleep_until(next).await;
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
        let (groups, bad) = {
            let mut busy = self.busy.lock().await;
            let due = self.store.due_notifications(Utc::now(), BATCH).await?;
            let mut groups: BTreeMap<String, Vec<OutboxEntry>> = BTreeMap::new();
            for entry in due.entries {
                if busy.contains(&entry.channel) {
                    report.deferred += 1;
                } else {
                    groups.entry(entry.channel.clone()).or_default().push(entry);
                }
            }
            busy.extend(groups.keys().cloned());
            (groups, due.bad)
        };
        let results = join_all(
            groups
                .into_iter()
                .map(|(channel, entries)| self.deliver_group(channel, entries)),
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

    /// Sends one channel's rows in order, then releases the channel.
    async fn deliver_group(
        &self,
        channel: String,
        entries: Vec<OutboxEntry>,
    ) -> (StepReport, Option<StoreError>) {
        let result = self.deliver_in_order(&channel, &entries).await;
        self.busy.lock().await.remove(&channel);
        result
    }

    async fn deliver_in_order(
        &self,
        name: &str,
        entries: &[OutboxEntry],
    ) -> (StepReport, Option<StoreError>) {
        let mut report = StepReport::default();
        let Some(channel) = self.channels.get(name) else {
            let error = format!("channel {name:?} is not configured");
            for entry in entries {
                let failed = Disposition::Failed {
                    attempts: entry.attempts,
                    error: error.clone(),
                };
                if let Err(e) = self.mark(entry, failed, &mut report).await {
                    return (report, Some(e));
                }
            }
            return (report, None);
        };
        let units = batches(entries);
        for (i, unit) in units.iter().enumerate() {
            let notifications: Vec<Notification> = unit
                .iter()
                .map(|entry| {
                    let mut n = entry.notification.clone();
                    if n.url.is_none() {
                        n.url = policy::incident_url(self.public_url.as_deref(), n.incident);
                    }
                    n
                })
                .collect();
            // A batch went out together, so it was tried as often as its first
            // row, and carries that row's id as its key.
            let key = unit[0].id.to_string();
            let sending = Unit {
                notifications: &notifications,
                key: &key,
                attempts: unit[0].attempts,
                created_at: unit
                    .iter()
                    .map(|e| e.created_at)
                    .min()
                    .unwrap_or_else(Utc::now),
            };
            let disposition = self.attempt(name, channel, &sending).await;
            let retry = match &disposition {
                Disposition::Retry { delay, error, .. } => Some((*delay, error.clone())),
                _ => None,
            };
            for entry in unit {
                if let Err(e) = self.mark(entry, disposition.clone(), &mut report).await {
                    return (report, Some(e));
                }
            }
            // The channel is failing: the rest of its rows wait with this one.
            if let Some((delay, error)) = retry {
                let rest: Vec<OutboxEntry> = units[i + 1..]
                    .iter()
                    .flat_map(|u| u.iter().map(|e| (*e).clone()))
                    .collect();
                if let Err(e) = self.defer(&rest, delay, &error).await {
                    return (report, Some(e));
                }
                report.deferred += rest.len();
                break;
            }
        }
        (report, None)
    }

    /// Records a disposition in the store, the counter and the log.
    async fn mark(
        &self,
        entry: &OutboxEntry,
        disposition: Disposition,
        report: &mut StepReport,
    ) -> Result<(), StoreError> {
        let channel = entry.channel.as_str();
        let incident = entry.notification.incident;
        self.tally(channel, &disposition);
        match disposition {
            Disposition::Sent => {
                self.store.notification_sent(entry.id, Utc::now()).await?;
                report.sent += 1;
                tracing::debug!(channel, incident, state = %entry.notification.state, "notification sent");
            }
            Disposition::Retry {
                attempts,
                delay,
                error,
            } => {
                let next_at = Utc::now() + delay;
                self.store
                    .notification_retry(entry.id, attempts, next_at, &error)
                    .await?;
                report.retried += 1;
                tracing::warn!(channel, incident, attempts, retry_in = ?delay, %error, "notification failed, will retry");
            }
            Disposition::Failed { attempts, error } => {
                self.store
                    .notification_failed(entry.id, attempts, &error)
                    .await?;
                report.failed += 1;
                tracing::error!(channel, incident, attempts, %error, "notification given up");
            }
        }
        Ok(())
    }

    /// Fails a row the store could not decode, with the reason: it can never
    /// be sent, and must not hold up the others.
    async fn fail_bad_row(&self, row: BadRow) -> Result<(), StoreError> {
        let error = format!("undecodable outbox row: {}", row.reason);
        self.store
            .notification_failed(row.id, row.attempts, &error)
            .await?;
        self.count(&row.channel, "failed");
        tracing::error!(id = row.id, channel = %row.channel, %error, "notification failed");
        Ok(())
    }

    /// Pushes untried rows back by `delay`, their attempt counts unchanged.
    async fn defer(
        &self,
        entries: &[OutboxEntry],
        delay: Duration,
        error: &str,
    ) -> Result<(), StoreError> {
        let next_at = Utc::now() + delay;
        let why = format!("not tried: an earlier notification to this channel failed: {error}");
        for entry in entries {
            self.store
                .notification_retry(entry.id, entry.attempts, next_at, &why)
                .await?;
        }
        Ok(())
    }

    /// Sends one notification without the store: tried like an outbox row
    /// (backoff, `Retry-After`, `max_age`, one key), kept in memory meanwhile.
    async fn deliver_direct(&self, direct: DirectRow) {
        let DirectRow {
            key,
            created_at,
            row,
        } = direct;
        let name = row.channel.as_str();
        let Some(channel) = self.channels.get(name) else {
            tracing::error!(channel = name, "direct notification for an unknown channel");
            return;
        };
        let incident = row.notification.incident;
        let mut attempts = 0;
        loop {
            let sending = Unit {
                notifications: std::slice::from_ref(&row.notification),
                key: &key,
                attempts,
                created_at,
            };
            let disposition = self.attempt(name, channel, &sending).await;
            self.tally(name, &disposition);
            match disposition {
                Disposition::Sent => {
                    tracing::info!(channel = name, check = %row.notification.check, state = %row.notification.state, "direct notification sent");
                    return;
                }
                Disposition::Retry {
                    attempts: tried,
                    delay,
                    error,
                } => {
                    tracing::warn!(channel = name, incident, attempts = tried, retry_in = ?delay, %error, "direct notification failed, will retry");
                    attempts = tried;
                    tokio::time::sleep(delay).await;
                }
                Disposition::Failed {
                    attempts: tried,
                    error,
                } => {
                    tracing::error!(channel = name, incident, attempts = tried, %error, "direct notification given up");
                    return;
                }
            }
        }
    }

    /// One paced, time-bounded try at sending `unit` through `channel` (one
    /// message, or one grouped message), judged after its earlier tries and by
    /// its age.
    async fn attempt(&self, name: &str, channel: &Channel, unit: &Unit<'_>) -> Disposition {
        // A channel keeps its pace; only its own rows wait.
        self.pace(name).await;
        let send = async {
            match unit.notifications {
                [one] => channel.send(one, unit.key).await,
                many => channel.send_group(many, unit.key).await,
            }
        };
        let result = tokio::time::timeout(self.send_timeout, send)
            .await
            .unwrap_or_else(|_| {
                Err(SendError::transient(format!(
                    "no answer within {:?}",
                    self.send_timeout
                )))
            });
        let jitter = rand::rng().random::<f64>();
        let delay = backoff(unit.attempts + 1, self.backoff_base, self.backoff_cap);
        let age = (Utc::now() - unit.created_at).to_std().unwrap_or_default();
        let limits = Limits {
            age,
            max_age: self.max_age,
            delay,
            jitter,
        };
        decide(unit.attempts, result, &limits)
    }

    /// Counts an attempt's outcome in `keeper_notifications_total` and, for a
    /// configured channel, in its health.
    fn tally(&self, channel: &str, disposition: &Disposition) {
        match disposition {
            Disposition::Sent => {
                self.health.succeeded(channel);
                self.count(channel, "sent");
            }
            Disposition::Retry { error, .. } => {
                self.health.failed(channel, error, Utc::now());
                self.count(channel, "retry");
            }
            Disposition::Failed { error, .. } => {
                if self.channels.contains_key(channel) {
                    self.health.failed(channel, error, Utc::now());
                }
                self.count(channel, "failed");
            }
        }
    }

    fn count(&self, channel: &str, outcome: &str) {
        self.sent.with_label_values(&[channel, outcome]).inc();
    }
}

fn log_step(done: Result<Result<StepReport, StoreError>, tokio::task::JoinError>) {
    match done {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "outbox step failed"),
        Err(e) => tracing::error!(error = %e, "outbox step panicked"),
    }
}
