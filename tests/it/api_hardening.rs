//! The API under hostile or careless requests: writes need
//! `Content-Type: application/json` (a web page's `text/plain` POST gets 415
//! and changes nothing), writes are closed on a non-loopback listener without
//! a token, tokens are long enough, and every bad request gets a 4xx JSON
//! error — never a dropped connection.

use std::time::Duration;

use crate::support::app::spawn_app;
use crate::support::config::{Check, TestConfig};
use crate::support::db::Backend;
use crate::support::target::Target;
use crate::support::{config_error, wait_for};

/// One failing `http` check.
fn config(target: &Target) -> TestConfig {
    TestConfig::new().check(Check::http("web", target.url("/health")).interval("250ms"))
}

/// Sends `req`, returning the status and the JSON body (which must be JSON).
async fn answer(req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let resp = req
        .send()
        .await
        .expect("an HTTP answer, not a dropped connection");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("a body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("a JSON answer ({status}), got {text:?}: {e}"));
    (status, body)
}

fn reason(body: &serde_json::Value) -> &str {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("a JSON {{\"error\": …}}, got {body}"))
}

#[tokio::test]
async fn text_plain_posts_to_ack_and_silences_get_415_and_change_nothing() {
    let target = Target::start().await;
    target.set_status(503);
    let app = spawn_app(Backend::Sqlite, config(&target)).await;
    let incident = wait_for("an open incident", Duration::from_secs(20), || async {
        app.check("web").await["incident"].as_i64()
    })
    .await;

    // What a form or fetch() with no preflight can send: text/plain, or no type at all.
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let ack = app
            .http
            .post(format!("{}/api/v1/incidents/{incident}/ack", app.base))
            .body(r#"{"by": "mallory"}"#);
        let silence = app
            .http
            .post(format!("{}/api/v1/silences", app.base))
            .body(r#"{"check": "web", "for": "1h"}"#);
        for req in [ack, silence] {
            let req = match content_type {
                Some(t) => req.header("content-type", t),
                None => req,
            };
            let (status, body) = answer(req).await;
            assert_eq!(status, 415, "{content_type:?}: {body}");
            assert!(reason(&body).contains("application/json"), "{body}");
        }
    }
    let (status, body) = answer(
        app.http
            .delete(format!("{}/api/v1/silences/1", app.base))
            .header("content-type", "text/plain"),
    )
    .await;
    assert_eq!(status, 415, "{body}");

    let shown = app.get_json(&format!("/api/v1/incidents/{incident}")).await;
    assert!(shown["acknowledged_at"].is_null(), "{shown}");
    let silences = app.get_json("/api/v1/silences").await;
    assert_eq!(silences, serde_json::json!([]), "no silence was created");

    // The real thing, with a charset parameter, is accepted.
    let (status, body) = answer(
        app.http
            .post(format!("{}/api/v1/incidents/{incident}/ack", app.base))
            .header("content-type", "application/json; charset=utf-8")
            .body(r#"{"by": "alice"}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["acknowledged_at"].is_string(), "{body}");
    app.stop().await;
}

/// Silence request bodies that must be refused with 400 and a reason.
fn bad_silence_bodies() -> Vec<(&'static str, &'static str)> {
    vec![
        (r#"{"check":"web","for":"200000000y"}"#, "for"),
        (
            r#"{"check":"web","for":"100000000000000y"}"#,
            "invalid duration",
        ),
        (r#"{"check":"web","for":"0s"}"#, "for"),
        (r#"{"check":"web","for":3600}"#, "invalid JSON body"),
        (r#"{"check":"web","for":1e400}"#, "invalid JSON body"),
        (r#"{"check":["web"],"for":"1h"}"#, "invalid JSON body"),
        (
            r#"{"check":"web","for":"1h","comment":7}"#,
            "invalid JSON body",
        ),
        (
            r#"{"check":"web","ends_at":"9999-12-31T23:59:59Z"}"#,
            "ends_at",
        ),
        (
            r#"{"check":"web","ends_at":"2020-01-01T00:00:00Z"}"#,
            "ends_at",
        ),
        (
            r#"{"check":"web","ends_at":"tomorrow"}"#,
            "invalid JSON body",
        ),
        (
            r#"{"check":"web","starts_at":"9999-12-31T00:00:00Z","for":"1h"}"#,
            "starts_at",
        ),
        (
            r#"{"check":"web","starts_at":"9999-12-31T00:00:00Z","for":"30d"}"#,
            "starts_at",
        ),
        (
            r#"{"check":"web","for":"1h","by":{"name":"x"}}"#,
            "invalid JSON body",
        ),
        (r#"[1,2,3]"#, "invalid JSON body"),
        ("\u{0}", "invalid JSON body"),
        ("", "invalid JSON body"),
    ]
}

#[tokio::test]
async fn bad_request_bodies_and_paths_get_4xx_json_errors() {
    let target = Target::start().await;
    let app = spawn_app(Backend::Sqlite, config(&target)).await;
    let post_json = |path: &str, body: Vec<u8>| {
        app.http
            .post(format!("{}{path}", app.base))
            .header("content-type", "application/json")
            .body(body)
    };
    for (body, why) in bad_silence_bodies() {
        let (status, answer) = answer(post_json("/api/v1/silences", body.into())).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert!(reason(&answer).contains(why), "{body} → {answer}");
    }
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let (status, _) = answer(post_json("/api/v1/silences", nested.into_bytes())).await;
    assert_eq!(status, 400, "deeply nested JSON");
    let (status, _) = answer(post_json("/api/v1/silences", vec![0xff, 0xfe, b'{'])).await;
    assert_eq!(status, 400, "not UTF-8");
    let (status, answer_) = answer(post_json("/api/v1/silences", vec![b' '; 1024 * 1024])).await;
    assert_eq!(status, 413, "oversized: {answer_}");
    let (status, _) = answer(post_json(
        "/api/v1/incidents/1/ack",
        vec![b' '; 1024 * 1024],
    ))
    .await;
    assert_eq!(status, 413);

    for id in ["-1", "0", "99999999999999999999999", "1e3", "%00", "abc"] {
        let (status, body) =
            answer(post_json(&format!("/api/v1/incidents/{id}/ack"), vec![])).await;
        assert_eq!(status, 400, "ack {id}: {body}");
        let (status, body) =
            answer(app.http.get(format!("{}/api/v1/incidents/{id}", app.base))).await;
        assert_eq!(status, 400, "incident {id}: {body}");
        let (status, body) = answer(
            app.http
                .delete(format!("{}/api/v1/silences/{id}", app.base))
                .header("content-type", "application/json"),
        )
        .await;
        assert_eq!(status, 400, "silence {id}: {body}");
    }
    // Not UTF-8 once percent-decoded.
    let (status, body) = answer(post_json("/api/v1/incidents/%FF/ack", vec![])).await;
    assert_eq!(status, 400, "{body}");
    for path in [
        "/api/v1/checks/%FF",
        "/api/v1/checks/%FF/samples",
        "/api/v1/incidents/%FF",
    ] {
        let (status, body) = answer(app.http.get(format!("{}{path}", app.base))).await;
        assert_eq!(status, 400, "{path}: {body}");
    }
    let (status, body) = answer(
        app.http
            .delete(format!("{}/api/v1/silences/%FF", app.base))
            .header("content-type", "application/json"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = answer(post_json(
        "/api/v1/incidents/9223372036854775807/ack",
        vec![],
    ))
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = answer(post_json(
        "/api/v1/incidents/1/ack",
        br#"{"by": 12}"#.to_vec(),
    ))
    .await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = answer(app.http.get(format!(
        "{}/api/v1/checks/web/samples?limit=99999999999999&since=x",
        app.base
    )))
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = answer(
        app.http
            .get(format!("{}/api/v1/incidents?limit=-5", app.base)),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Still serving after all of it.
    let (status, body) = answer(post_json(
        "/api/v1/silences",
        br#"{"check":"web","for":"1h"}"#.to_vec(),
    ))
    .await;
    assert_eq!(status, 201, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn writes_answer_403_on_a_non_loopback_listener_without_a_token() {
    let target = Target::start().await;
    target.set_status(503);
    let config = config(&target)
        .listen("0.0.0.0:0")
        .check(Check::heartbeat("beat").set("period", "1h"));
    let app = spawn_app(Backend::Sqlite, config).await;
    // Listening on every address; the test itself talks over loopback only.
    let port = app.base.rsplit(':').next().expect("a port");
    let base = format!("http://127.0.0.1:{port}");
    let incident = wait_for("an open incident", Duration::from_secs(20), || async {
        let check: serde_json::Value = app
            .http
            .get(format!("{base}/api/v1/checks/web"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        check["incident"].as_i64()
    })
    .await;
    let writes = [
        app.http
            .post(format!("{base}/api/v1/incidents/{incident}/ack"))
            .json(&serde_json::json!({"by": "mallory"})),
        app.http
            .post(format!("{base}/api/v1/silences"))
            .json(&serde_json::json!({"check": "web", "for": "1h"})),
        app.http
            .delete(format!("{base}/api/v1/silences/1"))
            .header("content-type", "application/json"),
    ];
    for req in writes {
        let (status, body) = answer(req).await;
        assert_eq!(status, 403, "{body}");
        assert!(reason(&body).contains("server.api_token"), "{body}");
    }
    let (status, body) = answer(app.http.get(format!("{base}/api/v1/incidents/{incident}"))).await;
    assert_eq!(status, 200, "reads stay open: {body}");
    assert!(body["acknowledged_at"].is_null(), "{body}");
    // Nor does the generated ping URL (its token) go to whoever reaches the port.
    let (status, beat) = answer(app.http.get(format!("{base}/api/v1/checks/beat"))).await;
    assert_eq!(status, 200, "{beat}");
    assert!(beat.get("ping_url").is_none(), "{beat}");
    app.stop().await;
}

#[tokio::test]
async fn a_token_opens_writes_on_a_non_loopback_listener() {
    let target = Target::start().await;
    let token = "a-long-enough-api-token";
    let app = spawn_app(
        Backend::Sqlite,
        config(&target).listen("0.0.0.0:0").api_token(token),
    )
    .await;
    let port = app.base.rsplit(':').next().expect("a port");
    let (status, body) = answer(
        app.http
            .post(format!("http://127.0.0.1:{port}/api/v1/silences"))
            .bearer_auth(token)
            .json(&serde_json::json!({"check": "web", "for": "1h"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    app.stop().await;
}

#[test]
fn empty_or_short_api_tokens_are_config_errors() {
    let err = config_error("[server]\napi_token = \"\"\n");
    assert!(
        err.starts_with("keeper.toml:2:13: server.api_token:"),
        "{err}"
    );
    assert!(err.contains("empty"), "{err}");

    let err = config_error("[server]\napi_token = \"short\"\n");
    assert!(
        err.starts_with("keeper.toml:2:13: server.api_token:"),
        "{err}"
    );
    assert!(err.contains("at least 16 characters"), "{err}");
    assert!(
        !err.contains("short"),
        "the error never shows the token: {err}"
    );

    // `${KEEPER_API_TOKEN}` with the variable set but empty.
    let errors = keeper::config::Config::parse(
        std::path::Path::new("keeper.toml"),
        "[server]\napi_token = \"${KEEPER_API_TOKEN}\"\n",
        &|name| (name == "KEEPER_API_TOKEN").then(String::new),
    )
    .expect_err("an empty token is refused");
    let err = errors.to_string();
    assert!(err.contains("keeper.toml:2:13: server.api_token:"), "{err}");
    assert!(err.contains("KEEPER_API_TOKEN"), "{err}");
}
