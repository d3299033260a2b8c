//! The API held to its description (src/http/openapi.json, served at
//! `GET /api/v1/openapi.json`): every `/api/v1` route of the router is in the
//! document and every documented operation reaches a handler, so the two
//! cannot drift; and schemathesis, run against a live keeper on each backend
//! with every check, finds no 5xx, no response off its schema, no bad body
//! accepted. Its settings: tests/schemathesis.toml. schemathesis comes from
//! PyPI (`scripts/test` installs it); without it the test fails, never skips.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::app::{TestApp, spawn_app};
use crate::support::config::{Check, TestConfig};
use crate::support::db::{Backend, both_backends};
use crate::support::target::Target;
use crate::support::wait_for;

/// The API token the live keeper is given and schemathesis sends.
const TOKEN: &str = "schemathesis-token-0123456789";
/// Cases per operation and phase: enough to find what it finds in a few
/// seconds per operation; the whole run takes about a minute per backend.
const MAX_EXAMPLES: &str = "40";
/// Fixed, so a failure replays; explore with others by hand (docs/reliability.md).
const SEED: &str = "1";

/// The methods axum's routing and OpenAPI's path items share.
const METHODS: &[&str] = &["get", "post", "put", "delete", "patch"];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn document() -> serde_json::Value {
    serde_json::from_str(&read(&repo("src/http/openapi.json")))
        .expect("src/http/openapi.json is JSON")
}

/// The documented operations, as ("GET", "/api/v1/…").
fn documented(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("the document has paths");
    let mut ops = BTreeSet::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is an object");
        for method in item.keys().filter(|k| METHODS.contains(&k.as_str())) {
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

/// The text of the call whose opening parenthesis is at `open`, without
/// its parentheses (string literals in it hold no parentheses in these files).
fn call_at(source: &str, open: usize) -> &str {
    let mut depth = 0;
    for (i, c) in source[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &source[open + 1..open + i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses after byte {open}")
}

/// Each `.route("path", get(…).post(…))` in `code`, as (METHOD, path).
fn routes_in(code: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices(".route(") {
        let args = call_at(code, at + ".route".len());
        let path = args.split('"').nth(1).expect("a route's path literal");
        let handlers = &args[args.find(',').expect("a route's handlers")..];
        for method in METHODS {
            let called = handlers.match_indices(&format!("{method}(")).any(|(i, _)| {
                i == 0 || !handlers[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
            });
            if called {
                found.push((method.to_uppercase(), path.to_string()));
            }
        }
    }
    found
}

/// The router's `/api/v1` operations, read from the source: the
/// `.nest("/api/v1", …)` in src/http/mod.rs, its own routes and those of
/// each `module::router()` merged into it.
fn routed() -> BTreeSet<(String, String)> {
    let http = repo("src/http");
    let router = read(&http.join("mod.rs"));
    let at = router
        .find(".nest(\n            \"/api/v1\"")
        .or_else(|| router.find(".nest(\"/api/v1\""))
        .expect("src/http/mod.rs nests the API under /api/v1");
    let nest = call_at(&router, at + ".nest".len());
    let mut code = nest.to_string();
    for (i, _) in nest.match_indices("::router()") {
        let module = nest[..i]
            .rsplit(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .expect("a module name");
        let file = [
            http.join(format!("{module}.rs")),
            http.join(module).join("mod.rs"),
        ]
        .into_iter()
        .find(|f| f.exists())
        .unwrap_or_else(|| panic!("no file for module {module} in src/http"));
        code.push_str(&read(&file));
    }
    routes_in(&code)
        .into_iter()
        .map(|(method, path)| (method, format!("/api/v1{path}")))
        .collect()
}

#[test]
fn route_scanner_reads_methods_and_paths() {
    let code = r#"Router::new().route("/a/{id}", get(one).post(make)).route("/b", delete(end))
        .route("/c", routing::get(forget_me))"#;
    assert_eq!(
        routes_in(code),
        [
            ("GET".to_string(), "/a/{id}".to_string()),
            ("POST".into(), "/a/{id}".into()),
            ("DELETE".into(), "/b".into()),
            ("GET".into(), "/c".into()),
        ]
    );
}

#[test]
fn every_api_route_is_documented_and_every_documented_operation_is_routed() {
    let doc = document();
    let (documented, routed) = (documented(&doc), routed());
    assert!(
        routed.len() >= 12,
        "the scan found too few routes: {routed:?}"
    );
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes missing from src/http/openapi.json: {undocumented:?}\n\
         documented operations the router does not have: {unrouted:?}"
    );
}

/// A documented path with its parameters filled in: a check's name, an id.
fn concrete(path: &str) -> String {
    path.replace("{name}", "web").replace("{id}", "1")
}

/// Each documented operation reaches a handler (not the 404 or 405
/// fallbacks), and the document served is the file shipped.
#[tokio::test]
async fn every_documented_operation_answers_from_its_handler() {
    let config = TestConfig::new()
        .api_token(TOKEN)
        .check(Check::heartbeat("web").set("period", "1h"));
    let app = spawn_app(Backend::Sqlite, config).await;
    let served = app.get_text("/api/v1/openapi.json").await;
    assert_eq!(served, read(&repo("src/http/openapi.json")));
    for (method, path) in documented(&document()) {
        let url = format!("{}{}", app.base, concrete(&path));
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let resp = app
            .http
            .request(method.clone(), &url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        let body = resp.text().await.expect("a body");
        assert_ne!(status, 405, "{method} {path} is not routed: {body}");
        assert!(
            !body.contains("no such path"),
            "{method} {path} is not routed: {status} {body}"
        );
    }
}

/// A failing http check (an open incident to read, ack and report on) and
/// a heartbeat (a ping_url).
fn live_config(target: &Target) -> TestConfig {
    TestConfig::new()
        .check(
            Check::http("web", target.url("/health"))
                .interval("250ms")
                .set("labels", crate::support::config::table(&[("app", "web")])),
        )
        .check(Check::heartbeat("nightly").set("period", "1h"))
}

/// Runs schemathesis against `app` (sending `token` when given), at most
/// `examples` cases per operation and phase, panicking with its report on any failure.
async fn schemathesis(app: &TestApp, token: Option<&str>, examples: &str) {
    let started = Instant::now();
    // Its reports and Hypothesis' example database stay in a directory of this run's own.
    let dir = tempfile::tempdir().expect("a temp dir for schemathesis");
    let mut command = tokio::process::Command::new("schemathesis");
    command
        .arg("--config-file")
        .arg(repo("tests/schemathesis.toml"))
        .arg("--no-color")
        .arg("run")
        .arg(format!("{}/api/v1/openapi.json", app.base))
        .args(["--url", &app.base, "--checks", "all"])
        .args(["--max-examples", examples, "--seed", SEED])
        .args([
            "--request-timeout",
            "10",
            "--suppress-health-check",
            "too_slow",
        ])
        .current_dir(dir.path())
        .kill_on_drop(true);
    if let Some(token) = token {
        command.args(["--header", &format!("Authorization: Bearer {token}")]);
    }
    let out = command
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("running schemathesis ({e}): install it with `pip install schemathesis` (scripts/test does)")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found problems ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // The figures docs/reliability.md quotes.
    let cases = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Test cases:"))
        .nth(1)
        .unwrap_or("(no summary)");
    assert!(
        cases.contains("generated"),
        "no test-case summary:\n{stdout}"
    );
    eprintln!(
        "schemathesis on {}: {} in {:.0?}",
        app.db.url(),
        cases.trim(),
        started.elapsed()
    );
}

both_backends! {
    async fn schemathesis_finds_no_5xx_no_off_schema_answer_and_no_accepted_bad_body(db) {
        let target = Target::start().await;
        target.set_status(503);
        let app = TestApp::start_on(db, live_config(&target).api_token(TOKEN)).await;
        wait_for("an open incident", Duration::from_secs(20), || async {
            app.check("web").await["incident"].as_i64()
        })
        .await;
        schemathesis(&app, Some(TOKEN), MAX_EXAMPLES).await;
    }
}

/// Without `server.api_token` (on loopback, where writes are open), the
/// document served says no operation needs a token, and keeper holds to
/// that too. Fewer cases: the handlers are the same, only the auth differs.
#[tokio::test]
async fn schemathesis_holds_a_keeper_without_a_token_to_the_document_it_serves() {
    let target = Target::start().await;
    target.set_status(503);
    let app = spawn_app(Backend::Sqlite, live_config(&target)).await;
    let doc = app.get_json("/api/v1/openapi.json").await;
    assert!(!doc["paths"].to_string().contains("bearer"), "{doc}");
    wait_for("an open incident", Duration::from_secs(20), || async {
        app.check("web").await["incident"].as_i64()
    })
    .await;
    schemathesis(&app, None, "15").await;
}

both_backends! {
    /// Found while describing the API: an `app` filter with a NUL reached
    /// PostgreSQL, which refuses it, and the client got a 503. No app can
    /// have a control character, so none is listed.
    async fn deployments_listed_by_an_app_no_deployment_can_have_are_none(db) {
        let app = TestApp::start_on(db, TestConfig::new().api_token(TOKEN)).await;
        let recorded = app
            .http
            .post(format!("{}/api/v1/deployments", app.base))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"app": "web", "version": "v1"}))
            .send()
            .await
            .expect("an answer");
        assert_eq!(recorded.status().as_u16(), 201);
        for filter in ["a%00b", "%00", "we%0Ab", "web%C2%84"] {
            let listed = app.get_json(&format!("/api/v1/deployments?app={filter}")).await;
            assert_eq!(listed, serde_json::json!([]), "{filter}");
        }
        let listed = app.get_json("/api/v1/deployments?app=%20web%20").await;
        assert_eq!(listed[0]["version"], "v1", "{listed}");
    }
}

/// Found by schemathesis: a DELETE carries no body, so it needs no
/// Content-Type (it cannot be sent cross-site without a CORS preflight
/// anyway); it was refused with 415 before its token was even looked at.
#[tokio::test]
async fn a_delete_without_a_content_type_reaches_the_token_check_and_the_handler() {
    let app = spawn_app(Backend::Sqlite, TestConfig::new().api_token(TOKEN)).await;
    let delete = || app.http.delete(format!("{}/api/v1/silences/7", app.base));
    let resp = delete().send().await.expect("an answer");
    assert_eq!(resp.status().as_u16(), 401, "no token");
    let resp = delete().bearer_auth(TOKEN).send().await.expect("an answer");
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.expect("a JSON body");
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "no silence 7");
    // Another type is still refused, and a POST still needs JSON.
    let resp = delete()
        .bearer_auth(TOKEN)
        .header("content-type", "text/plain")
        .send()
        .await
        .expect("an answer");
    assert_eq!(resp.status().as_u16(), 415);
    let resp = app
        .http
        .post(format!("{}/api/v1/incidents/1/ack", app.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("an answer");
    assert_eq!(resp.status().as_u16(), 415);
}
