//! keeper's benchmark: prints numbers, asserts nothing (machines here are
//! shared and noisy; compare ratios within one run).
//!
//! 1. Scheduler + HTTP probes: starts `keeper run` as a child process with N
//!    `http` checks against a loopback target served by this process, at a
//!    chosen total rate; reports checks/s (counted at the target), CPU ms per
//!    check (user+sys of the keeper process, from /proc), peak RSS (VmHWM),
//!    and scheduler lag p50/p99 (from keeper's own histogram).
//! 2. Sample writes: batched inserts into SQLite and PostgreSQL, rows/s.
//! 3. With `--log-lines N` (and nothing else): N generated log lines (JSON
//!    app logs and nginx access logs) through a `log` check's default rules
//!    and window on this one thread, lines/s.
//! 4. With `--api 10000,1000000` (and nothing else): `GET /api/v1/checks` and
//!    the incidents list against that many stored samples; `--api-checks N`:
//!    at N checks with 90 days of hourly rollups (see `bench/api.rs`).
//! 5. With `--page N` (and nothing else): N outages of one check, the time
//!    from the failure to the `opened` webhook and back (see `bench/page.rs`).
//! 6. With `--instructions N` (and `--seconds`): instructions per check of N
//!    checks under callgrind, exact where CPU time is noisy (`bench/instructions.rs`).
//! 7. With `--cluster N` first: N checks over three instances on one
//!    PostgreSQL database (`bench/cluster.rs`).
//! 8. With `--saturate` (and `--rate` to start from): the highest rate at which
//!    scheduler lag p99 stays within 20 ms (see `bench/saturation.rs`).
//!
//! Built only with the `bench` feature, beside the `keeper` binary it starts:
//! `cargo build --release --features bench --bins`, then `target/release/bench
//!   [--checks 100,1000,10000 ("": none)] [--rate 2000] [--seconds 20] [--warmup 5]
//!   [--samples 200000]`, or `--log-lines 5000000`, `--api 10000,1000000`, `--page 10`,
//!   `--saturate --rate 2000 --seconds 10 --warmup 5`; `--keepalive` puts
//!   every check of the probe runs (plain, `--saturate` or `--instructions`)
//!   on a kept connection;
//! `--instructions 200 --seconds 20` from `target/profiling/` (`--profile profiling`).
//! PostgreSQL from `KEEPER_TEST_PG_URL` (default postgres://postgres@127.0.0.1:5432).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use keeper::core::Color;
use keeper::store::writer::DEFAULT_BATCH_SIZE;
use keeper::store::{SampleRow, Store};

struct Args {
    checks: Vec<usize>,
    rate: f64,
    seconds: u64,
    warmup: u64,
    samples: usize,
    pg_url: String,
    log_lines: usize,
    api: Vec<i64>,
    api_checks: usize,
    page: usize,
    instructions: usize,
    saturate: bool,
    /// `keepalive = true` on every `http` check of the probe runs.
    keepalive: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        checks: vec![100, 1_000, 10_000],
        rate: 2_000.0,
        seconds: 20,
        warmup: 5,
        samples: 200_000,
        pg_url: std::env::var("KEEPER_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into()),
        log_lines: 0,
        api: Vec::new(),
        api_checks: 0,
        page: 0,
        instructions: 0,
        saturate: false,
        keepalive: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--checks" => {
                args.checks = value()?
                    .split(',')
                    .filter(|n| !n.trim().is_empty())
                    .map(|n| n.trim().parse().context("--checks takes numbers"))
                    .collect::<Result<_, _>>()?
            }
            "--rate" => args.rate = value()?.parse().context("--rate")?,
            "--seconds" => args.seconds = value()?.parse().context("--seconds")?,
            "--warmup" => args.warmup = value()?.parse().context("--warmup")?,
            "--samples" => args.samples = value()?.parse().context("--samples")?,
            "--log-lines" => args.log_lines = value()?.parse().context("--log-lines")?,
            "--api" => {
                args.api = value()?
                    .split(',')
                    .map(|n| n.trim().parse().context("--api takes sample counts"))
                    .collect::<Result<_, _>>()?
            }
            "--api-checks" => args.api_checks = value()?.parse().context("--api-checks")?,
            "--page" => args.page = value()?.parse().context("--page takes a count")?,
            "--instructions" => {
                args.instructions = value()?.parse().context("--instructions takes a count")?
            }
            "--saturate" => args.saturate = true,
            "--keepalive" => args.keepalive = true,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if cluster::wanted() {
        return cluster::run();
    }
    let args = parse_args()?;
    if args.log_lines > 0 {
        logs::run(args.log_lines);
        return Ok(());
    }
    let rt = tokio::runtime::Runtime::new()?;
    if !args.api.is_empty() || args.api_checks > 0 {
        return rt.block_on(api::run(&args.api, args.api_checks));
    }
    if args.page > 0 {
        return rt.block_on(page::run(args.page));
    }
    let hits = Arc::new(AtomicU64::new(0));
    let target = rt.block_on(start_target(hits.clone()))?;
    let keeper_bin = sibling_binary("keeper")?;
    let dir = tempfile::tempdir()?;
    if args.instructions > 0 {
        let (n, seconds) = (args.instructions, args.seconds);
        return rt.block_on(instructions::run(
            &keeper_bin,
            dir.path(),
            target,
            n,
            seconds,
            args.keepalive,
            &hits,
        ));
    }
    if args.saturate {
        return rt.block_on(saturation::run(
            &keeper_bin,
            dir.path(),
            target,
            &args,
            &hits,
        ));
    }
    println!(
        "# keeper bench {} on {} CPUs; target http://{target}/ok",
        Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "checks  rate/s  checks/s  cpu_ms/check  rss_MB  peak_rss_MB  lag_p50_ms  lag_p99_ms  start_s"
    );
    for &n in &args.checks {
        let r = rt.block_on(probe_run(&keeper_bin, dir.path(), target, n, &args, &hits))?;
        println!(
            "{:>6}  {:>6.0}  {:>8.0}  {:>12.4}  {:>6.1}  {:>11.1}  {:>10}  {:>10}  {:>7.2}",
            n,
            r.planned_rate,
            r.checks_per_s,
            r.cpu_ms_per_check,
            r.rss_mb,
            r.peak_rss_mb,
            r.lag_p50,
            r.lag_p99,
            r.start_s
        );
    }
    if args.samples > 0 {
        sample_writes(&rt, dir.path(), &args)?;
    }
    Ok(())
}

/// Writes `args.samples` samples into SQLite (a file in `dir`) and into
/// PostgreSQL with and without TLS; prints rows/s of each.
fn sample_writes(rt: &tokio::runtime::Runtime, dir: &Path, args: &Args) -> anyhow::Result<()> {
    println!("\nbackend   rows     seconds  rows/s");
    let sqlite_url = format!("sqlite://{}", dir.join("bench-samples.db").display());
    let (secs, rate) = rt.block_on(write_samples(&sqlite_url, args.samples))?;
    println!("sqlite    {:>7}  {secs:>7.3}  {rate:>8.0}", args.samples);
    // sqlx's default sslmode=prefer uses TLS when the server offers it.
    for (label, suffix) in [("postgres", ""), ("pg-notls", "?sslmode=disable")] {
        let written = rt.block_on(with_pg_database(&args.pg_url, |url| async move {
            write_samples(&format!("{url}{suffix}"), args.samples).await
        }));
        match written {
            Ok((secs, rate)) => println!("{label:9} {:>7}  {secs:>7.3}  {rate:>8.0}", args.samples),
            Err(e) => println!("{label:9} failed: {e:#}"),
        }
    }
    Ok(())
}

/// A loopback HTTP target answering `ok`, counting requests.
async fn start_target(hits: Arc<AtomicU64>) -> anyhow::Result<SocketAddr> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/ok",
        get(move || {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::Relaxed);
                "ok\n"
            }
        }),
    );
    serve(app).await
}

/// Serves `app` on a loopback port of its own, in the background.
async fn serve(app: axum::Router) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("bench target stopped: {e}");
        }
    });
    Ok(addr)
}

fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} not found: build it first (cargo build --release --features bench --bins)",
            path.display()
        );
    }
    Ok(path)
}

struct RunResult {
    planned_rate: f64,
    checks_per_s: f64,
    cpu_ms_per_check: f64,
    rss_mb: f64,
    peak_rss_mb: f64,
    lag_p50: String,
    lag_p99: String,
    lag_p99_ms: f64,
    start_s: f64,
}

/// Kills the child when dropped, so a failed run leaves nothing behind.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

async fn probe_run(
    keeper: &Path,
    dir: &Path,
    target: SocketAddr,
    n: usize,
    args: &Args,
    hits: &AtomicU64,
) -> anyhow::Result<RunResult> {
    let interval_ms = ((n as f64 / args.rate) * 1000.0).max(1000.0).round() as u64;
    let planned_rate = n as f64 * 1000.0 / interval_ms as f64;
    let port = free_port()?;
    let path = write_config(dir, target, n, port, interval_ms, args.keepalive)?;
    let started = Instant::now();
    let child = Command::new(keeper)
        .args(["run", "-c"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("starting keeper")?;
    let guard = ChildGuard(child);
    let pid = guard.0.id();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_ready(&http, &base, n).await?;
    let start_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let rss_mb = proc_status_kb(pid, "VmRSS:")? as f64 / 1024.0;
    let cpu0 = cpu_ticks(pid)?;
    let hits0 = hits.load(Ordering::Relaxed);
    let lag0 = lag_buckets(&http, &base).await?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let cpu1 = cpu_ticks(pid)?;
    let hits1 = hits.load(Ordering::Relaxed);
    let lag1 = lag_buckets(&http, &base).await?;
    let elapsed = t0.elapsed().as_secs_f64();
    let peak_rss_mb = proc_status_kb(pid, "VmHWM:")? as f64 / 1024.0;
    drop(guard);
    let checks = (hits1 - hits0) as f64;
    let cpu_ms = (cpu1 - cpu0) as f64 * 1000.0 / ticks_per_second();
    let lag: Vec<(f64, f64)> = lag1
        .iter()
        .zip(&lag0)
        .map(|((le, c1), (_, c0))| (*le, c1 - c0))
        .collect();
    Ok(RunResult {
        planned_rate,
        checks_per_s: checks / elapsed,
        cpu_ms_per_check: if checks > 0.0 {
            cpu_ms / checks
        } else {
            f64::NAN
        },
        rss_mb,
        peak_rss_mb,
        lag_p50: shown(quantile(&lag, 0.50)),
        lag_p99: shown(quantile(&lag, 0.99)),
        lag_p99_ms: quantile(&lag, 0.99).unwrap_or(f64::INFINITY),
        start_s,
    })
}

/// Writes the config of a run: `n` HTTP checks of `target`, each every
/// `interval_ms` (on a kept connection with `keepalive`), keeper listening
/// on `port` with a SQLite file in `dir`.
fn write_config(
    dir: &Path,
    target: SocketAddr,
    n: usize,
    port: u16,
    interval_ms: u64,
    keepalive: bool,
) -> anyhow::Result<PathBuf> {
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[storage]\nurl = \"sqlite://{}\"\n\n[defaults]\ninterval = \"{interval_ms}ms\"\ntimeout = \"5s\"\nconcurrency = 1024\n\n",
        dir.join(format!("bench-{n}.db")).display()
    );
    for i in 0..n {
        config.push_str(&format!(
            "[checks.c{i}]\nkind = \"http\"\nurl = \"http://{target}/ok?i={i}\"\nkeepalive = {keepalive}\n\n"
        ));
    }
    let path = dir.join(format!("bench-{n}.toml"));
    std::fs::write(&path, config)?;
    Ok(path)
}

/// Polls `{base}/readyz` until keeper answers 200, for at most 60 s.
async fn wait_ready(http: &reqwest::Client, base: &str, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("keeper with {n} checks did not become ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn ticks_per_second() -> f64 {
    100.0 // USER_HZ on Linux
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11).context("utime")?.parse()?;
    let stime: u64 = fields.get(12).context("stime")?.parse()?;
    Ok(utime + stime)
}

/// A `/proc/PID/status` field in kB (`VmRSS:`, `VmHWM:`).
fn proc_status_kb(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .with_context(|| format!("{field} in /proc/{pid}/status"))?
        .parse()
        .with_context(|| format!("{field} value"))
}

/// Cumulative `keeper_scheduler_lag_seconds` buckets: (le, count).
async fn lag_buckets(http: &reqwest::Client, base: &str) -> anyhow::Result<Vec<(f64, f64)>> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("keeper_scheduler_lag_seconds_bucket{le=\"") else {
            continue;
        };
        let (le, count) = rest.split_once("\"} ").context("bucket line")?;
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse()?
        };
        out.push((le, count.trim().parse()?));
    }
    Ok(out)
}

/// The bucket bound under which fraction `q` of the observations fall, in
/// ms (infinite past the last bound); `None` without observations.
fn quantile(cumulative: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = cumulative.last().map_or(0.0, |(_, c)| *c);
    let (le, _) = cumulative
        .iter()
        .find(|(_, c)| total > 0.0 && *c >= q * total)?;
    Some(le * 1000.0)
}

/// A [`quantile`] as the table shows it: `<=2` (at most 2 ms), `>5000`, `-`.
fn shown(ms: Option<f64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms.is_infinite() => ">5000".into(),
        Some(ms) => format!("<={ms}"),
    }
}

/// Writes `n` samples through the store in the writer's batches; returns (seconds, rows/s).
async fn write_samples(url: &str, n: usize) -> anyhow::Result<(f64, f64)> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let check: Arc<str> = Arc::from("bench");
    let now = Utc::now();
    let rows: Vec<SampleRow> = (0..n)
        .map(|i| SampleRow {
            check: check.clone(),
            at: now + chrono::Duration::milliseconds(i as i64),
            duration_ms: 1.5,
            up: i % 50 != 0,
            color: if i % 50 != 0 {
                Color::Green
            } else {
                Color::Red
            },
            status_code: Some(200),
            latency_ms: 1.5,
            message: "200 OK in 1 ms".into(),
            // Every tenth an https check, with its certificate's days left.
            metrics: (i % 10 == 0).then(|| r#"{"cert_days_left":42.5}"#.to_string()),
            region: None,
        })
        .collect();
    let started = Instant::now();
    for batch in rows.chunks(DEFAULT_BATCH_SIZE) {
        store.insert_samples(batch).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok((secs, n as f64 / secs))
}

/// Runs `f` against a fresh PostgreSQL database, dropped afterwards.
async fn with_pg_database<F, Fut, T>(server: &str, f: F) -> anyhow::Result<T>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    use sqlx::Connection;
    let name = format!("keeper_bench_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .with_context(|| format!("connecting to {server}"))?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    let result = f(format!("{server}/{name}")).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    result
}

#[path = "bench/api.rs"]
mod api;
#[path = "bench/cluster.rs"]
mod cluster;
#[path = "bench/instructions.rs"]
mod instructions;
#[path = "bench/logs.rs"]
mod logs;
#[path = "bench/page.rs"]
mod page;
#[path = "bench/saturation.rs"]
mod saturation;
