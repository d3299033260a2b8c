//! When each check runs: fixed intervals (first runs spread evenly across the
//! interval, so a thousand checks with one interval do not fire together) or
//! crontab schedules; a global concurrency limit; never two runs of one check
//! at once; the lag between planned and actual start as a metric.
//!
//! [`Timetable`] is the pure part (what is due when); [`run`] is the loop that
//! sleeps until the next due time and spawns the runs. [`Wakes`] asks for a
//! run now, off the timetable (a heartbeat ping changed its check's state).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::Schedule;
use crate::core::ownership::Ownership;
use crate::engine::Sink;
use crate::metrics::Metrics;
use crate::probe::Probe;

/// How early an interval check may start, at most, to share a wake-up with
/// the checks due before it: due checks are taken in batches from one timer,
/// not a wake-up per check (1,000 checks every 5 s are due every 5 ms; each
/// wake-up of an idle runtime is a context switch, and a batch's
/// connections are then read from one `epoll_wait`). The next run is planned
/// from the planned start, so the schedule does not drift; crontab runs are
/// never early. Measured (docs/benchmarks.md): 1,000 checks every 5 s cost
/// 0.25 ms of CPU per check with 10 ms, 0.15 with 100 ms, no less with 250.
pub const EARLY: Duration = Duration::from_millis(100);

/// At most this many checks start early with one wake-up: at high rates a
/// wake-up has company enough without them, and a hundred milliseconds of
/// thousands of checks at once would queue behind `concurrency` and crowd
/// the targets' accept queues.
pub const EARLY_BATCH: usize = 32;

/// How early a check run every `interval` may start: [`EARLY`], or a tenth
/// of its interval when that is less (a check every second starts at most
/// 100 ms early, one every 200 ms at most 20 ms).
pub fn early(interval: Duration) -> Duration {
    EARLY.min(interval / 10)
}

/// The schedule of every check: a min-heap of next due times.
#[derive(Debug)]
pub struct Timetable {
    schedules: Vec<Schedule>,
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl Timetable {
    /// First runs: interval checks are spread evenly over their interval (by
    /// position among the checks sharing it); cron checks at their next firing.
    pub fn new(schedules: Vec<Schedule>, now: Instant) -> Timetable {
        let mut by_interval: BTreeMap<Duration, Vec<usize>> = BTreeMap::new();
        for (i, s) in schedules.iter().enumerate() {
            if let Schedule::Every(d) = s {
                by_interval.entry(*d).or_default().push(i);
            }
        }
        let mut heap = BinaryHeap::with_capacity(schedules.len());
        for (interval, members) in &by_interval {
            let n = members.len() as u32;
            for (k, &i) in members.iter().enumerate() {
                let offset = interval.mul_f64(f64::from(k as u32) / f64::from(n));
                heap.push(Reverse((now + offset, i)));
            }
        }
        for (i, s) in schedules.iter().enumerate() {
            if let Schedule::Cron(_) = s
                && let Some(at) = next_cron(s, now)
            {
                heap.push(Reverse((at, i)));
            }
        }
        Timetable { schedules, heap }
    }

    /// When the next check is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes every check due at `now`, and up to [`EARLY_BATCH`] interval
    /// checks due within [`early`] of their interval after it (each with its
    /// planned start), and plans their next runs.
    pub fn take_due(&mut self, now: Instant) -> Vec<(usize, Instant)> {
        let mut due = Vec::new();
        let mut early_taken = 0;
        while let Some(Reverse((at, i))) = self.heap.peek().copied() {
            if at > now {
                let early = match self.schedules[i] {
                    Schedule::Every(interval) => at <= now + early(interval),
                    Schedule::Cron(_) => false,
                };
                if !early || early_taken == EARLY_BATCH {
                    break;
                }
                early_taken += 1;
            }
            self.heap.pop();
            due.push((i, at));
            let next = match &self.schedules[i] {
                Schedule::Every(interval) => {
                    let mut next = at + *interval;
                    // Far behind (a suspended process): skip the missed runs.
                    if next <= now {
                        let behind = now - next;
                        let skip = behind.as_nanos() / interval.as_nanos().max(1) + 1;
                        next += interval.mul_f64(skip as f64);
                    }
                    Some(next)
                }
                s @ Schedule::Cron(_) => next_cron(s, now),
            };
            if let Some(next) = next {
                self.heap.push(Reverse((next, i)));
            }
        }
        due
    }
}

/// The next firing of a cron schedule, as an `Instant`.
fn next_cron(schedule: &Schedule, now: Instant) -> Option<Instant> {
    let Schedule::Cron(cron) = schedule else {
        return None;
    };
    let wall = Utc::now();
    let next = cron.next_after(wall)?;
    let wait = (next - wall).to_std().unwrap_or(Duration::ZERO);
    Some(now + wait)
}

/// A check as the scheduler runs it.
pub struct Job {
    pub name: Arc<str>,
    pub probe: Arc<Probe>,
    pub timeout: Duration,
    pub running: Arc<AtomicBool>,
}

/// A job with the scheduler's own bookkeeping.
struct Slot {
    job: Job,
    /// A wake arrived: the run in flight (if any) may have looked too early,
    /// so it runs once more when it ends.
    woken: AtomicBool,
}

/// Runs checks on their schedules, and at once when woken, until `shutdown`;
/// returns once every run it started has finished or `grace` has passed.
/// Only the checks this instance owns run ([`Ownership`]: all of them
/// alone); the others' runs are passed over, so a check taken on starts at
/// its next planned run.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    mut timetable: Timetable,
    jobs: Vec<Job>,
    concurrency: usize,
    sink: Sink,
    metrics: Metrics,
    shutdown: CancellationToken,
    grace: Duration,
    mut wakes: mpsc::Receiver<usize>,
    ownership: Ownership,
) {
    let launcher = Launcher {
        ownership,
        tracker: TaskTracker::new(),
        slots: jobs
            .into_iter()
            .map(|job| {
                Arc::new(Slot {
                    job,
                    woken: AtomicBool::new(false),
                })
            })
            .collect(),
        runs: Arc::new(Runs {
            permits: Semaphore::new(concurrency.max(1)),
            sink,
            metrics,
        }),
    };
    let mut wakes_open = true;
    loop {
        let next = timetable.next_due();
        let due = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = due => {
                for (i, planned) in timetable.take_due(Instant::now()) {
                    launcher.launch(i, planned, false);
                }
            }
            woken = wakes.recv(), if wakes_open => match woken {
                Some(i) if i < launcher.slots.len() => launcher.launch(i, Instant::now(), true),
                Some(_) => {}
                None => wakes_open = false,
            },
        }
    }
    let tracker = launcher.tracker;
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            in_flight = tracker.len(),
            "probes still running at shutdown; abandoning them"
        );
    }
}

/// What starting a run needs.
struct Launcher {
    ownership: Ownership,
    tracker: TaskTracker,
    slots: Vec<Arc<Slot>>,
    runs: Arc<Runs>,
}

/// What every run shares, behind one `Arc`: a launch clones one pointer,
/// not the sink's and the metrics' dozens of handles (perf: their clones
/// and drops were a visible share of each check's own work).
struct Runs {
    permits: Semaphore,
    sink: Sink,
    metrics: Metrics,
}

impl Launcher {
    /// Starts a run of check `i`, if this instance owns it, unless one is in flight: then a timetable run
    /// is skipped (and counted), and a wake makes the run in flight go again.
    fn launch(&self, i: usize, planned: Instant, woken: bool) {
        if !self.ownership.probes(i) {
            return;
        }
        let slot = self.slots[i].clone();
        if woken {
            slot.woken.store(true, Ordering::SeqCst);
        }
        if slot.job.running.swap(true, Ordering::SeqCst) {
            if !woken {
                self.runs.metrics.run_skipped(i);
            }
            return;
        }
        let runs = self.runs.clone();
        let span = tracing::debug_span!("check", check = %slot.job.name);
        self.tracker.spawn(
            async move {
                let mut planned = planned;
                loop {
                    slot.woken.store(false, Ordering::SeqCst);
                    let Runs {
                        permits,
                        sink,
                        metrics,
                    } = &*runs;
                    let Ok(permit) = permits.acquire().await else {
                        slot.job.running.store(false, Ordering::SeqCst);
                        return;
                    };
                    let lag = planned.elapsed();
                    metrics.scheduler_lag.observe(lag.as_secs_f64());
                    metrics.scheduler_lag_worst.observe(lag);
                    let job = &slot.job;
                    // Boxed: a probe's run is a future of kilobytes (6 KB for
                    // `http`); inline, spawning and ending each run's task
                    // copied it whole several times (callgrind).
                    let sample = Box::pin(job.probe.run(job.timeout)).await;
                    // The permit is for probing only: a busy engine must not hold back other checks.
                    drop(permit);
                    tracing::debug!(
                        up = sample.is_up(),
                        latency_ms = sample.latency_ms(),
                        "probed"
                    );
                    sink.deliver(i, sample).await;
                    // Cleared only now, so at most one sample per check waits for the engine.
                    job.running.store(false, Ordering::SeqCst);
                    // Woken while running: go again, unless a new launch took over.
                    if slot.woken.load(Ordering::SeqCst)
                        && !job.running.swap(true, Ordering::SeqCst)
                    {
                        planned = Instant::now();
                        continue;
                    }
                    return;
                }
            }
            .instrument(span),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_runs_spread_evenly_over_the_interval() {
        let now = Instant::now();
        let every = Schedule::Every(Duration::from_secs(10));
        let t = Timetable::new(vec![every.clone(); 4], now);
        let mut starts: Vec<Duration> = t.heap.iter().map(|Reverse((at, _))| *at - now).collect();
        starts.sort();
        assert_eq!(
            starts,
            [0, 2500, 5000, 7500].map(Duration::from_millis).to_vec()
        );
    }

    #[test]
    fn due_checks_are_taken_once_and_rescheduled() {
        let now = Instant::now();
        let mut t = Timetable::new(vec![Schedule::Every(Duration::from_secs(1))], now);
        assert_eq!(t.take_due(now), vec![(0, now)]);
        assert!(t.take_due(now).is_empty());
        assert_eq!(t.next_due(), Some(now + Duration::from_secs(1)));
        // ten seconds late: one run, and the missed ones are skipped
        let late = now + Duration::from_millis(10_500);
        assert_eq!(t.take_due(late).len(), 1);
        assert_eq!(t.next_due(), Some(now + Duration::from_secs(11)));
    }

    #[test]
    fn interval_checks_due_just_after_share_the_wake_up_and_crontabs_wait() {
        let now = Instant::now();
        let ms = |n| now + Duration::from_millis(n);
        // Forty checks every 2 s: one due every 50 ms; 100 ms early at most.
        let mut t = Timetable::new(vec![Schedule::Every(Duration::from_secs(2)); 40], now);
        let taken: Vec<Instant> = t.take_due(now).into_iter().map(|(_, at)| at).collect();
        assert_eq!(
            taken,
            [ms(0), ms(50), ms(100)],
            "planned starts within EARLY"
        );
        assert_eq!(t.next_due(), Some(ms(150)));
        // Four checks every 200 ms: a tenth of the interval, 20 ms, at most.
        let mut t = Timetable::new(vec![Schedule::Every(Duration::from_millis(200)); 4], now);
        assert_eq!(t.take_due(now).len(), 1);
        let taken: Vec<Instant> = t.take_due(ms(30)).into_iter().map(|(_, at)| at).collect();
        assert_eq!(
            taken,
            [ms(50)],
            "50 ms is within 20 ms of 30 ms; 100 ms is not"
        );
        // A thousand checks every 2 s: one due every 2 ms; 32 taken early.
        let mut t = Timetable::new(vec![Schedule::Every(Duration::from_secs(2)); 1000], now);
        assert_eq!(t.take_due(now).len(), 1 + EARLY_BATCH);
        assert_eq!(t.next_due(), Some(ms(2 * (1 + EARLY_BATCH as u64))));
        // A crontab due in a moment is not taken before its time.
        let cron: crate::core::value::Crontab = "* * * * *".parse().expect("crontab");
        let mut t = Timetable::new(vec![Schedule::Cron(cron)], now);
        let at = t.next_due().expect("a next firing");
        assert!(t.take_due(at - Duration::from_millis(1)).is_empty());
        assert_eq!(t.take_due(at).len(), 1);
    }
}
