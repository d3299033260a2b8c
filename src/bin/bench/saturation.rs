//! `--saturate RATE`: the highest check rate keeper keeps on time on this
//! machine. Each step starts a fresh keeper with N `http` checks every
//! second (N = the rate) against the bench's loopback target, warms up, and
//! measures as the plain run does. A rate holds when scheduler lag p99 (from
//! keeper's histogram, so at a bucket bound) is at most 20 ms and the target
//! served at least 95 % of the planned checks. Rates double from RATE until
//! one fails, then the gap is halved three times; the highest rate that held
//! is printed. The target runs in the bench process, on the same two cores:
//! the figure is keeper and its target together, as on a small host.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;

use super::{Args, RunResult, probe_run};

/// The lag p99 a rate must stay within, in milliseconds.
const LAG_P99_MS: f64 = 20.0;
/// The share of planned checks the target must have served.
const SERVED: f64 = 0.95;
/// Halvings of the gap between the last rate that held and the first that did not.
const BISECTIONS: usize = 3;

pub async fn run(
    keeper: &Path,
    dir: &Path,
    target: SocketAddr,
    args: &Args,
    hits: &AtomicU64,
) -> anyhow::Result<()> {
    println!(
        "# saturation: a rate holds when lag p99 <= {LAG_P99_MS} ms and >= {:.0} % of planned checks ran; {} s per step after {} s warm-up",
        SERVED * 100.0,
        args.seconds,
        args.warmup
    );
    println!("rate/s  checks/s  cpu_ms/check  rss_MB  lag_p50_ms  lag_p99_ms  holds");
    let step = |rate: usize| async move {
        // N = rate checks, each every second.
        let args = Args {
            rate: rate as f64,
            checks: Vec::new(),
            pg_url: String::new(),
            api: Vec::new(),
            ..*args
        };
        let r = probe_run(keeper, dir, target, rate, &args, hits).await?;
        let holds = holds(rate, &r);
        println!(
            "{rate:>6}  {:>8.0}  {:>12.4}  {:>6.1}  {:>10}  {:>10}  {}",
            r.checks_per_s,
            r.cpu_ms_per_check,
            r.peak_rss_mb,
            r.lag_p50,
            r.lag_p99,
            if holds { "yes" } else { "no" }
        );
        anyhow::Ok(holds)
    };
    let mut rate = (args.rate as usize).max(100);
    let mut held = 0;
    let failed = loop {
        if !step(rate).await? {
            break rate;
        }
        held = rate;
        rate *= 2;
    };
    let (mut low, mut high) = (held, failed);
    for _ in 0..BISECTIONS {
        let mid = (low + high) / 2;
        if mid <= low || mid >= high {
            break;
        }
        if step(mid).await? {
            low = mid;
        } else {
            high = mid;
        }
    }
    if low == 0 {
        println!("saturation: below {failed} checks/s (the first rate tried did not hold)");
    } else {
        println!("saturation: {low} checks/s (lag p99 <= {LAG_P99_MS} ms; {high}/s did not hold)");
    }
    Ok(())
}

/// Whether a run at `rate` kept on time and ran (nearly) every planned check.
fn holds(rate: usize, r: &RunResult) -> bool {
    r.lag_p99_ms <= LAG_P99_MS && r.checks_per_s >= SERVED * rate as f64
}
