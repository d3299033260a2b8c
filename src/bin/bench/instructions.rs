//! `--instructions N`: instructions keeper executes per check, counted by
//! valgrind's callgrind. Unlike CPU time on a shared machine this is the
//! same from run to run for the same binary and load, so two builds compare
//! exactly. keeper runs `N` `http` checks every 2 s against the bench's
//! loopback target under `valgrind --tool=callgrind --instr-atstart=no`;
//! counting is switched on (`callgrind_control -i on`) after a warm-up and
//! off after `--seconds`, and the total is divided by the checks the target
//! served in between.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};

use super::{ChildGuard, free_port, wait_ready, write_config};

/// Each check's interval: slow enough for keeper under valgrind (about 50×
/// slower) to keep up with a few hundred checks.
const INTERVAL_MS: u64 = 2000;

pub async fn run(
    keeper: &Path,
    dir: &Path,
    target: SocketAddr,
    n: usize,
    seconds: u64,
    keepalive: bool,
    hits: &AtomicU64,
) -> anyhow::Result<()> {
    let port = free_port()?;
    let config = write_config(dir, target, n, port, INTERVAL_MS, keepalive)?;
    let out = dir.join(format!("callgrind-{n}.out"));
    let child = Command::new("valgrind")
        .args(["--tool=callgrind", "--instr-atstart=no"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(keeper)
        .args(["run", "-c"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting valgrind (Debian package valgrind)")?;
    let guard = ChildGuard(child);
    let pid = guard.0.id().to_string();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&reqwest::Client::new(), &base, n).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    instrument(&pid, "on")?;
    let hits0 = hits.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let checks = hits.load(Ordering::Relaxed) - hits0;
    instrument(&pid, "off")?;
    // SIGTERM: keeper stops cleanly and callgrind writes its counts.
    drop(guard);
    let text = std::fs::read_to_string(&out).with_context(|| format!("reading {out:?}"))?;
    let total: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .and_then(|t| t.trim().parse().ok())
        .with_context(|| format!("no totals in {out:?}"))?;
    if checks == 0 {
        bail!("the target served no checks while counting");
    }
    println!("checks  interval_ms  counted_checks  instructions  instructions/check");
    println!(
        "{n:>6}  {INTERVAL_MS:>11}  {checks:>14}  {total:>12}  {:>18}",
        total / checks
    );
    Ok(())
}

fn instrument(pid: &str, state: &str) -> anyhow::Result<()> {
    let status = Command::new("callgrind_control")
        .args(["-i", state, pid])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running callgrind_control")?;
    if !status.success() {
        bail!("callgrind_control -i {state} {pid}: {status}");
    }
    Ok(())
}
