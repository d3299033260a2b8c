//! `log` checks: a followed file survives both kinds of rotation while a
//! writer appends (no line lost or read twice); `from_start`; error bursts
//! open medium and high incidents, a critical line a critical one at once,
//! and a quiet window resolves them; long lines are cut; config mistakes are
//! refused with line and column.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keeper::probe::log::file::{self, Follower, Sink};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::support::app::{TestApp, spawn_app};
use crate::support::config::{Check, TestConfig};
use crate::support::db::Backend;
use crate::support::{config_error, parse_config, wait_for, wait_until};

const WAIT: Duration = Duration::from_secs(20);

/// Every line a follower delivered, as a test's sink.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);

impl Sink for Collect {
    fn lines<'a, I: Iterator<Item = Cow<'a, str>>>(&self, lines: I) {
        self.0.lock().unwrap().extend(lines.map(Cow::into_owned));
    }
    fn problem(&self, _: Option<String>) {}
}

impl Collect {
    /// How often each line number was seen.
    fn seen(&self) -> HashMap<u64, usize> {
        let mut seen = HashMap::new();
        for line in self.0.lock().unwrap().iter() {
            let n: u64 = line
                .strip_prefix("line ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a line of the writer: {line:?}"));
            *seen.entry(n).or_default() += 1;
        }
        seen
    }
}

fn open_append(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

/// A writer thread appending `line N` for N in 0..total, a little at a time.
struct Writer {
    written: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl Writer {
    /// `write` appends one line; the thread paces itself so rotations land mid-stream.
    fn spawn(total: u64, mut write: impl FnMut(&[u8]) + Send + 'static) -> Writer {
        let written = Arc::new(AtomicU64::new(0));
        let count = written.clone();
        let thread = std::thread::spawn(move || {
            for n in 0..total {
                write(format!("line {n}\n").as_bytes());
                count.store(n + 1, Ordering::SeqCst);
                if n % 20 == 19 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        Writer { written, thread }
    }

    async fn wait_written(&self, n: u64) {
        wait_until(&format!("the writer wrote {n} lines"), WAIT, || async {
            self.written.load(Ordering::SeqCst) >= n
        })
        .await;
    }
}

/// Follows `path` (from its start) into a collector every 20 ms while
/// `rotate(k)` rotates it at each quarter of `total` lines written; then
/// checks every line was seen exactly once.
async fn follow_through_rotations(
    path: &Path,
    total: u64,
    writer: Writer,
    mut rotate: impl FnMut(u64),
) {
    let sink = Collect::default();
    let mut follower = Follower::new(path, true, sink.clone());
    follower.open();
    let stop = CancellationToken::new();
    let task = tokio::spawn(file::run(follower, Duration::from_millis(20), stop.clone()));
    for k in 1..=3 {
        writer.wait_written(k * total / 4).await;
        rotate(k);
    }
    writer.wait_written(total).await;
    writer.thread.join().unwrap();
    wait_until("every line was read", WAIT, || async {
        sink.seen().len() as u64 == total
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    let seen = sink.seen();
    let twice: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "lines read more than once: {twice:?}");
    assert!((0..total).all(|n| seen.contains_key(&n)));
}

#[tokio::test]
async fn rename_rotation_while_a_writer_appends_loses_and_repeats_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    // Like logrotate with `create`: the file is renamed and a new empty one
    // made at once; the app, signalled, reopens the path only 400 lines
    // later (several polls): until then it appends to the renamed file.
    let reopen = Arc::new(AtomicBool::new(false));
    let writer = {
        let path = path.clone();
        let reopen = reopen.clone();
        let mut file = open_append(&path);
        let mut countdown: Option<u32> = None;
        Writer::spawn(20_000, move |line| {
            if reopen.swap(false, Ordering::SeqCst) {
                countdown = Some(400);
            }
            if let Some(n) = countdown.as_mut() {
                *n -= 1;
                if *n == 0 {
                    file = open_append(&path);
                    countdown = None;
                }
            }
            file.write_all(line).unwrap();
        })
    };
    let rotated = |k: u64| dir.path().join(format!("app.log.{k}"));
    follow_through_rotations(&path, 20_000, writer, |k| {
        std::fs::rename(&path, rotated(k)).unwrap();
        std::fs::File::create(&path).unwrap();
        reopen.store(true, Ordering::SeqCst);
    })
    .await;
    for k in 1..=3 {
        assert!(rotated(k).exists());
    }
}

#[tokio::test]
async fn copytruncate_rotation_while_a_writer_appends_loses_and_repeats_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    // copytruncate loses, for every reader, what is written between the copy
    // and the truncate: the lock keeps the writer out of that gap, and only
    // out of it.
    let file = Arc::new(Mutex::new(open_append(&path)));
    let writer = {
        let file = file.clone();
        Writer::spawn(20_000, move |line| {
            file.lock().unwrap().write_all(line).unwrap();
        })
    };
    let copies: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
    follow_through_rotations(&path, 20_000, writer, |k| {
        let _gap = file.lock().unwrap();
        let copy = dir.path().join(format!("app.log.{k}"));
        std::fs::copy(&path, &copy).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        copies.lock().unwrap().push(copy);
    })
    .await;
    assert_eq!(copies.lock().unwrap().len(), 3);
    // The live file holds only what came after the last truncation.
    let live = std::fs::read_to_string(&path).unwrap();
    assert!(!live.starts_with("line 0\n"), "the file was truncated");
}

/// A keeper with `check`, on a database of its own.
async fn start(check: Check) -> TestApp {
    spawn_app(Backend::Sqlite, TestConfig::new().check(check)).await
}

/// A `log` check `app` following `path`.
fn follow(path: &Path) -> Check {
    Check::new("app", "log").set("file", path.display().to_string())
}

fn append(path: &Path, text: &str) {
    open_append(path).write_all(text.as_bytes()).unwrap();
}

/// `n` JSON lines of which exactly `pct` in each hundred (spread evenly) are errors.
fn burst(n: usize, pct: usize) -> String {
    (0..n)
        .map(|i| {
            if (i + 1) * pct / 100 > i * pct / 100 {
                "{\"level\":\"error\",\"msg\":\"payment failed\"}\n"
            } else {
                "{\"level\":\"info\",\"msg\":\"request done\"}\n"
            }
        })
        .collect()
}

async fn open_incidents(app: &TestApp) -> Vec<Value> {
    let open = app.get_json("/api/v1/incidents?state=open").await;
    open.as_array().cloned().unwrap_or_default()
}

async fn wait_for_incident(app: &TestApp, severity: &str) -> Value {
    wait_for(&format!("an open {severity} incident"), WAIT, || async {
        open_incidents(app)
            .await
            .into_iter()
            .find(|i| i["check"] == "app" && i["severity"] == severity)
    })
    .await
}

async fn wait_resolved(app: &TestApp) {
    wait_until("no incident is open", WAIT, || async {
        open_incidents(app).await.is_empty()
    })
    .await;
}

/// The `metrics` of the check's stored samples, oldest first.
async fn sample_values(app: &TestApp) -> Vec<Value> {
    let samples = app.get_json("/api/v1/checks/app/samples").await;
    samples
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metrics"].clone())
        .collect()
}

#[tokio::test]
async fn error_bursts_open_medium_and_high_incidents_a_critical_line_a_critical_one_and_quiet_resolves()
 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, "");
    let app = start(follow(&path).set("window", "2s").interval("200ms")).await;
    let check = app.check("app").await;
    assert_eq!(check["kind"], "log");

    append(&path, &burst(1000, 3));
    let medium = wait_for_incident(&app, "medium").await;
    let message = medium["message"].as_str().unwrap();
    assert!(message.contains("% errors ("), "{message}");
    assert!(message.contains("error_rate_pct"), "{message}");
    wait_resolved(&app).await;
    let quiet = app.check("app").await;
    assert_eq!(quiet["color"], "green");

    append(&path, &burst(1000, 8));
    let high = wait_for_incident(&app, "high").await;
    assert!(
        high["message"].as_str().unwrap().contains("errors"),
        "{high}"
    );
    wait_resolved(&app).await;

    append(&path, "Out of memory: Killed process 1234 (app)\n");
    let critical = wait_for_incident(&app, "critical").await;
    let message = critical["message"].as_str().unwrap();
    assert!(
        message.starts_with("critical line ")
            && message.contains("ago: \"Out of memory: Killed process 1234 (app)\""),
        "{message}"
    );
    wait_resolved(&app).await;
    let after = app.check("app").await;
    assert_eq!(after["color"], "green");
    assert_eq!(after["message"], "no lines in 2s");
    app.stop().await;
}

#[tokio::test]
async fn a_critical_line_is_red_at_once_without_waiting_for_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, "");
    // Runs hourly: only the wake from the critical line can show it now.
    let app = start(follow(&path).interval("1h")).await;
    wait_until("the first run", WAIT, || async {
        app.check("app").await["message"] == "no lines in 5m"
    })
    .await;
    append(
        &path,
        "{\"level\":\"info\",\"msg\":\"fine\"}\nkernel: Out of memory: Killed process 1234 (app) total-vm:1048576kB\n",
    );
    let incident = wait_for_incident(&app, "critical").await;
    assert!(
        incident["message"]
            .as_str()
            .unwrap()
            .contains("Killed process 1234 (app)"),
        "{incident}"
    );
    let check = app.check("app").await;
    assert_eq!(check["color"], "red");
    app.stop().await;
}

#[tokio::test]
async fn from_start_false_reads_only_lines_written_after_keeper_started() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, &"ERROR old failure\n".repeat(10));
    let app = start(follow(&path).set("window", "1m").interval("100ms")).await;
    append(&path, &"INFO new request\n".repeat(4));
    wait_until("a sample counts the 4 new lines", WAIT, || async {
        sample_values(&app).await.iter().any(|m| m["lines"] == 4.0)
    })
    .await;
    for m in sample_values(&app).await {
        assert!(m["lines"].as_f64().unwrap() <= 4.0, "{m}");
        assert_eq!(m["errors"], 0.0, "{m}");
    }
    app.stop().await;
}

#[tokio::test]
async fn from_start_true_reads_the_lines_already_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, &"ERROR old failure\nINFO old request\n".repeat(5));
    let app = start(
        follow(&path)
            .set("from_start", true)
            .set("window", "1m")
            .interval("100ms"),
    )
    .await;
    let m = wait_for("a sample counting the 10 lines", WAIT, || async {
        sample_values(&app)
            .await
            .into_iter()
            .find(|m| m["lines"] == 10.0)
    })
    .await;
    assert_eq!(m["errors"], 5.0);
    assert_eq!(m["error_rate_pct"], 50.0);
    app.stop().await;
}

#[tokio::test]
async fn a_line_past_64_kib_is_cut_and_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    // The OOM lies past the first 64 KiB: cut off, not a critical line.
    let long = format!("{} Out of memory\n", "x".repeat(70 * 1024));
    append(&path, &format!("before\n{long}after\n"));
    let app = start(
        follow(&path)
            .set("from_start", true)
            .set("window", "1m")
            .interval("100ms"),
    )
    .await;
    let m = wait_for("a sample counting 3 lines", WAIT, || async {
        sample_values(&app)
            .await
            .into_iter()
            .find(|m| m["lines"] == 3.0)
    })
    .await;
    assert_eq!(m["criticals"], 0.0);
    let check = app.check("app").await;
    assert_eq!(check["color"], "green", "{check}");
    app.stop().await;
}

#[tokio::test]
async fn a_missing_file_is_yellow_until_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("later.log");
    let app = start(follow(&path).set("window", "1m").interval("100ms")).await;
    let waiting = format!(
        "{}: not found (waiting for it); no lines in 1m",
        path.display()
    );
    wait_until(
        "the check is yellow, waiting for the file",
        WAIT,
        || async {
            let check = app.check("app").await;
            check["color"] == "yellow" && check["message"] == waiting.as_str()
        },
    )
    .await;
    append(&path, "INFO first line\n");
    wait_until("the check is green with the line", WAIT, || async {
        let check = app.check("app").await;
        check["color"] == "green"
            && check["message"]
                .as_str()
                .unwrap_or_default()
                .contains("0% errors (0 in 1m)")
    })
    .await;
    app.stop().await;
}

#[test]
fn log_config_mistakes_are_refused_with_line_and_column() {
    let head = "\n[checks.app]\nkind = \"log\"\n";
    let two = config_error(&format!(
        "{head}file = \"/var/log/app.log\"\ningest = \"web\"\ntoken = \"0123456789abcdef\"\n"
    ));
    assert!(
        two.starts_with(
            "keeper.toml:5:10: checks.app.ingest: set only one source: file and ingest are both set"
        ),
        "{two}"
    );
    let none = config_error(&format!("{head}window = \"1m\"\n"));
    assert!(
        none.starts_with("keeper.toml:2:9: checks.app: a log check needs one source"),
        "{none}"
    );
    let regex = config_error(&format!(
        "{head}file = \"/a\"\nerror_pattern = \"(unclosed\"\n"
    ));
    assert!(regex.starts_with("keeper.toml:5:17: checks.app"), "{regex}");
    assert!(regex.contains("invalid regex \"(unclosed\""), "{regex}");
    let named = config_error(&format!(
        "{head}file = \"/a\"\npatterns = {{ slow = \"took [0-9\" }}\n"
    ));
    assert!(named.starts_with("keeper.toml:5:21: checks.app"), "{named}");
    assert!(named.contains("invalid regex"), "{named}");
    let typo = config_error(&format!("{head}file = \"/a\"\nfrom_begining = true\n"));
    assert!(
        typo.starts_with("keeper.toml:5:1: checks.app.from_begining:"),
        "{typo}"
    );
    assert!(typo.contains("unknown field"), "{typo}");
    let token = config_error(&format!("{head}ingest = \"web\"\ntoken = \"short\"\n"));
    assert!(
        token.starts_with("keeper.toml:5:9: checks.app.token: must be at least 16"),
        "{token}"
    );
}

#[test]
fn log_checks_alert_on_the_first_bad_sample_and_resolve_on_the_second_good_one() {
    let config = parse_config(
        "[checks.app]\nkind = \"log\"\nfile = \"/var/log/app.log\"\n\n[checks.web]\nkind = \"tcp\"\nhost = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let app = config.check("app").unwrap();
    assert_eq!(
        (app.failures_before_alert, app.successes_before_resolve),
        (1, 2)
    );
    assert_eq!(app.down_severity, keeper::core::Severity::Critical);
    let web = config.check("web").unwrap();
    assert_eq!(web.failures_before_alert, 2);
    let described = keeper::cli::describe(&config);
    assert!(
        described.contains("log    /var/log/app.log, window 5m"),
        "{described}"
    );
}

// ---- the other sources, end to end: ingest and Fly's logs API ----------

const SOURCE_TOKEN: &str = "ingest-t0ken-0123456789";

/// A `log` check `app` reading the source its keys name.
fn from_source() -> Check {
    Check::new("app", "log")
        .set("window", "2s")
        .interval("200ms")
}

#[tokio::test]
async fn lines_posted_to_ingest_feed_the_check_and_open_incidents() {
    let app = start(
        from_source()
            .set("ingest", "web")
            .set("token", SOURCE_TOKEN),
    )
    .await;
    let post = |body: Vec<u8>, gzip: bool| {
        let app = &app;
        async move {
            let mut req = app
                .http
                .post(format!("{}/ingest/web", app.base))
                .bearer_auth(SOURCE_TOKEN)
                .body(body);
            if gzip {
                req = req.header("Content-Encoding", "gzip");
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 202);
            resp.json::<Value>().await.unwrap()
        }
    };
    // 8 % errors as NDJSON, plus a garbage line counted and skipped.
    let mut body = burst(500, 8);
    body.push_str("{not json\n");
    let answer = post(body.into_bytes(), false).await;
    assert_eq!(answer["accepted"], 500, "{answer}");
    assert_eq!(answer["malformed"], 1, "{answer}");
    let high = wait_for_incident(&app, "high").await;
    assert!(
        high["message"].as_str().unwrap().contains("errors"),
        "{high}"
    );
    wait_until(
        "a stored sample counts the malformed line",
        WAIT,
        || async {
            sample_values(&app)
                .await
                .iter()
                .any(|v| v["malformed"] == 1.0)
        },
    )
    .await;
    wait_resolved(&app).await;

    // Fly's log shipper: one gzipped JSON array with an OOM line.
    let shipped = serde_json::json!([
        {"message": "GET /health 200", "log": {"level": "info"}},
        {"message": "Out of memory: Killed process 4242 (web)", "log": {"level": "error"}}
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(shipped.to_string().as_bytes()).unwrap();
    post(gz.finish().unwrap(), true).await;
    let critical = wait_for_incident(&app, "critical").await;
    assert!(
        critical["message"]
            .as_str()
            .unwrap()
            .contains("Killed process 4242"),
        "{critical}"
    );
    // The source's own token, not another's: 401.
    let wrong = app
        .http
        .post(format!("{}/ingest/web", app.base))
        .bearer_auth("ingest-t0ken-wrong-456789")
        .body("x\n")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn fly_logs_api_lines_feed_the_check() {
    use axum::routing::get;
    // A stand-in for Fly's logs API: one page with an OOM line, then empty pages.
    let served = Arc::new(AtomicBool::new(false));
    let router = axum::Router::new().route(
        "/api/v1/apps/{app}/logs",
        get({
            let served = served.clone();
            move || {
                let served = served.clone();
                async move {
                    let now = chrono::Utc::now().to_rfc3339();
                    let data = if served.swap(true, Ordering::SeqCst) {
                        serde_json::json!([])
                    } else {
                        serde_json::json!([
                            {"id": "1", "type": "log", "attributes": {"timestamp": now,
                              "message": "GET / 200", "level": "info"}},
                            {"id": "2", "type": "log", "attributes": {"timestamp": now,
                              "message": "Out of memory: Killed process 77 (app)", "level": "error"}}
                        ])
                    };
                    axum::Json(serde_json::json!({"data": data, "meta": {"next_token": "t1"}}))
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let app = start(
        from_source()
            .set("fly", "my-app")
            .set("token", "fo1_logs-t0ken-0123456789")
            .set("api_url", api),
    )
    .await;
    let critical = wait_for_incident(&app, "critical").await;
    assert!(
        critical["message"]
            .as_str()
            .unwrap()
            .contains("Killed process 77"),
        "{critical}"
    );
    assert!(served.load(Ordering::SeqCst));
    app.stop().await;
}
