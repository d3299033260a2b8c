//! Alerting people can trust: reminders per response window until someone
//! acknowledges (API or CLI), then none; incidents listed with their timelines,
//! MTTA and MTTR; write endpoints behind the API token.

use std::time::Duration;

use crate::support::app::TestApp;
use crate::support::db::both_backends;
use crate::support::receiver::Receiver;
use crate::support::target::Target;
use crate::support::{wait_for, wait_until};

const TOKEN: &str = "s3cret-token";

fn config(db_url: &str, target: &Target, hook: &Receiver) -> String {
    format!(
        r#"
[server]
api_token = "{TOKEN}"

[storage]
url = "{db_url}"

[severities]
critical = {{ repeat = "1s" }}

[checks.web]
kind = "http"
url = "{target}"
interval = "250ms"

[channels.hook]
kind = "webhook"
url = "{hook}"

[[routes]]
channels = ["hook"]
"#,
        target = target.url("/health"),
        hook = hook.url(),
    )
}

fn with_state(hook: &Receiver, state: &str) -> Vec<serde_json::Value> {
    hook.json_bodies()
        .into_iter()
        .filter(|n| n["state"] == state)
        .collect()
}

async fn post_ack(
    app: &TestApp,
    id: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut req = app
        .http
        .post(format!("{}/api/v1/incidents/{id}/ack", app.base))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("POST ack");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON answer"))
}

both_backends!(
    async fn unacknowledged_incident_repeats_until_acknowledged_then_never(db) {
        let target = Target::start().await;
        target.set_status(503);
        let hook = Receiver::start().await;
        let app = TestApp::start(&config(db.url(), &target, &hook)).await;

        let opened = wait_for("an opened notification", Duration::from_secs(20), || async {
            with_state(&hook, "opened").pop()
        })
        .await;
        let id = opened["incident"].as_i64().expect("incident id");
        let reminders = wait_for("two reminders", Duration::from_secs(20), || async {
            let r = with_state(&hook, "reminder");
            (r.len() >= 2).then_some(r)
        })
        .await;
        assert!(reminders.iter().all(|r| r["incident"] == id && r["severity"] == "critical"));

        // Write endpoints want the token.
        let (status, body) = post_ack(&app, &id.to_string(), None, "").await;
        assert_eq!(status, 401, "{body}");
        assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
        let (status, _) = post_ack(&app, &id.to_string(), Some("wrong"), "").await;
        assert_eq!(status, 401);

        let (status, acked) = post_ack(&app, &id.to_string(), Some(TOKEN), r#"{"by": "alice"}"#).await;
        assert_eq!(status, 200, "{acked}");
        assert_eq!(acked["id"], id);
        assert_eq!(acked["state"], "open");
        assert!(acked["acknowledged_at"].is_string(), "{acked}");
        assert!(acked["mtta_s"].as_i64().is_some_and(|s| s >= 0), "{acked}");
        let kinds: Vec<&str> = acked["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds.first(), Some(&"opened"));
        assert_eq!(kinds.last(), Some(&"acknowledged"));
        assert!(kinds.contains(&"reminder"), "{kinds:?}");
        assert_eq!(acked["events"].as_array().unwrap().last().unwrap()["detail"], "by alice");
        wait_until("the acknowledged notification", Duration::from_secs(10), || async {
            with_state(&hook, "acknowledged").len() == 1
        })
        .await;

        // Acknowledging again answers the incident and notifies no one.
        let (status, _) = post_ack(&app, &id.to_string(), Some(TOKEN), "").await;
        assert_eq!(status, 200);
        let reminders_at_ack = with_state(&hook, "reminder").len();
        // Three response windows pass (the target sees the probes go by) with no reminder.
        let seen = target.requests();
        wait_until("twelve more probes (3 s)", Duration::from_secs(30), || async {
            target.requests() >= seen + 12
        })
        .await;
        assert_eq!(with_state(&hook, "reminder").len(), reminders_at_ack, "no reminder after ack");
        assert_eq!(with_state(&hook, "acknowledged").len(), 1, "acknowledged once");

        target.set_status(200);
        wait_until("the resolved notification", Duration::from_secs(20), || async {
            with_state(&hook, "resolved").len() == 1
        })
        .await;
        let resolved = app.get_json("/api/v1/incidents?state=resolved").await;
        let resolved = resolved.as_array().unwrap();
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0]["id"], id);
        assert_eq!(resolved[0]["state"], "resolved");
        assert!(resolved[0]["mttr_s"].as_i64().is_some(), "{}", resolved[0]);
        assert_eq!(resolved[0]["events"].as_array().unwrap().last().unwrap()["kind"], "resolved");
        assert!(app.get_json("/api/v1/incidents").await.as_array().unwrap().is_empty(), "none open");
        assert_eq!(app.get_json("/api/v1/incidents?state=all").await.as_array().unwrap().len(), 1);

        // A resolved incident cannot be acknowledged any more.
        let (status, body) = post_ack(&app, &id.to_string(), Some(TOKEN), "").await;
        assert_eq!(status, 409, "{body}");
        app.stop().await;
    }
);

#[tokio::test]
async fn bad_incident_requests_get_a_4xx_with_a_json_reason() {
    let db = crate::support::db::TestDb::sqlite();
    let target = Target::start().await;
    let hook = Receiver::start().await;
    let app = TestApp::start(&config(db.url(), &target, &hook)).await;
    let (status, body) = post_ack(&app, "9999", Some(TOKEN), "").await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (404, "no incident 9999")
    );
    let (status, body) = post_ack(&app, "abc", Some(TOKEN), "").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post_ack(&app, "1", Some(TOKEN), "{not json").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("invalid JSON"),
        "{body}"
    );
    let (status, body) = post_ack(&app, "1", Some(TOKEN), r#"{"who": "bob"}"#).await;
    assert_eq!(status, 400, "unknown fields are refused: {body}");
    let resp = app
        .http
        .get(format!("{}/api/v1/incidents?state=bogus", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("open, resolved or all"),
        "{body}"
    );
    let resp = app
        .http
        .get(format!("{}/api/v1/incidents/1/ack", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let body: serde_json::Value = resp.json().await.expect("a JSON reason");
    assert!(body["error"].is_string(), "{body}");
    let resp = app
        .http
        .post(format!("{}/api/v1/incidents/1/ack", app.base))
        .bearer_auth(TOKEN)
        .body(vec![b'x'; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413, "bodies are size-limited");
    let body: serde_json::Value = resp.json().await.expect("a JSON reason");
    assert!(body["error"].is_string(), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn keeper_ack_on_the_command_line_acknowledges() {
    let db = crate::support::db::TestDb::sqlite();
    let target = Target::start().await;
    target.set_status(500);
    let hook = Receiver::start().await;
    let app = TestApp::start(&config(db.url(), &target, &hook)).await;
    let id = wait_for(
        "an opened notification",
        Duration::from_secs(20),
        || async { with_state(&hook, "opened").pop() },
    )
    .await["incident"]
        .as_i64()
        .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(["ack", &id.to_string(), "--by", "bob", "--url", &app.base])
        .env("KEEPER_API_TOKEN", TOKEN)
        .output()
        .await
        .expect("keeper ack runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("incident {id} (web) acknowledged")),
        "{stdout}"
    );
    let incident = app.get_json(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(
        incident["events"].as_array().unwrap().last().unwrap()["detail"],
        "by bob"
    );

    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(["ack", &id.to_string(), "--url", &app.base])
        .env("KEEPER_API_TOKEN", "wrong")
        .output()
        .await
        .expect("keeper ack runs");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{refused:?}"
    );
    app.stop().await;
}
