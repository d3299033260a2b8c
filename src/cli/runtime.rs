//! The tokio runtime, sized for the work. `keeper run` reads its config
//! first and gives the runtime as many worker threads as its checks need:
//! one up to [`RATE_PER_WORKER`] checks a second, one more for each further
//! step, never more than the machine's cores. At the rates most keepers run
//! (hundreds of checks a second), an idle second worker costs more than it
//! brings: every task one worker wakes (a probe's start, its connection, the
//! engine taking its sample) also wakes the parked other to look for work,
//! a futex wake and two context switches per hand-over that find nothing to
//! do (perf at 200 checks/s: the largest single share of keeper's CPU).
//! `TOKIO_WORKER_THREADS` overrides the choice, as tokio documents; the
//! size is fixed at start (a reload does not resize it). Other verbs run on
//! tokio's default. `run` also caps glibc's malloc arenas first
//! ([`super::memory`]).

use tokio::runtime::{Builder, Runtime};

use crate::config::{Config, Schedule};

/// Checks a second one worker thread runs on time with room to spare
/// (`bench --saturate`: docs/benchmarks.md).
pub const RATE_PER_WORKER: f64 = 2_000.0;

/// The runtime for a verb; `run` passes its config.
pub fn build(run: Option<&Config>) -> std::io::Result<Runtime> {
    if run.is_some() {
        super::memory::limit_malloc_arenas();
    }
    let mut builder = Builder::new_multi_thread();
    builder.enable_all();
    if let Some(config) = run
        && std::env::var_os("TOKIO_WORKER_THREADS").is_none()
    {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        builder.worker_threads(workers(planned_rate(config), cores));
    }
    builder.build()
}

/// Checks a second the config plans: each interval check once per interval;
/// a crontab fires at most once a minute.
pub fn planned_rate(config: &Config) -> f64 {
    config
        .checks
        .iter()
        .map(|c| match &c.schedule {
            Schedule::Every(every) => 1.0 / every.as_secs_f64().max(0.001),
            Schedule::Cron(_) => 1.0 / 60.0,
        })
        .sum()
}

/// Worker threads for `rate` checks a second on `cores` cores.
pub fn workers(rate: f64, cores: usize) -> usize {
    let wanted = (rate / RATE_PER_WORKER).ceil() as usize;
    wanted.clamp(1, cores.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_worker_until_the_rate_needs_more_and_never_more_than_the_cores() {
        assert_eq!(workers(0.0, 8), 1);
        assert_eq!(workers(200.0, 8), 1);
        assert_eq!(workers(RATE_PER_WORKER, 8), 1);
        assert_eq!(workers(RATE_PER_WORKER + 1.0, 8), 2);
        assert_eq!(workers(5.0 * RATE_PER_WORKER, 2), 2);
        assert_eq!(workers(100.0, 0), 1);
    }
}
