//! Config reload (issue 13): `POST /api/v1/reload` on an in-process keeper
//! started from a real file, and SIGHUP on a keeper process. A refused file
//! changes nothing (its checks still run, the reload metric says 0, the
//! answer names file:line:column as `keeper check-config` does); a good one
//! adds, removes and keeps checks, and an open incident of a kept check
//! survives the reload.

use std::path::{Path, PathBuf};
use std::time::Duration;

use keeper::app::{self, Keeper};
use keeper::config::Config;

use crate::support::config::{Channel, Check, Route, TestConfig};
use crate::support::db::{TestDb, both_backends};
use crate::support::process::Process;
use crate::support::receiver::Receiver;
use crate::support::target::Target;
use crate::support::{wait_for, wait_until};

const WAIT: Duration = Duration::from_secs(20);

/// keeper started from a config file in a directory of its own, which the
/// test rewrites before asking for a reload.
struct FromFile {
    // Declared first: keeper stops before its database is dropped.
    keeper: Option<Keeper>,
    _db: TestDb,
    _dir: tempfile::TempDir,
    path: PathBuf,
    /// `[storage] url` of the file keeper started from.
    storage: String,
    base: String,
    http: reqwest::Client,
}

impl FromFile {
    /// keeper on `db`, unless `config` names a `[storage] url` of its own
    /// (which every rewrite keeps).
    async fn start(db: TestDb, config: &TestConfig) -> FromFile {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = write(dir.path(), &on(config, db.url()));
        let config = Config::load(&path).unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
        let storage = config.storage.url.clone();
        let keeper = app::start(config).await.expect("keeper starts");
        let base = format!("http://{}", keeper.addr());
        FromFile {
            storage,
            keeper: Some(keeper),
            path,
            base,
            _db: db,
            _dir: dir,
            http: reqwest::Client::new(),
        }
    }

    /// Replaces the file with `config` (on the same database).
    fn rewrite(&self, config: &TestConfig) {
        let dir = self.path.parent().expect("a directory");
        let storage = self.storage.clone();
        write(dir, &on(config, &storage));
    }

    /// Replaces the file with `text` as is.
    fn rewrite_text(&self, text: &str) {
        std::fs::write(&self.path, text).expect("writing the config");
    }

    /// `POST /api/v1/reload`: its status and JSON body.
    async fn reload(&self) -> (u16, serde_json::Value) {
        let resp = (self.http)
            .post(format!("{}/api/v1/reload", self.base))
            .header("content-type", "application/json")
            .send()
            .await
            .expect("POST /api/v1/reload");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("a JSON answer"))
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let resp = (self.http)
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    async fn check(&self, name: &str) -> Option<serde_json::Value> {
        let (status, body) = self.get(&format!("/api/v1/checks/{name}")).await;
        (status == 200).then(|| serde_json::from_str(&body).expect("JSON"))
    }

    async fn stop(mut self) {
        if let Some(k) = self.keeper.take() {
            k.shutdown().await.expect("keeper stops cleanly");
        }
    }
}

/// `config` on the database at `url`, unless it names one.
fn on(config: &TestConfig, url: &str) -> TestConfig {
    if config.has_storage() {
        config.clone()
    } else {
        config.clone().storage(url)
    }
}

/// Writes `config` as `dir/keeper.toml`, listening on a port of its own.
fn write(dir: &Path, config: &TestConfig) -> PathBuf {
    config.clone().listen("127.0.0.1:0").write_in(dir)
}

/// The value of the metric line starting with `name ` in `metrics`.
fn metric(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

fn http_check(name: &str, target: &Target) -> Check {
    Check::http(name, target.url(&format!("/{name}")))
        .interval("200ms")
        .timeout("2s")
}

/// Notifications `hook` got for `check` in `state`.
fn notified(hook: &Receiver, check: &str, state: &str) -> Vec<serde_json::Value> {
    hook.json_bodies()
        .into_iter()
        .filter(|n| n["check"] == check && n["state"] == state)
        .collect()
}

async fn wait_notified(hook: &Receiver, check: &str, state: &str) -> serde_json::Value {
    wait_for(&format!("{check} {state}"), WAIT, || async {
        notified(hook, check, state).into_iter().next()
    })
    .await
}

/// What `keeper check-config` prints to stderr for the file at `path`, and
/// whether it accepted it.
fn check_config(path: &Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(["check-config", "-c"])
        .arg(path)
        .output()
        .expect("running keeper check-config");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

both_backends!(
    async fn a_refused_file_keeps_the_running_config_and_says_where(db) {
        let target = Target::start().await;
        let config = TestConfig::new().check(http_check("web", &target));
        let app = FromFile::start(db, &config).await;
        let (_, metrics) = app.get("/metrics").await;
        assert_eq!(metric(&metrics, "keeper_config_last_reload_successful"), Some(1.0));
        let started = metric(&metrics, "keeper_config_last_reload_success_timestamp_seconds")
            .expect("the success timestamp is set at start");

        // An unknown key (the loader refuses it) and a channel that cannot be
        // built (a header name with a space: the build step refuses it).
        let text = format!(
            "{}\n[checks.web2]\nkind = \"http\"\nurl = \"{}\"\nbogus_key = 1\n\n[channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nheaders = {{ \"bad name\" = \"x\" }}\n",
            config.clone().storage(app._db.url()).listen("127.0.0.1:0").toml(),
            target.url("/web2")
        );
        app.rewrite_text(&text);
        let (status, body) = app.reload().await;
        assert_eq!(status, 400, "{body}");
        let errors = body["errors"].as_array().expect("errors").clone();
        assert!(!errors.is_empty(), "{body}");
        let (accepted, printed) = check_config(&app.path);
        assert!(!accepted, "check-config refuses the file reload refused:\n{printed}");
        for e in &errors {
            assert!(e["file"].as_str().unwrap().ends_with("keeper.toml"), "{e}");
            assert!(e["line"].as_u64().unwrap() > 0, "each error has its line: {e}");
            assert!(e["column"].as_u64().unwrap() > 0, "{e}");
            let text = e["text"].as_str().unwrap();
            assert!(printed.contains(text), "check-config prints {text:?}:\n{printed}");
        }
        assert!(errors.iter().any(|e| e["key"] == "checks.web2.bogus_key"), "{body}");

        let (_, metrics) = app.get("/metrics").await;
        assert_eq!(metric(&metrics, "keeper_config_last_reload_successful"), Some(0.0));
        assert_eq!(
            metric(&metrics, "keeper_config_last_reload_success_timestamp_seconds"),
            Some(started)
        );
        assert!(app.check("web2").await.is_none(), "nothing of the refused file runs");
        let seen = target.requests();
        wait_until("web still probed after the refused reload", WAIT, || async {
            target.requests() > seen + 2
        })
        .await;

        // The same file fixed: accepted by both.
        app.rewrite(&config.clone().check(http_check("web2", &target)));
        assert!(check_config(&app.path).0);
        let (status, body) = app.reload().await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["added"], serde_json::json!(["web2"]));
        let (_, metrics) = app.get("/metrics").await;
        assert_eq!(metric(&metrics, "keeper_config_last_reload_successful"), Some(1.0));
        app.stop().await;
    }
);

/// Checks `keep` and `gone` failing with incidents open, `moved` whose
/// target the reload changes; all paging `hook`.
fn before(target: &Target, hook: &Receiver) -> TestConfig {
    TestConfig::new()
        .defaults("failures_before_alert", 2)
        .defaults("successes_before_resolve", 2)
        .channel(Channel::webhook("hook", hook))
        .route(Route::to(&["hook"]))
        .check(http_check("keep", target))
        .check(http_check("gone", target))
        .check(http_check("moved", target))
}

both_backends!(
    async fn a_good_file_adds_removes_and_keeps_checks_and_open_incidents(db) {
        let target = Target::start().await;
        let other = Target::start().await;
        let hook = Receiver::start().await;
        target.set_status(500);
        let config = before(&target, &hook);
        let app = FromFile::start(db, &config).await;
        let kept_id = wait_notified(&hook, "keep", "opened").await["incident"].clone();
        let gone_id = wait_notified(&hook, "gone", "opened").await["incident"].clone();
        wait_notified(&hook, "moved", "opened").await;
        let kept_since = app.check("keep").await.expect("keep")["since"].clone();

        let after = TestConfig::new()
            .defaults("failures_before_alert", 2)
            .defaults("successes_before_resolve", 2)
            .channel(Channel::webhook("hook", &hook))
            .route(Route::to(&["hook"]))
            .check(http_check("added", &target))
            .check(http_check("keep", &target).set("labels", crate::support::config::table(&[("team", "web")])))
            .check(http_check("moved", &other));
        app.rewrite(&after);
        let (status, body) = app.reload().await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["added"], serde_json::json!(["added", "moved"]), "{body}");
        assert_eq!(body["removed"], serde_json::json!(["gone", "moved"]), "{body}");
        let kept: Vec<&str> = body["kept"].as_array().expect("kept").iter()
            .filter_map(|c| c.as_str())
            .filter(|c| !c.starts_with("keeper:"))
            .collect();
        assert_eq!(kept, ["keep"], "keeper's own checks aside: {body}");

        // The removed check's incident resolves as at start; the moved one's
        // too (its target changed: a new check by the same name).
        let resolved = wait_notified(&hook, "gone", "resolved").await;
        assert_eq!(resolved["incident"], gone_id);
        assert!(resolved["message"].as_str().unwrap().contains("no longer in the config"), "{resolved}");
        wait_notified(&hook, "moved", "resolved").await;
        assert!(app.check("gone").await.is_none());
        let keep = app.check("keep").await.expect("keep is kept");
        assert_eq!(keep["incident"], kept_id, "the open incident survives the reload");
        assert_eq!(keep["since"], kept_since, "its state too");
        assert_eq!(keep["labels"]["team"], "web", "with the new labels");
        wait_until("the added check is probed", WAIT, || async {
            app.check("added").await.is_some_and(|c| !c["last_run_at"].is_null())
        })
        .await;
        wait_until("moved probes its new target, green", WAIT, || async {
            app.check("moved").await.is_some_and(|c| c["color"] == "green" && c["incident"].is_null())
        })
        .await;
        let (_, metrics) = app.get("/metrics").await;
        assert!(metrics.contains("check=\"added\""), "{metrics}");
        assert!(!metrics.contains("check=\"gone\""), "{metrics}");

        // Enough failing runs since that a forgotten incident would reopen.
        let seen = target.requests();
        wait_until("more failing probes of keep", WAIT, || async { target.requests() > seen + 6 }).await;
        target.set_status(200);
        let resolved = wait_notified(&hook, "keep", "resolved").await;
        assert_eq!(resolved["incident"], kept_id, "the recovery resolves the same incident");
        assert_eq!(notified(&hook, "keep", "opened").len(), 1, "no second \"opened\" after a reload");
        app.stop().await;
    }
);

#[tokio::test]
async fn sighup_reloads_a_keeper_process_and_a_bad_file_changes_nothing() {
    crate::support::init();
    let target = Target::start().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("keeper.db").display()
    );
    let config = TestConfig::new()
        .storage(db)
        .check(http_check("web", &target));
    let path = write(dir.path(), &config);
    let mut keeper = Process::start(&path).await;
    let base = keeper.base().await;
    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let resp = http
                .get(format!("{base}{path}"))
                .send()
                .await
                .expect("keeper answers");
            (
                resp.status().as_u16(),
                resp.text().await.unwrap_or_default(),
            )
        }
    };

    write(
        dir.path(),
        &config.clone().check(http_check("web2", &target)),
    );
    keeper.signal("HUP");
    wait_until("web2 added by SIGHUP", WAIT, || async {
        get("/api/v1/checks/web2").await.0 == 200
    })
    .await;

    std::fs::write(&path, "[checks.web]\nkind = \"http\"\nurl = 12\n").expect("writing the config");
    keeper.signal("HUP");
    wait_until("the reload metric says the reload failed", WAIT, || async {
        metric(
            &get("/metrics").await.1,
            "keeper_config_last_reload_successful",
        ) == Some(0.0)
    })
    .await;
    assert_eq!(
        get("/api/v1/checks/web2").await.0,
        200,
        "the running config stays"
    );
    let seen = target.requests();
    wait_until("the running checks still run", WAIT, || async {
        target.requests() > seen + 2
    })
    .await;
    let (exit, log) = keeper.terminate(Duration::from_secs(15)).await;
    assert!(exit.success(), "{log}");
    let failed = log
        .lines()
        .find(|l| l.contains("config reload failed"))
        .unwrap_or_else(|| panic!("the failure is logged:\n{log}"));
    assert!(
        failed.contains("keeper.toml:3:7"),
        "the log names file:line:column: {failed}"
    );
}

/// One HTTP/1.1 request on `stream`, kept alive; the status line of its answer.
async fn keep_alive_get(stream: &mut tokio::net::TcpStream, path: &str) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let request = format!("GET {path} HTTP/1.1\r\nHost: keeper\r\nConnection: keep-alive\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).await.expect("status line");
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).await.expect("header");
        if header.trim().is_empty() {
            break;
        }
        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().expect("a length");
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.expect("body");
    status.trim().to_string()
}

#[tokio::test]
async fn a_reload_needs_the_token_and_keeps_open_connections_served() {
    crate::support::init();
    let target = Target::start().await;
    let config = TestConfig::new()
        .api_token("reload-token-0123456789abcdef")
        .check(http_check("web", &target));
    let app = FromFile::start(TestDb::sqlite(), &config).await;
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .expect("connected");
    assert_eq!(
        keep_alive_get(&mut stream, "/healthz").await,
        "HTTP/1.1 200 OK"
    );

    let (status, body) = app.reload().await;
    assert_eq!(status, 401, "a write: the token is needed: {body}");
    app.rewrite(&config.clone().check(http_check("web2", &target)));
    let resp = (app.http)
        .post(format!("{}/api/v1/reload", app.base))
        .header("content-type", "application/json")
        .bearer_auth("reload-token-0123456789abcdef")
        .send()
        .await
        .expect("POST /api/v1/reload");
    assert_eq!(resp.status().as_u16(), 200);

    // The connection opened before the reload is served by the new config.
    assert_eq!(
        keep_alive_get(&mut stream, "/api/v1/checks/web2").await,
        "HTTP/1.1 200 OK"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_reload_waits_while_incident_changes_wait_for_storage() {
    crate::support::init();
    let db = TestDb::postgres().await;
    let (proxy, url) = crate::support::proxy::Proxy::in_front_of(db.url()).await;
    let target = Target::start().await;
    let hook = Receiver::start().await;
    let config = TestConfig::new()
        .storage(url.as_str())
        .set("watchdog", "interval", "100ms")
        .set("watchdog", "timeout", "500ms")
        .page(&hook)
        .check(http_check("web", &target));
    let app = FromFile::start(db, &config).await;
    proxy.cut();
    wait_notified(&hook, "keeper:storage", "opened").await;

    app.rewrite(&config.clone().check(http_check("web2", &target)));
    let (status, body) = app.reload().await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("storage is away"),
        "{body}"
    );
    assert!(app.check("web2").await.is_none(), "nothing changed");

    proxy.restore();
    wait_until(
        "the changes made while away are written down",
        WAIT,
        || async {
            metric(
                &app.get("/metrics").await.1,
                "keeper_incident_changes_unwritten",
            ) == Some(0.0)
        },
    )
    .await;
    let (status, body) = app.reload().await;
    assert_eq!(status, 200, "{body}");
    assert!(app.check("web2").await.is_some());
    app.stop().await;
}
