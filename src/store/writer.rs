//! The one sample writer (DESIGN.md §6). Probes [`SampleBuffer::push`] samples
//! into a bounded buffer, which never blocks and drops the oldest row when
//! full; the [`Writer`] task flushes the buffer to the store in batches, and
//! while the database is away holds the rows and retries with backoff. Reading
//! samples back is the store's business, not this file's.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use prometheus::{IntCounter, IntGauge, Registry};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::uptime::UptimeBook;
use super::{SampleRow, Store, StoreError};
use crate::core::health::WriteHealth;

/// Rows per write: one transaction. Large, because every transaction costs a
/// round trip or more (sqlx 0.9.0 leaves Nagle on: ~40 ms per transaction over TLS).
pub const DEFAULT_BATCH_SIZE: usize = 20_000;
/// How often the writer flushes what has gathered, full batch or not.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Rows of room the buffer keeps between batches however empty it gets.
const KEEP_ROOM: usize = 1024;
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long shutdown keeps trying to write what is left.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// The writer's metrics. Handles are cheap clones; the caller registers them.
#[derive(Clone, Debug)]
pub struct WriterMetrics {
    /// `keeper_samples_written_total`
    pub written: IntCounter,
    /// `keeper_samples_dropped_total`: rows pushed out of a full buffer.
    pub dropped: IntCounter,
    /// `keeper_samples_pending`: rows waiting in the buffer.
    pub pending: IntGauge,
}

impl WriterMetrics {
    /// Creates the three metrics, not yet registered anywhere.
    pub fn new() -> Result<WriterMetrics, prometheus::Error> {
        Ok(WriterMetrics {
            written: IntCounter::new(
                "keeper_samples_written_total",
                "Samples written to the database.",
            )?,
            dropped: IntCounter::new(
                "keeper_samples_dropped_total",
                "Samples dropped, oldest first, because the write buffer was full.",
            )?,
            pending: IntGauge::new(
                "keeper_samples_pending",
                "Samples waiting in the write buffer.",
            )?,
        })
    }

    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.written.clone()))?;
        registry.register(Box::new(self.dropped.clone()))?;
        registry.register(Box::new(self.pending.clone()))?;
        Ok(())
    }
}

/// The bounded queue between probes and the [`Writer`]. Cheap to clone; all
/// clones share one queue.
#[derive(Clone, Debug)]
pub struct SampleBuffer {
    inner: Arc<BufferInner>,
}

#[derive(Debug)]
struct BufferInner {
    rows: Mutex<VecDeque<SampleRow>>,
    capacity: usize,
    /// Wake the writer once this many rows wait (a full batch).
    wake_at: AtomicUsize,
    dropped: AtomicU64,
    ready: Notify,
}

impl SampleBuffer {
    /// A buffer holding at most `capacity` rows (at least one).
    pub fn new(capacity: usize) -> SampleBuffer {
        let capacity = capacity.max(1);
        SampleBuffer {
            inner: Arc::new(BufferInner {
                // Grown as rows wait, not reserved for a full batch: the ring
                // walks its whole allocation, so a reserved 20,000 rows
                // would all become resident at any rate.
                rows: Mutex::new(VecDeque::new()),
                capacity,
                wake_at: AtomicUsize::new(capacity.min(DEFAULT_BATCH_SIZE)),
                dropped: AtomicU64::new(0),
                ready: Notify::new(),
            }),
        }
    }

    /// Queues a row. Never blocks on the database and never awaits: when the
    /// buffer is full the oldest row is dropped and counted.
    pub fn push(&self, row: SampleRow) {
        let waiting = {
            let mut rows = self.lock();
            if rows.len() >= self.inner.capacity {
                rows.pop_front();
                self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            }
            rows.push_back(row);
            rows.len()
        };
        if waiting >= self.inner.wake_at.load(Ordering::Relaxed) {
            self.inner.ready.notify_one();
        }
    }

    /// Rows waiting to be written.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Rows dropped because the buffer was full, since it was created.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Takes up to `max` of the oldest rows. What a burst grew the queue to
    /// is given back once the rows have gone.
    fn take(&self, max: usize) -> Vec<SampleRow> {
        let mut rows = self.lock();
        let n = rows.len().min(max);
        let taken = rows.drain(..n).collect();
        let left = rows.len();
        if rows.capacity() > KEEP_ROOM.max(4 * left) {
            rows.shrink_to(KEEP_ROOM.max(2 * left));
        }
        taken
    }

    /// Puts rows that failed to write back at the front, oldest first. Still
    /// bounded: if rows arrived meanwhile, the oldest returning ones are dropped.
    fn put_back(&self, mut batch: Vec<SampleRow>) {
        let mut rows = self.lock();
        let room = self.inner.capacity.saturating_sub(rows.len());
        if batch.len() > room {
            let excess = batch.len() - room;
            batch.drain(..excess);
            self.inner
                .dropped
                .fetch_add(excess as u64, Ordering::Relaxed);
        }
        for row in batch.into_iter().rev() {
            rows.push_front(row);
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<SampleRow>> {
        // A panic while holding the lock cannot leave the queue half-changed.
        self.inner
            .rows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The task that writes buffered samples to the store in batches.
pub struct Writer {
    store: Store,
    buffer: SampleBuffer,
    metrics: WriterMetrics,
    batch_size: usize,
    flush_interval: Duration,
    /// The buffer's drop count already added to `metrics.dropped`.
    dropped_seen: u64,
    /// Counts every stored batch, for the API's uptime.
    uptime: Option<UptimeBook>,
    /// Whether the last write failed, for `keeper:storage`.
    health: WriteHealth,
}

impl Writer {
    /// A writer for `buffer`; the metrics mirror this buffer (one writer per buffer).
    pub fn new(store: Store, buffer: SampleBuffer, metrics: WriterMetrics) -> Writer {
        let writer = Writer {
            store,
            buffer,
            metrics,
            batch_size: DEFAULT_BATCH_SIZE,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            dropped_seen: 0,
            uptime: None,
            health: WriteHealth::default(),
        };
        writer.set_wake_at();
        writer
    }

    /// Rows per write (default [`DEFAULT_BATCH_SIZE`]).
    pub fn batch_size(mut self, rows: usize) -> Writer {
        self.batch_size = rows.max(1);
        self.set_wake_at();
        self
    }

    /// Counts each batch in `book` once it is stored.
    pub fn with_uptime(mut self, book: UptimeBook) -> Writer {
        self.uptime = Some(book);
        self
    }

    /// Records each write's outcome in `health` (which `keeper:storage` reads).
    pub fn with_health(mut self, health: WriteHealth) -> Writer {
        self.health = health;
        self
    }

    /// How often to write a partial batch (default [`DEFAULT_FLUSH_INTERVAL`]).
    pub fn flush_interval(mut self, every: Duration) -> Writer {
        self.flush_interval = every;
        self
    }

    /// One step: writes up to one batch. On failure the rows go back to the
    /// front of the buffer for a later try. Returns how many rows were written.
    /// Either way the outcome goes into the health `keeper:storage` reads: a
    /// database that answers but takes no samples is paged too.
    pub async fn flush_once(&mut self) -> Result<usize, StoreError> {
        let batch = self.buffer.take(self.batch_size);
        if batch.is_empty() {
            self.sync_metrics();
            return Ok(0);
        }
        let outcome = self.store.insert_samples(&batch).await;
        let written = batch.len();
        let attempts = match &outcome {
            Ok(()) => {
                self.health.succeeded();
                0
            }
            Err(error) => (self.health).failed(&error.to_string(), chrono::Utc::now()),
        };
        let result = match outcome {
            // Stored: not to be written again; the next batch, a second
            // later, tries the move again. Said at the 1st, 2nd, 4th, 8th…
            // failure, not each second: keeper:storage pages it.
            Err(error @ StoreError::NotMoved(_)) => {
                if attempts.is_power_of_two() {
                    tracing::warn!(%error, attempts, "writing samples");
                }
                Ok(())
            }
            other => other,
        };
        match result {
            Ok(()) => {
                self.metrics.written.inc_by(written as u64);
                if let Some(book) = &self.uptime {
                    book.record(&batch);
                }
            }
            Err(_) => self.buffer.put_back(batch),
        }
        self.sync_metrics();
        result.map(|()| written)
    }

    /// Flushes whenever a full batch waits or every flush interval, backing off
    /// while the database fails. On `shutdown`, writes what is left (giving up
    /// after a few seconds) and returns.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        while !shutdown.is_cancelled() {
            match self.flush_once().await {
                Ok(written) => {
                    backoff = MIN_BACKOFF;
                    if written >= self.batch_size {
                        continue; // more may be waiting
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = self.buffer.inner.ready.notified() => {}
                        _ = tokio::time::sleep(self.flush_interval) => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(
                        %error,
                        pending = self.buffer.len(),
                        retry_in_ms = backoff.as_millis() as u64,
                        "writing samples failed; holding them"
                    );
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        self.drain(SHUTDOWN_GRACE).await;
    }

    /// Writes everything left, for at most `grace`. A batch in flight when the
    /// time runs out is lost with the rest.
    async fn drain(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        let mut backoff = MIN_BACKOFF;
        while !self.buffer.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left, self.flush_once()).await {
                Ok(Ok(_)) => backoff = MIN_BACKOFF,
                Ok(Err(error)) => {
                    tracing::warn!(%error, pending = self.buffer.len(), "writing samples at shutdown failed");
                    tokio::time::sleep(backoff.min(left)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(_) => break,
            }
        }
        let lost = self.buffer.len();
        if lost > 0 {
            tracing::error!(lost, "shutting down with samples not written");
        }
        self.sync_metrics();
    }

    fn set_wake_at(&self) {
        let wake_at = self.batch_size.min(self.buffer.capacity());
        self.buffer.inner.wake_at.store(wake_at, Ordering::Relaxed);
    }

    fn sync_metrics(&mut self) {
        let dropped = self.buffer.dropped();
        self.metrics
            .dropped
            .inc_by(dropped.saturating_sub(self.dropped_seen));
        self.dropped_seen = dropped;
        self.metrics
            .pending
            .set(i64::try_from(self.buffer.len()).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{TimeZone, Utc};

    use super::{KEEP_ROOM, SampleBuffer, SampleRow};
    use crate::core::Color;

    fn row(n: i64) -> SampleRow {
        SampleRow {
            check: Arc::from("web"),
            at: Utc.timestamp_opt(n, 0).unwrap(),
            duration_ms: 1.0,
            up: true,
            color: Color::Green,
            status_code: Some(200),
            latency_ms: 1.0,
            message: String::new(),
            metrics: None,
            region: None,
        }
    }

    #[test]
    fn the_queue_grows_for_a_burst_and_gives_the_room_back() {
        let buffer = SampleBuffer::new(20_000);
        assert_eq!(buffer.lock().capacity(), 0, "nothing is reserved up front");
        for n in 0..10_000 {
            buffer.push(row(n));
        }
        let first = buffer.take(9_990);
        assert_eq!(first.len(), 9_990);
        assert_eq!(first[0].at.timestamp(), 0, "oldest first");
        assert!(buffer.lock().capacity() <= KEEP_ROOM);
        let rest = buffer.take(100);
        let times: Vec<i64> = rest.iter().map(|r| r.at.timestamp()).collect();
        assert_eq!(times, (9_990..10_000).collect::<Vec<_>>());
    }

    #[test]
    fn a_full_buffer_drops_its_oldest_rows() {
        let buffer = SampleBuffer::new(3);
        for n in 0..5 {
            buffer.push(row(n));
        }
        assert_eq!(buffer.dropped(), 2);
        let times: Vec<i64> = buffer.take(10).iter().map(|r| r.at.timestamp()).collect();
        assert_eq!(times, vec![2, 3, 4]);
    }
}
