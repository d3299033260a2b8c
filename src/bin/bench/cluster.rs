//! `--cluster N`: N `http` checks shared by three `keeper run` processes
//! (`a`, `b`, `c`) on one fresh PostgreSQL database (DESIGN.md §11), against
//! a loopback target served by this process that logs each request's check
//! and instance (every check sends `x-instance: NAME`).
//!
//! Each instance reaches PostgreSQL through a counting proxy in this process
//! (`sslmode=disable`, so the proxy reads the wire protocol): it counts the
//! statements each instance executes and the bytes each sends and reads, by
//! kind of statement (`lease read`, `lease claim`, `members`, `outbox`, …).
//!
//! Per lease in `--leases` (default `15,3`): start the three, wait until they
//! agree on every check's owner, measure for `--seconds` (CPU per check from
//! `/proc` utime+stime divided by the checks that instance probed, RSS, the
//! statements and bytes, checks probed by two instances), time a lease read
//! and a lease claim of this process whole (every view, as each renewal did
//! before) and narrowed (`LeaseViews`), then SIGKILL `b` and time until
//! every check it owned was probed by `a` or `c`.
//!
//! `bench --cluster 10000 [--interval 30] [--leases 15,3] [--seconds 60]`

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use keeper::store::{LeaseClaim, LeaseViews, Store};

use super::{ChildGuard, cpu_ticks, free_port, proc_status_kb, ticks_per_second};
use wire::{Counts, Tally};

const NAMES: [&str; 3] = ["a", "b", "c"];
/// The instance killed for the takeover.
const VICTIM: usize = 1;

struct Opts {
    checks: usize,
    interval: u64,
    leases: Vec<u64>,
    seconds: u64,
    pg_url: String,
}

/// Whether the bench was asked for this mode (`--cluster N` first).
pub fn wanted() -> bool {
    std::env::args().nth(1).as_deref() == Some("--cluster")
}

fn parse() -> anyhow::Result<Opts> {
    let mut opts = Opts {
        checks: 10_000,
        interval: 30,
        leases: vec![15, 3],
        seconds: 60,
        pg_url: std::env::var("KEEPER_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .with_context(|| format!("{flag} {value}"))
        };
        match flag.as_str() {
            "--cluster" => opts.checks = number()? as usize,
            "--interval" => opts.interval = number()?,
            "--seconds" => opts.seconds = number()?,
            "--leases" => {
                opts.leases = (value.split(','))
                    .map(|l| l.trim().parse().context("--leases takes seconds"))
                    .collect::<Result<_, _>>()?
            }
            other => bail!("unknown flag {other} with --cluster"),
        }
    }
    Ok(opts)
}

pub fn run() -> anyhow::Result<()> {
    let opts = parse()?;
    let rt = tokio::runtime::Runtime::new()?;
    let keeper = super::sibling_binary("keeper")?;
    let hits = Arc::new(Hits::new());
    let target = rt.block_on(serve_target(hits.clone()))?;
    println!(
        "# keeper bench {}: {} http checks every {} s over {} instances on one PostgreSQL, on {} CPUs",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
        opts.checks,
        opts.interval,
        NAMES.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for &lease in &opts.leases {
        let dir = tempfile::tempdir()?;
        let run = |url: String| {
            let (keeper, hits, opts) = (&keeper, &hits, &opts);
            async move {
                one_run(&Run {
                    keeper,
                    dir: dir.path(),
                    url,
                    target,
                    hits,
                    opts,
                    lease,
                })
                .await
            }
        };
        rt.block_on(super::with_pg_database(&opts.pg_url, run))?;
    }
    Ok(())
}

/// One lease's run: what it needs.
struct Run<'a> {
    keeper: &'a Path,
    dir: &'a Path,
    /// The bench database's URL.
    url: String,
    target: SocketAddr,
    hits: &'a Hits,
    opts: &'a Opts,
    lease: u64,
}

/// One keeper process, reaching the database through its own counting proxy.
struct Instance {
    name: &'static str,
    child: Option<ChildGuard>,
    pid: u32,
    base: String,
    tally: Arc<Tally>,
}

async fn one_run(run: &Run<'_>) -> anyhow::Result<()> {
    let db: SocketAddr = pg_addr(&run.url)?;
    let database = run.url.rsplit('/').next().unwrap_or_default().to_string();
    println!(
        "\n## lease {} s (renewal every {:.1} s), database {database}",
        run.lease,
        run.lease as f64 / 3.0
    );
    let mut instances = Vec::new();
    for name in NAMES {
        instances.push(start_instance(run, name, db, &database).await?);
    }
    let started = Instant::now();
    let owners = settled(&instances, run.opts.checks).await?;
    println!(
        "settled: every instance sees one owner per check {:.1} s after the last start",
        started.elapsed().as_secs_f64()
    );
    // Every check runs once under the settled owners before the window.
    tokio::time::sleep(Duration::from_secs(run.opts.interval)).await;
    window(run, &instances, &owners, &database).await?;
    lease_reads(run).await?;
    takeover(run, &mut instances, &owners).await
}

/// `host:port` of a `postgres://user@host:port/db` URL.
fn pg_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:5432")
    };
    host.parse()
        .with_context(|| format!("PostgreSQL at {host}: an address and port"))
}

async fn start_instance(
    run: &Run<'_>,
    name: &'static str,
    db: SocketAddr,
    database: &str,
) -> anyhow::Result<Instance> {
    let tally = Arc::new(Tally::default());
    let proxy = wire::serve(db, tally.clone()).await?;
    let port = free_port()?;
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[storage]\n\
         url = \"postgres://postgres@{proxy}/{database}?sslmode=disable\"\n\n\
         [cluster]\nname = \"{name}\"\nlease = \"{}s\"\n\n\
         [defaults]\ninterval = \"{}s\"\ntimeout = \"5s\"\nconcurrency = 1024\n\n",
        run.lease, run.opts.interval
    );
    for i in 0..run.opts.checks {
        config.push_str(&format!(
            "[checks.c{i}]\nkind = \"http\"\nurl = \"http://{}/c/{i}\"\nheaders = {{ x-instance = \"{name}\" }}\n\n",
            run.target
        ));
    }
    let path = run.dir.join(format!("{name}.toml"));
    std::fs::write(&path, config)?;
    let child = Command::new(run.keeper)
        .args(["run", "-c"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("starting keeper")?;
    let pid = child.id();
    let child = ChildGuard(child);
    let base = format!("http://127.0.0.1:{port}");
    super::wait_ready(&reqwest::Client::new(), &base, run.opts.checks).await?;
    Ok(Instance {
        name,
        child: Some(child),
        pid,
        base,
        tally,
    })
}

/// Waits (at most 3 minutes) until every instance shows the same owner for
/// each of the `n` checks, each owner one of them and each owning some.
async fn settled(instances: &[Instance], n: usize) -> anyhow::Result<Vec<usize>> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let mut seen = Vec::new();
        for i in instances {
            seen.push(owners(&http, &i.base, n).await?);
        }
        let all_owned = seen[0].iter().all(|o| *o < NAMES.len());
        let each_owns = (0..NAMES.len()).all(|m| seen[0].contains(&m));
        if all_owned && each_owns && seen.iter().all(|s| *s == seen[0]) {
            return Ok(seen.swap_remove(0));
        }
        if Instant::now() > deadline {
            bail!("the instances did not agree on the owners within 3 minutes");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Each check's owner (an index into `NAMES`; `NAMES.len()`: none) as the
/// instance at `base` sees it.
async fn owners(http: &reqwest::Client, base: &str, n: usize) -> anyhow::Result<Vec<usize>> {
    let cluster: serde_json::Value = (http.get(format!("{base}/api/v1/cluster")).send().await?)
        .json()
        .await?;
    let mut out = vec![NAMES.len(); n];
    for c in cluster["checks"].as_array().context("checks")? {
        let check = c["check"].as_str().unwrap_or_default();
        let Some(i) = check
            .strip_prefix('c')
            .and_then(|i| i.parse::<usize>().ok())
        else {
            continue;
        };
        let owner = c["owner"].as_str().unwrap_or_default();
        if let (Some(slot), Some(o)) = (out.get_mut(i), NAMES.iter().position(|n| *n == owner)) {
            *slot = o;
        }
    }
    Ok(out)
}

/// The measurement window: per instance CPU per check, RSS, statements and
/// bytes by kind; checks probed by two instances or by none.
async fn window(
    run: &Run<'_>,
    instances: &[Instance],
    owners: &[usize],
    database: &str,
) -> anyhow::Result<()> {
    let load0 = load_average();
    let commits0 = xact_commits(&run.url, database).await?;
    let cpu0: Vec<u64> = (instances.iter())
        .map(|i| cpu_ticks(i.pid))
        .collect::<Result<_, _>>()?;
    let tallies0: Vec<Counts> = instances.iter().map(|i| i.tally.snapshot()).collect();
    let from = run.hits.now_ms();
    tokio::time::sleep(Duration::from_secs(run.opts.seconds)).await;
    let to = run.hits.now_ms();
    let secs = (to - from) as f64 / 1000.0;
    let commits1 = xact_commits(&run.url, database).await?;
    let rounds = secs / (run.lease as f64 / 3.0);
    let probes = run.hits.between(from, to, run.opts.checks);
    println!(
        "window {secs:.1} s ({rounds:.1} renewals per instance), load average {load0} at its start, {} at its end",
        load_average()
    );
    println!(
        "instance  owns  probed  checks/s  cpu_ms/check  rss_MB  peak_rss_MB  db_stmts/s  db_read_KB/s  db_sent_KB/s"
    );
    let mut total = Counts::default();
    for (m, i) in instances.iter().enumerate() {
        let probed: u64 = probes.iter().map(|p| p[m] as u64).sum();
        let cpu_ms = (cpu_ticks(i.pid)? - cpu0[m]) as f64 * 1000.0 / ticks_per_second();
        let tally = i.tally.snapshot().minus(&tallies0[m]);
        println!(
            "{:8}  {:>4}  {probed:>6}  {:>8.1}  {:>12.3}  {:>6.1}  {:>11.1}  {:>10.2}  {:>12.1}  {:>12.1}",
            i.name,
            owners.iter().filter(|o| **o == m).count(),
            probed as f64 / secs,
            cpu_ms / probed.max(1) as f64,
            proc_status_kb(i.pid, "VmRSS:")? as f64 / 1024.0,
            proc_status_kb(i.pid, "VmHWM:")? as f64 / 1024.0,
            tally.statements() as f64 / secs,
            tally.read() as f64 / 1024.0 / secs,
            tally.sent() as f64 / 1024.0 / secs,
        );
        tally.print_kinds(secs, rounds);
        total = total.plus(&tally);
    }
    println!(
        "all three: {:.2} statements/s; by kind, per second and per renewal round of one instance:",
        total.statements() as f64 / secs
    );
    total.print_kinds(secs, rounds * NAMES.len() as f64);
    let double = probes
        .iter()
        .filter(|p| p.iter().filter(|c| **c > 0).count() > 1)
        .count();
    let unprobed = probes.iter().filter(|p| p.iter().all(|c| *c == 0)).count();
    println!(
        "checks probed by two instances in the window: {double}; probed by none: {unprobed} (of {})",
        run.opts.checks
    );
    println!(
        "database: {:.1} transactions/s committed (pg_stat_database.xact_commit, all three instances and this bench)",
        (commits1 - commits0) as f64 / secs
    );
    Ok(())
}

fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn xact_commits(url: &str, database: &str) -> anyhow::Result<i64> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    // The statistics of other backends reach pg_stat_database within a second or so.
    let n: i64 = sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
        .bind(database)
        .fetch_one(&mut conn)
        .await?;
    Ok(n)
}

/// One lease read of this process through its own counting proxy, whole
/// (`Store::leases`) and narrowed (`LeaseViews`: a first read, then one a
/// renewal later, as an instance reads them round after round).
async fn lease_reads(run: &Run<'_>) -> anyhow::Result<()> {
    let tally = Arc::new(Tally::default());
    let proxy = wire::serve(pg_addr(&run.url)?, tally.clone()).await?;
    let database = run.url.rsplit('/').next().unwrap_or_default();
    let store = Store::connect(&format!(
        "postgres://postgres@{proxy}/{database}?sslmode=disable"
    ))
    .await?;
    let round = Duration::from_secs_f64(run.lease as f64 / 3.0);
    let mut reader = LeaseViews::default();
    println!("lease read by one more process  rows  read_KB  ms");
    for what in [
        "whole",
        "narrowed, first",
        "narrowed, a renewal later",
        "whole",
        "narrowed, a renewal later",
    ] {
        if what.contains("later") {
            tokio::time::sleep(round).await;
        }
        let before = tally.snapshot();
        let t = Instant::now();
        let rows = match what {
            "whole" => store.leases().await?.len(),
            _ => reader.read(&store).await?.len(),
        };
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let read = tally.snapshot().minus(&before).read();
        println!(
            "{what:31}  {rows:>4}  {:>7.1}  {ms:>4.0}",
            read as f64 / 1024.0
        );
    }
    let view = (store.leases().await?.into_iter())
        .find_map(|l| l.view)
        .context("a published view")?;
    lease_claims(&store, &tally, &view).await?;
    drop(store);
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&run.url).await?;
    sqlx::query("DELETE FROM check_leases WHERE check_name LIKE 'bench-%'")
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// Leases this process claims to time the claim: as many as one instance
/// holds at 10,000 checks, under names no instance probes (deleted after).
const CLAIMED: usize = 3_333;

/// One renewal's claim of `CLAIMED` leases with views like `view`: every
/// view sent (`Store::claim`, as each renewal did before), then through
/// `LeaseViews` the first time, with no view changed, and with a sixth
/// changed (checks every 30 s, renewed every 5 s).
async fn lease_claims(store: &Store, tally: &Tally, view: &str) -> anyhow::Result<()> {
    let claims = |changed: usize| -> Vec<LeaseClaim> {
        (0..CLAIMED)
            .map(|i| LeaseClaim {
                name: format!("bench-{i}"),
                region: String::new(),
                view: Some(format!("{view}{}", i + (i % 6 == 0) as usize * changed)),
            })
            .collect()
    };
    let lease = Duration::from_secs(60);
    let mut views = LeaseViews::default();
    println!("lease claim of {CLAIMED} leases  views_sent  sent_KB  read_KB  ms");
    for (what, changed) in [
        ("whole", 0),
        ("narrowed, first", 0),
        ("narrowed, none changed", 0),
        ("narrowed, a sixth changed", CLAIMED),
    ] {
        let claims = claims(changed);
        let before = tally.snapshot();
        let t = Instant::now();
        let (held, sent) = match what {
            "whole" => (store.claim("bench", lease, &claims).await?, CLAIMED),
            _ => (
                views.claim(store, "bench", lease, &claims).await?,
                views.sent(),
            ),
        };
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let bytes = tally.snapshot().minus(&before);
        if held.len() != CLAIMED {
            bail!("{what}: {} of {CLAIMED} leases held", held.len());
        }
        println!(
            "{what:28}  {sent:>10}  {:>7.1}  {:>7.1}  {ms:>4.0}",
            bytes.sent() as f64 / 1024.0,
            bytes.read() as f64 / 1024.0
        );
    }
    Ok(())
}

/// SIGKILLs `b`, then waits until each check it owned was probed by another
/// instance; prints the time from the kill for the last and the median one.
async fn takeover(
    run: &Run<'_>,
    instances: &mut [Instance],
    owners: &[usize],
) -> anyhow::Result<()> {
    let of_victim: Vec<usize> = (0..owners.len()).filter(|&c| owners[c] == VICTIM).collect();
    let victim = &mut instances[VICTIM];
    let mut child = victim.child.take().context("the victim runs")?;
    let killed = run.hits.now_ms();
    child.0.kill().context("SIGKILL")?;
    drop(child);
    let limit = Duration::from_secs(run.lease + 2 * run.opts.interval + 30);
    let deadline = Instant::now() + limit;
    let taken = loop {
        let firsts = run.hits.first_by_others(killed, VICTIM, &of_victim);
        if firsts.iter().all(Option::is_some) {
            break firsts.into_iter().flatten().collect::<Vec<u64>>();
        }
        if Instant::now() > deadline {
            let left = firsts.iter().filter(|f| f.is_none()).count();
            bail!("{left} of b's checks not probed by a or c within {limit:?} of the kill");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut after: Vec<f64> = taken.iter().map(|t| (t - killed) as f64 / 1000.0).collect();
    after.sort_by(f64::total_cmp);
    println!(
        "takeover after SIGKILL of b ({} checks): every one probed by a or c {:.1} s after the kill (median check {:.1} s); lease {} s, interval {} s; load average {}",
        of_victim.len(),
        after.last().copied().unwrap_or(f64::NAN),
        after.get(after.len() / 2).copied().unwrap_or(f64::NAN),
        run.lease,
        run.opts.interval,
        load_average()
    );
    Ok(())
}

/// Every request the target served: (check, instance, ms since the start).
struct Hits {
    started: Instant,
    log: Mutex<Vec<(u32, u8, u64)>>,
}

impl Hits {
    fn new() -> Hits {
        Hits {
            started: Instant::now(),
            log: Mutex::new(Vec::new()),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn record(&self, check: u32, instance: u8) {
        let at = self.now_ms();
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((check, instance, at));
    }

    /// Requests per check and instance in `[from, to)`.
    fn between(&self, from: u64, to: u64, checks: usize) -> Vec<[u32; NAMES.len()]> {
        let mut out = vec![[0; NAMES.len()]; checks];
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        for &(c, i, _) in log.iter().filter(|h| (from..to).contains(&h.2)) {
            if let Some(slot) = out.get_mut(c as usize).and_then(|s| s.get_mut(i as usize)) {
                *slot += 1;
            }
        }
        out
    }

    /// For each of `checks`, when an instance other than `not` first probed it after `from`.
    fn first_by_others(&self, from: u64, not: usize, checks: &[usize]) -> Vec<Option<u64>> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let mut first: HashMap<u32, u64> = HashMap::new();
        for &(c, _, at) in log.iter().filter(|h| h.2 >= from && h.1 as usize != not) {
            first.entry(c).or_insert(at);
        }
        checks
            .iter()
            .map(|c| first.get(&(*c as u32)).copied())
            .collect()
    }
}

/// The loopback target: `GET /c/{i}` logs check `i` and the `x-instance` header.
async fn serve_target(hits: Arc<Hits>) -> anyhow::Result<SocketAddr> {
    async fn hit(
        State(hits): State<Arc<Hits>>,
        UrlPath(i): UrlPath<u32>,
        headers: HeaderMap,
    ) -> &'static str {
        let name = headers.get("x-instance").and_then(|v| v.to_str().ok());
        let instance = NAMES
            .iter()
            .position(|n| Some(*n) == name)
            .unwrap_or(NAMES.len());
        hits.record(i, instance as u8);
        "ok\n"
    }
    let app = axum::Router::new()
        .route("/c/{i}", axum::routing::get(hit))
        .with_state(hits);
    super::serve(app).await
}

#[path = "cluster_wire.rs"]
mod wire;
