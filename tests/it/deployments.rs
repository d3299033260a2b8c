//! Deployments (issue 11 point 3): recorded over the API (write token, JSON,
//! clear 4xx for bad bodies) or `keeper deploy`, listed newest first; an
//! incident soon after one pages at the first failure and names it.

use std::time::Duration;

use crate::support::app::{TestApp, spawn_app};
use crate::support::config::{Check, TestConfig, table};
use crate::support::db::{Backend, both_backends};
use crate::support::receiver::Receiver;
use crate::support::target::Target;
use crate::support::{wait_for, wait_until};

const TOKEN: &str = "s3cret-api-token-0001";

/// `POST /api/v1/deployments` with `body`, the token when given and a JSON
/// content type unless `content_type` says otherwise: status and JSON answer.
async fn post(
    app: &TestApp,
    body: &str,
    token: Option<&str>,
    content_type: &str,
) -> (u16, serde_json::Value) {
    let mut req = app
        .http
        .post(format!("{}/api/v1/deployments", app.base))
        .header("content-type", content_type)
        .body(body.to_string());
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("POST /api/v1/deployments");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON answer"))
}

async fn deploy(app: &TestApp, body: serde_json::Value) -> serde_json::Value {
    let (status, answer) = post(app, &body.to_string(), Some(TOKEN), "application/json").await;
    assert_eq!(status, 201, "{body}: {answer}");
    answer
}

fn versions(list: &serde_json::Value) -> Vec<&str> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|d| d["version"].as_str().expect("version"))
        .collect()
}

both_backends!(
    async fn deployments_are_recorded_with_the_token_and_listed_newest_first(db) {
        let app = TestApp::start_on(db, TestConfig::new().api_token(TOKEN)).await;
        let body = r#"{"app": "web", "version": "v41"}"#;

        let (status, answer) = post(&app, body, None, "application/json").await;
        assert_eq!(status, 401, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("Bearer"), "{answer}");
        let (status, _) = post(&app, body, Some("wrong-token"), "application/json").await;
        assert_eq!(status, 401);
        let (status, answer) = post(&app, body, Some(TOKEN), "text/plain").await;
        assert_eq!(status, 415, "{answer}");
        assert!(app.get_json("/api/v1/deployments").await.as_array().unwrap().is_empty());

        let rfc3339 = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let long_ago = rfc3339(chrono::Utc::now() - chrono::Duration::days(45));
        let v41 = deploy(&app, serde_json::json!({"app": "web", "version": "v41", "at": long_ago})).await;
        assert!(v41["id"].as_i64().unwrap() > 0, "{v41}");
        assert_eq!(v41["at"], long_ago);
        assert_eq!((v41["description"].as_str(), v41["by"].as_str()), (Some(""), Some("")));
        let since = rfc3339(chrono::Utc::now() - chrono::Duration::days(60));
        deploy(&app, serde_json::json!({"app": "api", "version": "v7", "by": "carol"})).await;
        let v42 = deploy(&app, serde_json::json!({
            "app": "web", "version": "v42", "description": "fix the login", "by": "ci"
        })).await;
        assert_eq!(v42["app"], "web");
        assert_eq!(v42["description"], "fix the login");
        assert_eq!(v42["by"], "ci");
        let at = chrono::DateTime::parse_from_rfc3339(v42["at"].as_str().unwrap()).expect("at");
        assert!((chrono::Utc::now() - at.to_utc()).num_seconds().abs() < 60, "at defaults to now: {v42}");

        let all = app.get_json(&format!("/api/v1/deployments?since={since}")).await;
        assert_eq!(versions(&all), ["v42", "v7", "v41"]);
        let web = app.get_json(&format!("/api/v1/deployments?app=web&since={since}")).await;
        assert_eq!(versions(&web), ["v42", "v41"]);
        // Without since: the last 30 days only.
        let recent = app.get_json("/api/v1/deployments?app=web").await;
        assert_eq!(versions(&recent), ["v42"]);
        let newest = app.get_json(&format!("/api/v1/deployments?since={since}&limit=1")).await;
        assert_eq!(versions(&newest), ["v42"]);
        assert!(app.get_json("/api/v1/deployments?app=nope").await.as_array().unwrap().is_empty());

        let (status, answer) = app.get_status("/api/v1/deployments?bogus=1").await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer.contains("bogus"), "{answer}");
        let (status, answer) = app.get_status("/api/v1/deployments?since=yesterday").await;
        assert_eq!(status, 400, "{answer}");
    }
);

both_backends!(
    async fn bad_deployments_are_refused_with_the_reason(db) {
        let app = TestApp::start_on(db, TestConfig::new().api_token(TOKEN)).await;
        let long = "x".repeat(201);
        let cases = [
            (r#"{"app": "", "version": "v1"}"#.to_string(), "app: must not be empty"),
            (r#"{"app": "web"}"#.to_string(), "missing field `version`"),
            (r#"{"app": "web", "version": "v1", "env": "prod"}"#.to_string(), "unknown field `env`"),
            (format!(r#"{{"app": "web", "version": "{long}"}}"#), "version: 201 bytes"),
            (r#"{"app": "web", "version": "v1", "at": "2099-01-01T00:00:00Z"}"#.to_string(), "ahead"),
            ("not json".to_string(), "invalid JSON body"),
        ];
        for (body, want) in cases {
            let (status, answer) = post(&app, &body, Some(TOKEN), "application/json").await;
            assert_eq!(status, 400, "{body}: {answer}");
            let error = answer["error"].as_str().unwrap_or_default();
            assert!(error.contains(want), "{body}: {answer}");
        }
        let (status, answer) = app.get_status("/api/v1/deployments").await;
        assert_eq!((status, answer.as_str()), (200, "[]"), "nothing recorded");
    }
);

#[tokio::test]
async fn keeper_deploy_records_through_the_api_with_the_token_from_the_environment() {
    let app = spawn_app(Backend::Sqlite, TestConfig::new().api_token(TOKEN)).await;
    let run = |token: &'static str| {
        let base = app.base.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_keeper"))
                .args([
                    "deploy",
                    "web",
                    "v42",
                    "--description",
                    "fix login",
                    "--by",
                    "ci",
                ])
                .args(["--url", &base])
                .env("KEEPER_API_TOKEN", token)
                .output()
                .await
                .expect("keeper deploy runs")
        }
    };
    let refused = run("wrong-token-00000000").await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("invalid API token"),
        "{stderr}"
    );

    let out = run(TOKEN).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("recorded: web v42 at "), "{stdout}");
    let list = app.get_json("/api/v1/deployments?app=web").await;
    assert_eq!(versions(&list), ["v42"]);
    assert_eq!(list[0]["by"], "ci");
    assert_eq!(list[0]["description"], "fix login");
}

both_backends!(
    async fn an_incident_soon_after_a_deployment_names_it_and_the_rollback(db) {
        let target = Target::start().await;
        let hook = Receiver::start().await;
        let config = TestConfig::new()
            .api_token(TOKEN)
            .check(
                Check::http("web", target.url("/health"))
                    .interval("200ms")
                    .set("labels", table(&[("app", "web")]))
                    .set("failures_before_alert", 3),
            )
            .set("apps.web", "rollback_hint", "./deploy.sh rollback web")
            .page(&hook);
        let app = TestApp::start_on(db, config).await;
        wait_until("web is green", Duration::from_secs(20), || async {
            app.check("web").await["color"] == "green"
        })
        .await;
        deploy(&app, serde_json::json!({"app": "web", "version": "v42", "by": "ci"})).await;
        target.set_status(503);

        let opened = wait_for("the opened notification", Duration::from_secs(20), || async {
            hook.json_bodies().into_iter().find(|n| n["state"] == "opened")
        })
        .await;
        let message = opened["message"].as_str().expect("a message");
        let mut lines = message.lines();
        assert!(lines.next().unwrap().contains("503"), "{message}");
        let note = lines.next().expect("the deploy note");
        assert!(note.starts_with("started ") && note.ends_with(" after deploy v42 of web (by ci)"), "{message}");
        assert_eq!(lines.next(), Some("to roll back: ./deploy.sh rollback web"), "{message}");

        // It opened at the first failure, not the configured third: one red
        // sample up to its start (read once a later sample is stored).
        let time = |v: &serde_json::Value| {
            chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp")).expect("RFC 3339")
        };
        let started_at = time(&opened["started_at"]);
        let samples = wait_for("a sample after the opening", Duration::from_secs(20), || async {
            let samples = app.get_json("/api/v1/checks/web/samples").await;
            let list = samples.as_array().expect("a JSON array").clone();
            list.iter().any(|s| time(&s["at"]) > started_at).then_some(list)
        })
        .await;
        let red_before = samples
            .iter()
            .filter(|s| s["color"] == "red" && time(&s["at"]) <= started_at)
            .count();
        assert_eq!(red_before, 1, "{started_at}: {samples:?}");
        let incidents = app.get_json("/api/v1/incidents?state=open").await;
        assert_eq!(incidents[0]["message"], message, "the incident says so too");
    }
);

/// A started machine in the Machines API's documented shape
/// (external-apis.md §1), running release `release` of image tag `tag`.
fn fly_machine(id: &str, release: u32, tag: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id, "name": "snowy-leaf-4201", "state": "started", "region": "fra",
        "instance_id": format!("01GH8YVWQ3ZJK96N1X2D9M{release}"),
        "image_ref": {"registry": "registry.fly.io", "repository": "web-prod", "tag": tag,
                      "digest": "sha256:9daa", "labels": {"fly.version": "v0.0.32"}},
        "config": {
            "image": format!("registry.fly.io/web-prod:{tag}"),
            "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 1024},
            "metadata": {"fly_platform_version": "v2", "fly_process_group": "app",
                         "fly_release_version": release.to_string()},
            "restart": {"policy": "always"}, "services": []
        },
        "events": [], "checks": [], "host_status": "ok"
    })
}

/// The Machines API's answer: machines 148e127a… and 3d8d9020… running
/// these (release, image tag).
fn fly_list(releases: [(u32, &str); 2]) -> String {
    let ids = ["148e127a0b4589", "3d8d9020a11111"];
    let machines: Vec<serde_json::Value> = (ids.iter().zip(releases))
        .map(|(id, (release, tag))| fly_machine(id, release, tag))
        .collect();
    serde_json::Value::from(machines).to_string()
}

/// Waits until the stand-in has answered three more runs of the fly check.
async fn three_more_runs(fly: &Target) {
    let runs = fly.requests();
    wait_until(
        "three more runs of the fly check",
        Duration::from_secs(20),
        || async { fly.requests() >= runs + 3 },
    )
    .await;
}

both_backends!(
    async fn the_fly_check_records_a_new_release_once_and_incidents_name_it(db) {
        let fly = Target::start().await;
        fly.set_body(fly_list([(42, "deployment-01"), (42, "deployment-01")]));
        let web = Target::start().await;
        let hook = Receiver::start().await;
        let config = TestConfig::new()
            .check(
                Check::new("web-fly", "fly")
                    .set("app", "web-prod")
                    .set("token", "fo1_s3cret-token-value")
                    .set("api_url", fly.url(""))
                    .set("labels", table(&[("app", "web")]))
                    .interval("200ms"),
            )
            .check(
                Check::http("web", web.url("/health"))
                    .interval("200ms")
                    .set("labels", table(&[("app", "web")]))
                    .set("failures_before_alert", 3),
            )
            .page(&hook);
        let app = TestApp::start_on(db, config).await;
        let deployments = || async {
            app.get_json("/api/v1/deployments").await.as_array().unwrap().clone()
        };
        three_more_runs(&fly).await;
        assert!(deployments().await.is_empty(), "nothing on the first runs");

        // A rolling deploy: one machine on release 43, then both.
        fly.set_body(fly_list([(43, "deployment-02"), (42, "deployment-01")]));
        let recorded = wait_for("the deployment the fly check saw", Duration::from_secs(20), || async {
            deployments().await.pop()
        })
        .await;
        assert_eq!(recorded["app"], "web", "the check's app label");
        assert_eq!(recorded["version"], "v43");
        assert_eq!(recorded["by"], "fly");
        assert_eq!(
            recorded["description"],
            "seen by the fly check: image registry.fly.io/web-prod:deployment-02 on 148e127a"
        );
        fly.set_body(fly_list([(43, "deployment-02"), (43, "deployment-02")]));
        three_more_runs(&fly).await;
        assert_eq!(deployments().await.len(), 1, "release 43 once");

        // The app's checks are watched: a failure pages at once, with Fly's rollback.
        web.set_status(503);
        let opened = wait_for("the opened notification", Duration::from_secs(20), || async {
            hook.json_bodies().into_iter().find(|n| n["state"] == "opened")
        })
        .await;
        let message = opened["message"].as_str().unwrap();
        assert_eq!(opened["check"], "web");
        assert!(message.contains(" after deploy v43 of web (by fly)\n"), "{message}");
        let hint = "\nto roll back: flyctl releases rollback --app web-prod";
        assert!(message.ends_with(hint), "{message}");
    }
);

both_backends!(
    async fn a_p95_regression_after_the_watch_opens_an_incident_naming_the_deploy(db) {
        let target = Target::start().await;
        let hook = Receiver::start().await;
        let config = TestConfig::new()
            .check(
                Check::http("web", target.url("/health"))
                    .interval("100ms")
                    .set("labels", table(&[("app", "web")])),
            )
            .set("apps.web", "deploy_watch", "4s")
            .set("apps.web", "rollback_hint", "./deploy.sh rollback web")
            .page(&hook);
        let app = TestApp::start_on(db, config).await;
        wait_until("ten fast samples stored", Duration::from_secs(20), || async {
            app.get_json("/api/v1/checks/web/samples").await.as_array().unwrap().len() >= 10
        })
        .await;
        deploy(&app, serde_json::json!({"app": "web", "version": "v42", "by": "ci"})).await;
        // Slower, but green sample by sample (latency_ms is yellow from 500 ms).
        target.set_delay(Duration::from_millis(300));

        let opened = wait_for("the opened notification", Duration::from_secs(30), || async {
            hook.json_bodies().into_iter().find(|n| n["state"] == "opened")
        })
        .await;
        let message = opened["message"].as_str().unwrap();
        assert!(message.starts_with("p95 latency rose to "), "{message}");
        assert!(message.contains(" ms after deploy v42 of web (by ci), from "), "{message}");
        assert!(message.ends_with(" ms in the hour before\nto roll back: ./deploy.sh rollback web"), "{message}");
        assert_eq!(opened["severity"], "high", "{opened}");
        assert!(hook.json_bodies().iter().all(|n| n["state"] == "opened"), "opened once");
        let samples = app.get_json("/api/v1/checks/web/samples").await;
        assert!(samples.as_array().unwrap().iter().all(|s| s["color"] == "green"), "no sample was bad alone");
    }
);
