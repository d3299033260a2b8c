//! `keeper report cost` as a process, against a loopback stand-in for the
//! Fly.io Machines API (machines of two sizes, started and stopped, and
//! volumes, in the documented JSON) and a real Prometheus (Debian's) whose
//! TSDB holds a whole month of memory and CPU series, backfilled with
//! `promtool tsdb create-blocks-from openmetrics` before it starts; `host`
//! checks' samples from keeper's own database on both backends; the
//! `[cost]` section's mistakes refused at their line and column.
//!
//! The month is October 2026 (31 days): Fly's prices are per 30 days and
//! billed per second, so each is ×31/30 here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use keeper::core::Color;
use keeper::store::SampleRow;
use serde_json::{Value, json};
use tokio_util::task::AbortOnDropHandle;

use crate::support::child::{ChildServer, LISTEN};
use crate::support::db::both_backends;
use crate::support::{self, config_error};

const TOKEN: &str = "fo1_cost-report-token";
/// 2026-10-01T00:00:00Z.
const OCTOBER: i64 = 1_790_812_800;
const OCTOBER_DAYS: i64 = 31;

/// The Machines API stand-in: `/v1/apps/{app}/machines` and `/volumes`
/// answer the app's JSON with the right token (Bearer or FlyV1), 401 with
/// Fly's error body without it, 404 for an app it does not know.
struct FlyApi {
    url: String,
    _server: AbortOnDropHandle<()>,
}

type Apps = Arc<BTreeMap<String, (String, String)>>;

async fn listing(
    State(apps): State<Apps>,
    UrlPath((app, what)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {TOKEN}") && auth != format!("FlyV1 {TOKEN}") {
        let body = json!({"error": "Authenticate: token validation error"});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let body = match (apps.get(&app), what.as_str()) {
        (Some((machines, _)), "machines") => machines.clone(),
        (Some((_, volumes)), "volumes") => volumes.clone(),
        _ => {
            let body = json!({"error": format!("app {app} not found"), "status": "unknown"});
            return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
        }
    };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

impl FlyApi {
    /// Serves `apps`: name → (machines JSON, volumes JSON).
    async fn start(apps: &[(&str, String, String)]) -> FlyApi {
        let apps: Apps = Arc::new(
            apps.iter()
                .map(|(name, m, v)| (name.to_string(), (m.clone(), v.clone())))
                .collect(),
        );
        let router = axum::Router::new()
            .route("/v1/apps/{app}/{what}", axum::routing::get(listing))
            .with_state(apps);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the Fly stand-in");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("Fly stand-in");
        });
        FlyApi {
            url,
            _server: AbortOnDropHandle::new(server),
        }
    }
}

/// A machine in the documented shape (external-apis.md §1) of size
/// `kind` × `cpus` × `memory_mb`.
fn machine(id: &str, state: &str, region: &str, guest: (&str, u32, u32)) -> String {
    let (kind, cpus, memory_mb) = guest;
    format!(
        r#"{{
  "id": "{id}", "name": "snowy-leaf", "state": "{state}", "region": "{region}",
  "instance_id": "01GH8YVWQ3ZJK96N1X2D9M7ABC", "private_ip": "fdaa:0:af8e:a7b:1:2:3:2",
  "created_at": "2026-09-05T15:36:21Z", "updated_at": "2026-10-22T21:17:53Z",
  "image_ref": {{"registry": "registry.fly.io", "repository": "app", "tag": "deployment-01H",
                "digest": "sha256:9daa", "labels": {{"fly.version": "v0.0.32"}}}},
  "config": {{
    "image": "registry.fly.io/app:deployment-01H",
    "guest": {{"cpu_kind": "{kind}", "cpus": {cpus}, "memory_mb": {memory_mb}}},
    "metadata": {{"fly_platform_version": "v2", "fly_process_group": "app", "fly_release_version": "42"}},
    "mounts": [{{"volume": "vol_52e", "path": "/data", "size_gb": 10, "encrypted": true}}],
    "restart": {{"policy": "always"}}, "services": []
  }},
  "events": [], "checks": [], "host_status": "ok"
}}"#
    )
}

/// A volume in the documented shape (external-apis.md §4).
fn volume(id: &str, size_gb: u32, region: &str) -> String {
    format!(
        r#"{{"id": "{id}", "name": "data", "state": "created", "size_gb": {size_gb}, "region": "{region}",
  "zone": "75ec", "encrypted": true, "attached_machine_id": "148e127a0b4589", "attached_alloc_id": null,
  "created_at": "2026-02-23T00:41:02.411Z", "fstype": "ext4", "block_size": 4096, "blocks": 786432,
  "blocks_free": 600000, "blocks_avail": 560000, "snapshot_retention": 5, "auto_backup_enabled": true,
  "host_status": "ok"}}"#
    )
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.join(",\n"))
}

const SHARED_1G: (&str, u32, u32) = ("shared", 1, 1024);
const PERF_2X_4G: (&str, u32, u32) = ("performance", 2, 4096);
const SHARED_256: (&str, u32, u32) = ("shared", 1, 256);

/// `lean`: two started shared-cpu-1x 1GB and a stopped one, a 10 GB volume;
/// `busy`: one performance-2x 4GB, a 40 GB volume (and a destroyed machine,
/// a release command); `bare`: one shared-cpu-1x 256MB.
async fn fly_api() -> FlyApi {
    let lean = list(&[
        machine("3d8d9020a11111", "started", "iad", SHARED_1G),
        machine("148e127a0b4589", "started", "fra", SHARED_1G),
        machine("5683d2e2f33333", "stopped", "fra", SHARED_1G),
    ]);
    let mut release = machine("9e11aa0000", "started", "fra", PERF_2X_4G);
    release = release.replace(
        r#""fly_process_group": "app""#,
        r#""fly_process_group": "fly_app_release_command""#,
    );
    let busy = list(&[
        machine("2a8e6f1b3c2222", "started", "ams", PERF_2X_4G),
        machine("0dead00000", "destroyed", "ams", PERF_2X_4G),
        release,
    ]);
    let bare = list(&[machine("7b7b7b7b7b", "started", "sjc", SHARED_256)]);
    FlyApi::start(&[
        ("lean", lean, list(&[volume("vol_lean", 10, "fra")])),
        ("busy", busy, list(&[volume("vol_busy", 40, "ams")])),
        ("bare", bare, "[]".into()),
    ])
    .await
}

/// Prometheus holding October 2026 at one sample every 5 minutes, cycling
/// through the values given: `app_memory_pct{app="lean"}` 10, 15, 20, 25
/// (average 17.5, peak 25), `app_cpu_pct{app="lean"}` 5, 10, 15, 10
/// (average 10), `app_memory_pct{app="busy"}` 50, 60, 70, 90 (average
/// 67.5, peak 90). Backfilled by promtool into its data directory before it
/// starts; retention long enough to keep a past month.
async fn prometheus_with_a_month() -> ChildServer {
    let series: [(&str, &str, [u32; 4]); 3] = [
        ("app_memory_pct", "lean", [10, 15, 20, 25]),
        ("app_memory_pct", "busy", [50, 60, 70, 90]),
        ("app_cpu_pct", "lean", [5, 10, 15, 10]),
    ];
    let mut text = String::new();
    let mut family = "";
    let samples = OCTOBER_DAYS * 24 * 12;
    for (name, app, values) in series {
        if name != family {
            text.push_str(&format!("# HELP {name} Used.\n# TYPE {name} gauge\n"));
            family = name;
        }
        for i in 0..samples {
            let v = values[i as usize % 4];
            let at = OCTOBER + i * 300;
            text.push_str(&format!("{name}{{app=\"{app}\"}} {v} {at}\n"));
        }
    }
    text.push_str("# EOF\n");
    ChildServer::start(
        "prometheus",
        "prometheus",
        Duration::from_secs(120),
        |dir| {
            let input = dir.join("october.om");
            std::fs::write(&input, &text).expect("writing the OpenMetrics file");
            let data = dir.join("data");
            let out = std::process::Command::new("promtool")
                .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet"])
                .arg(&input)
                .arg(&data)
                .output()
                .expect("running promtool (apt-get install -y prometheus)");
            assert!(
                out.status.success(),
                "promtool: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let config = dir.join("prometheus.yml");
            std::fs::write(&config, "global: {scrape_interval: 1m}\n").expect("prometheus.yml");
            vec![
                format!("--config.file={}", config.display()),
                format!("--storage.tsdb.path={}", data.display()),
                "--storage.tsdb.retention.time=100y".into(),
                LISTEN.into(),
                "--log.level=info".into(),
            ]
        },
    )
    .await
}

/// Runs `keeper report cost -c CONFIG ARGS…` with the token in the
/// environment; (exit code, stdout, stderr).
async fn report(config: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("keeper.toml");
    std::fs::write(&path, config).expect("writing keeper.toml");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(["report", "cost", "-c"])
        .arg(&path)
        .args(args)
        .env("FLY_API_TOKEN", TOKEN)
        .output()
        .await
        .expect("running keeper report cost");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fly_check(name: &str, app: &str, api_url: &str, label: bool) -> String {
    let labels = if label {
        format!("labels = {{ app = {app:?} }}\n")
    } else {
        String::new()
    };
    format!(
        "[checks.{name}]\nkind = \"fly\"\napp = {app:?}\ntoken = \"${{FLY_API_TOKEN}}\"\n\
         api_url = {api_url:?}\n{labels}\n"
    )
}

fn prometheus_check(name: &str, app: &str, url: &str, query: &str, metric: &str) -> String {
    format!(
        "[checks.{name}]\nkind = \"prometheus\"\nurl = {url:?}\nquery = '{query}'\n\
         metric = {metric:?}\nlabels = {{ app = {app:?} }}\n\n"
    )
}

/// The line of `text` that contains `needle`, for clearer failures.
fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

#[tokio::test]
async fn a_month_of_machines_volumes_and_memory_use_priced_and_judged() {
    support::init();
    let fly = fly_api().await;
    let prometheus = prometheus_with_a_month().await;
    let prom = prometheus.url();
    let config = [
        "[cost]\nstopped_rootfs_gb = 2\n\n".to_string(),
        fly_check("lean-fly", "lean", &fly.url, true),
        prometheus_check(
            "lean-mem",
            "lean",
            &prom,
            r#"app_memory_pct{app="lean"}"#,
            "memory_pct",
        ),
        prometheus_check(
            "lean-cpu",
            "lean",
            &prom,
            r#"app_cpu_pct{app="lean"}"#,
            "cpu_pct",
        ),
        fly_check("busy-fly", "busy", &fly.url, false),
        prometheus_check(
            "busy-mem",
            "busy",
            &prom,
            r#"app_memory_pct{app="busy"}"#,
            "memory_pct",
        ),
        fly_check("bare-fly", "bare", &fly.url, true),
        // A query Prometheus refuses.
        prometheus_check("bare-mem", "bare", &prom, "app_memory_pct{", "memory_pct"),
    ]
    .concat();

    let (code, md, stderr) = report(&config, &["--month", "2026-10"]).await;

    assert_eq!(code, 0, "{md}\n{stderr}");
    assert!(md.starts_with("# Fly.io cost, 2026-10 (31 days)\n"), "{md}");
    // lean: 2 × shared-cpu-1x 1GB running ($5.69 / 30 days → $5.88 in
    // October), the stopped one its 2 GB rootfs at $0.15/GB ($0.31), 10 GB
    // of volume ($1.55). busy: performance-2x 4GB ($62 / 30 days), 40 GB of
    // volume. bare: shared-cpu-1x 256MB ($1.94 / 30 days).
    let rows = [
        "| 148e127a0b4589 | fra | started | shared-cpu-1x 1GB | running | $5.88 |",
        "| 3d8d9020a11111 | iad | started | shared-cpu-1x 1GB | running | $5.88 |",
        "| 5683d2e2f33333 | fra | stopped | shared-cpu-1x 1GB | rootfs only (2 GB) | $0.31 |",
        "| vol_lean | data | fra | 10 GB | $1.55 |",
        "| 2a8e6f1b3c2222 | ams | started | performance-2x 4GB | running | $64.07 |",
        "| vol_busy | data | ams | 40 GB | $6.20 |",
        "| 7b7b7b7b7b | sjc | started | shared-cpu-1x 256MB | running | $2.00 |",
    ];
    for row in rows {
        let id = &row[..row[2..].find(' ').map_or(row.len(), |at| at + 2)];
        assert_eq!(line_with(&md, id), row);
    }
    // The destroyed machine and the release command are not billed.
    assert!(
        !md.contains("0dead00000") && !md.contains("9e11aa0000"),
        "{md}"
    );
    let estimates: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("Estimate for the month"))
        .collect();
    assert_eq!(
        estimates,
        [
            "Estimate for the month: **$2.00**",
            "Estimate for the month: **$70.27**",
            "Estimate for the month: **$13.62**",
        ]
    );
    assert_eq!(line_with(&md, "| lean |"), "| lean | 3 | 1 | $13.62 |");
    assert_eq!(line_with(&md, "| busy |"), "| busy | 1 | 1 | $70.27 |");
    assert_eq!(line_with(&md, "| bare |"), "| bare | 1 | 0 | $2.00 |");
    assert_eq!(
        line_with(&md, "**Total**"),
        "| **Total** | 5 | 2 | **$85.89** |"
    );

    // Right-sizing from the month in Prometheus (apps by name): bare's
    // query is refused, so no usage data; busy peaks at 90 % of its memory
    // → up; lean peaks at 25 % and averages 10 % CPU → down.
    let sizing: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("Right-sizing:"))
        .collect();
    assert_eq!(sizing.len(), 3, "{md}");
    assert!(
        sizing[0].starts_with("Right-sizing: no usage data (Prometheus at 127.0.0.1:")
            && sizing[0].contains("HTTP 400 Bad Request: invalid parameter \"query\""),
        "{}",
        sizing[0]
    );
    let lean = sizing[2];
    assert!(
        lean.starts_with(
            "Right-sizing: **down**: memory average 17.5 %, peak 25.0 %; CPU average 10.0 %, peak 15.0 % ("
        ),
        "{lean}"
    );
    assert!(
        lean.contains(r#"prometheus check "lean-mem""#)
            && lean.contains(r#"prometheus check "lean-cpu""#),
        "{lean}"
    );
    assert!(
        lean.ends_with("shared-cpu-1x 1GB → shared-cpu-1x 512MB (-$2.58 per machine)"),
        "{lean}"
    );
    assert_eq!(
        sizing[1],
        "Right-sizing: **up**: memory average 67.5 %, peak 90.0 %; CPU not measured \
         (prometheus check \"busy-mem\"); performance-2x 4GB → performance-2x 8GB ($20.67 per machine)"
    );

    // The same as JSON.
    let (code, json, stderr) = report(&config, &["--month", "2026-10", "--json"]).await;
    assert_eq!(code, 0, "{stderr}");
    let json: Value = serde_json::from_str(&json).expect("--json prints JSON");
    assert_eq!(json["month"], "2026-10");
    assert_eq!(json["total_usd"], 85.89);
    assert_eq!(json["prices"]["shared_cpu_month"], 0.69);
    let apps = json["apps"].as_array().expect("apps");
    let summary: Vec<(&str, usize, f64, &str)> = apps
        .iter()
        .map(|a| {
            (
                a["app"].as_str().unwrap_or_default(),
                a["machines"].as_array().map_or(0, Vec::len),
                a["total_usd"].as_f64().unwrap_or_default(),
                a["sizing"]["verdict"]
                    .as_str()
                    .or(a["sizing"]["status"].as_str())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("bare", 1, 2.0, "unavailable"),
            ("busy", 1, 70.27, "up"),
            ("lean", 3, 13.62, "down"),
        ]
    );
    assert_eq!(apps[1]["machines"][0]["guest"]["cpu_kind"], "performance");
    assert_eq!(apps[2]["volumes"][0]["size_gb"], 10.0);
    assert_eq!(apps[1]["sizing"]["suggestions"][0]["to"]["memory_mb"], 8192);
}

#[tokio::test]
async fn an_unreadable_app_is_named_and_the_others_still_reported() {
    support::init();
    let fly = fly_api().await;
    let config = [
        fly_check("gone-fly", "gone", &fly.url, true),
        fly_check("bare-fly", "bare", &fly.url, true),
        // Nothing measures it.
        fly_check("lean-fly", "lean", &fly.url, true),
        // Nothing listens there.
        prometheus_check(
            "bare-mem",
            "bare",
            &format!("http://127.0.0.1:{}", support::free_port()),
            "app_memory_pct",
            "memory_pct",
        ),
    ]
    .concat();

    // No --month: the current one.
    let (code, md, stderr) = report(&config, &[]).await;

    assert_eq!(
        code, 1,
        "an app that cannot be read fails the run:\n{md}\n{stderr}"
    );
    let month = Utc::now().format("%Y-%m").to_string();
    assert!(md.starts_with(&format!("# Fly.io cost, {month} (")), "{md}");
    let gone = line_with(&md, "Could not read the app");
    assert!(
        gone.contains("/v1/apps/gone/machines: HTTP 404 Not Found: app gone not found"),
        "{gone}"
    );
    assert_eq!(line_with(&md, "| gone |"), "| gone | 0 | 0 | unknown |");
    // Prices per 30 days, for this month's days: bare's shared-cpu-1x
    // 256MB $1.94; lean's two shared-cpu-1x 1GB $5.69 each and its 10 GB
    // volume $1.50; its stopped machine nothing (no stopped_rootfs_gb).
    let now = Utc::now();
    let first = now.date_naive().with_day(1).expect("the 1st");
    let days = (first + chrono::Months::new(1) - first).num_days() as f64;
    let month = |per_30_days: f64| (per_30_days * days / 30.0 * 100.0).round() / 100.0;
    let total = month(1.94) + 2.0 * month(5.69) + month(1.5);
    assert_eq!(
        line_with(&md, "**Total**"),
        format!("| **Total** | 4 | 1 | **${total:.2}** |")
    );
    assert_eq!(
        line_with(&md, "5683d2e2f33333"),
        "| 5683d2e2f33333 | fra | stopped | shared-cpu-1x 1GB | rootfs not counted | $0.00 |"
    );
    assert!(md.contains("a stopped machine costs nothing here"), "{md}");
    assert_eq!(
        line_with(&md, "Right-sizing: no usage data (no "),
        "Right-sizing: no usage data (no prometheus check of memory_pct or cpu_pct, or host \
         check, labelled with this app)"
    );
    let sizing = line_with(&md, "Right-sizing:");
    assert!(
        sizing.starts_with("Right-sizing: no usage data (Prometheus at 127.0.0.1:")
            && sizing.contains("connection refused"),
        "{sizing}"
    );

    // A token Fly refuses: said so, never shown.
    let wrong = config.replace("${FLY_API_TOKEN}", "fo1_not-the-token");
    let (code, md, _) = report(&wrong, &[]).await;
    assert_eq!(code, 1);
    let bare = line_with(&md, "/v1/apps/bare/machines");
    assert!(
        bare.starts_with("Could not read the app: Machines API at 127.0.0.1:")
            && bare.contains("unauthorized: check the token (HTTP 401 Unauthorized"),
        "{bare}"
    );
    assert!(!md.contains("fo1_not-the-token"), "{md}");
}

/// A `host` check's sample at `at` with the given memory and CPU percent.
fn host_sample(at: DateTime<Utc>, memory: f64, cpu: f64) -> SampleRow {
    SampleRow {
        check: Arc::from("box"),
        at,
        duration_ms: 1.0,
        up: true,
        color: Color::Green,
        status_code: None,
        latency_ms: 1.0,
        message: "memory 50 %".into(),
        metrics: Some(json!({"memory_pct": memory, "cpu_pct": cpu, "disk_pct": 12.0}).to_string()),
        region: None,
    }
}

both_backends! {
    async fn host_checks_samples_in_keepers_database_size_the_app(db) {
        let store = db.store().await;
        let start = Utc.timestamp_opt(OCTOBER, 0).unwrap();
        // Every 30 minutes in October: memory 40/60 %, CPU 50 %; around it,
        // samples that must not count (99 %).
        let mut rows: Vec<SampleRow> = (0..OCTOBER_DAYS * 48)
            .map(|i| {
                let memory = if i % 2 == 0 { 40.0 } else { 60.0 };
                host_sample(start + chrono::Duration::minutes(30 * i), memory, 50.0)
            })
            .collect();
        rows.push(host_sample(start - chrono::Duration::minutes(1), 99.0, 99.0));
        rows.push(host_sample(start + chrono::Duration::days(OCTOBER_DAYS), 99.0, 99.0));
        store.insert_samples(&rows).await.expect("inserting samples");

        let fly = fly_api().await;
        let config = format!(
            "[storage]\nurl = {:?}\n\n{}[checks.box]\nkind = \"host\"\nlabels = {{ app = \"bare\" }}\n",
            db.url(),
            fly_check("bare-fly", "bare", &fly.url, false),
        );
        let (code, md, stderr) = report(&config, &["--month", "2026-10"]).await;

        assert_eq!(code, 0, "{md}\n{stderr}");
        assert_eq!(
            line_with(&md, "Right-sizing:"),
            "Right-sizing: sized right: memory average 50.0 %, peak 60.0 %; \
             CPU average 50.0 %, peak 50.0 % (host check \"box\")"
        );
    }
}

#[test]
fn cost_section_mistakes_are_refused_at_their_line_and_column() {
    assert_eq!(
        config_error("[cost]\nshared_cpu_month = 1.0\nmemory_gb = 5.0\n"),
        "keeper.toml:3:1: cost.memory_gb: unknown field `memory_gb`, expected one of \
         `shared_cpu_month`, `performance_cpu_month`, `memory_gb_month`, `volume_gb_month`, \
         `stopped_rootfs_gb`, `scale_down_below_pct`, `scale_up_above_pct`"
    );
    assert_eq!(
        config_error("[cost]\nvolume_gb_month = -0.15\n"),
        "keeper.toml:2:19: cost.volume_gb_month: must be a number 0 or above (got -0.15)"
    );
    assert_eq!(
        config_error("[cost]\nscale_up_above_pct = 90\nscale_down_below_pct = 95\n"),
        "keeper.toml:3:24: cost.scale_down_below_pct: must be below scale_up_above_pct (90)"
    );
    let config = support::parse_config("[cost]\nperformance_cpu_month = 25\n").expect("valid");
    assert_eq!(config.cost.performance_cpu_month, 25.0);
    assert_eq!(config.cost.shared_cpu_month, 0.69);
}
