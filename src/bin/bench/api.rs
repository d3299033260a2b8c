//! `--api N,M,…`: the cost of `GET /api/v1/checks` (and of the incidents list)
//! against a SQLite database holding N stored samples over 30 days for a set
//! of ten checks, next to what each request cost before uptime was kept in
//! memory (three aggregate scans of the samples). keeper runs in-process.
//!
//! `--api-checks N`: the same request at N checks with 90 days of hourly
//! rollups stored (N × 2,160 rows) and raw samples of the last hour and the
//! current one (one a minute per check): the time to roll an hour up, to
//! seed uptime from the rollups, keeper's start (which seeds it too),
//! `GET /api/v1/checks`, and the status page's reads (each day's uptime over
//! 90 days, each hour's latency over 24 hours, for every check).

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use keeper::store::Store;
use keeper::store::rollup::hour_of;

/// Checks the samples are spread over.
const CHECKS: usize = 10;
/// Requests timed per endpoint.
const REQUESTS: usize = 100;

/// `--api` at each of `totals` samples, or `--api-checks` at `checks` checks.
pub async fn run(totals: &[i64], checks: usize) -> anyhow::Result<()> {
    if checks > 0 {
        return run_checks(checks).await;
    }
    println!(
        "samples    start_s  checks_ms_p50  checks_ms_max  incidents_ms_p50  scans_ms (before)"
    );
    for &total in totals {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("api.db").display());
        let store = Store::connect(&url).await?;
        store.migrate().await?;
        fill(&url, total).await?;
        let before = scan_cost(&store).await?;
        let (keeper, start_s) = start_keeper(&url, CHECKS).await?;
        let base = format!("http://{}", keeper.addr());
        let client = reqwest::Client::new();
        let checks = timed(&client, &format!("{base}/api/v1/checks")).await?;
        let incidents = timed(
            &client,
            &format!("{base}/api/v1/incidents?state=all&limit=1000"),
        )
        .await?;
        keeper.shutdown().await?;
        println!(
            "{total:>9}  {start_s:>7.2}  {:>13.3}  {:>13.3}  {:>16.3}  {before:>10.1}",
            ms(checks[checks.len() / 2]),
            ms(checks[checks.len() - 1]),
            ms(incidents[incidents.len() / 2]),
        );
    }
    Ok(())
}

async fn run_checks(checks: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("api.db").display());
    let store = Store::connect(&url).await?;
    store.migrate().await?;
    let now = Utc::now();
    let open = hour_of(now);
    let t = Instant::now();
    fill_rollups(&url, checks, open).await?;
    let fill_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let rolled = store
        .roll_up_hour(open - chrono::Duration::hours(1))
        .await?;
    let roll_ms = ms(t.elapsed());
    let t = Instant::now();
    store
        .seed_uptime(&keeper::store::uptime::UptimeBook::new(), Utc::now())
        .await?;
    let seed_ms = ms(t.elapsed());
    let (keeper, start_s) = start_keeper(&url, checks).await?;
    let client = reqwest::Client::new();
    let checks_times = timed(&client, &format!("http://{}/api/v1/checks", keeper.addr())).await?;
    keeper.shutdown().await?;
    let t = Instant::now();
    let days = store.daily_uptime(90, Utc::now()).await?;
    let daily_ms = ms(t.elapsed());
    let t = Instant::now();
    let hours = store.hourly_latency(24, Utc::now()).await?;
    let hourly_ms = ms(t.elapsed());
    println!(
        "checks  fill_s  roll_hour_ms (rows)  seed_ms  start_s  checks_ms_p50  checks_ms_max  daily_90d_ms  hourly_24h_ms"
    );
    println!(
        "{checks:>6}  {fill_s:>6.1}  {roll_ms:>12.1} ({rolled})  {seed_ms:>7.0}  {start_s:>7.2}  {:>13.1}  {:>13.1}  {daily_ms:>12.0}  {hourly_ms:>13.0}",
        ms(checks_times[checks_times.len() / 2]),
        ms(checks_times[checks_times.len() - 1]),
    );
    anyhow::ensure!(
        days.len() >= checks && hours.len() >= checks,
        "every check read back: {} with days, {} with hours",
        days.len(),
        hours.len()
    );
    Ok(())
}

/// 90 days of hourly rollups for `checks` checks up to two hours before
/// `open` (one a minute per check, one in ten hours down for an hour) and
/// their days' sums, and raw samples, one a minute per check, of the hour
/// before `open` and of `open` up to now; each in time order, as keeper
/// writes them (rows of one hour together in the file).
async fn fill_rollups(url: &str, checks: usize, open: chrono::DateTime<Utc>) -> anyhow::Result<()> {
    use sqlx::Connection;
    let open = open.timestamp_millis();
    let now = Utc::now().timestamp_millis();
    let mut conn = sqlx::SqliteConnection::connect(url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {last_check}), \
                        h(j) AS (SELECT {first_hour} UNION ALL SELECT j - 1 FROM h WHERE j > 2) \
         INSERT INTO rollups (check_name, hour, total, ok, latency_p50, latency_p95, latency_max) \
         SELECT 'c' || i, {open} - j * 3600000, 60, CASE WHEN (i + j) % 10 = 0 THEN 0 ELSE 60 END, \
                10.0, 25.0, 40.0 FROM h CROSS JOIN c; \
         INSERT INTO rollup_days (check_name, day, total, ok) \
         SELECT check_name, (hour / 86400000) * 86400000, SUM(total), SUM(ok) FROM rollups \
         GROUP BY 1, 2 ORDER BY 2, 1; \
         WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {last_check}), \
                        m(k) AS (SELECT -60 UNION ALL SELECT k + 1 FROM m WHERE k < {last_minute}) \
         INSERT INTO samples (check_name, at, duration_ms, up, color, latency_ms, message) \
         SELECT 'c' || i, {open} + k * 60000, 1.0, 1, 'green', 1.0 + (i + k) % 50, 'ok' \
         FROM m CROSS JOIN c",
        last_check = checks - 1,
        first_hour = 90 * 24 + 1,
        last_minute = (now - open) / 60_000,
    )))
    .execute(&mut conn)
    .await
    .context("filling rollups and samples")?;
    Ok(())
}

/// keeper on the database at `url` with `checks` hourly `tcp` checks (c0,
/// c1, …) of a closed loopback port; and how long it took to start, seconds.
async fn start_keeper(url: &str, checks: usize) -> anyhow::Result<(keeper::app::Keeper, f64)> {
    let mut config = format!("[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nurl = \"{url}\"\n");
    for i in 0..checks {
        config.push_str(&format!(
            "[checks.c{i}]\nkind = \"tcp\"\nhost = \"127.0.0.1:9\"\ninterval = \"1h\"\n"
        ));
    }
    let config =
        keeper::config::Config::parse(std::path::Path::new("bench.toml"), &config, &|_| None)
            .map_err(|e| anyhow::anyhow!("bench config: {e}"))?;
    let started = Instant::now();
    let keeper = keeper::app::start(config)
        .await
        .context("starting keeper")?;
    Ok((keeper, started.elapsed().as_secs_f64()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Sorted durations of [`REQUESTS`] sequential GETs of `url`.
async fn timed(client: &reqwest::Client, url: &str) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let t = Instant::now();
        let resp = client.get(url).send().await?.error_for_status()?;
        resp.bytes().await?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times)
}

/// What one `GET /api/v1/checks` read before: uptime per check over three windows.
async fn scan_cost(store: &Store) -> anyhow::Result<f64> {
    let t = Instant::now();
    for days in [1, 7, 30] {
        store
            .uptime_by_check(Utc::now() - chrono::Duration::days(days))
            .await?;
    }
    Ok(ms(t.elapsed()))
}

/// `total` samples over the last 30 days, spread over the checks, in one statement.
async fn fill(url: &str, total: i64) -> anyhow::Result<()> {
    use sqlx::Connection;
    let now = Utc::now().timestamp_millis();
    let step = (30 * 86_400_000 / total.max(1)).max(1);
    let mut conn = sqlx::SqliteConnection::connect(url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
         INSERT INTO samples (check_name, at, duration_ms, up, color, latency_ms, message) \
         SELECT 'c' || (i % {CHECKS}), {now} - i * {step}, 1.0, i % 10 <> 0, \
                CASE WHEN i % 10 = 0 THEN 'red' ELSE 'green' END, 1.0, 'ok' FROM n",
        last = total - 1
    )))
    .execute(&mut conn)
    .await
    .context("filling samples")?;
    Ok(())
}
