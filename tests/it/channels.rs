//! The webhook-style channels against a loopback receiver (method, path,
//! headers and the exact payload each service expects), and the
//! `alertmanager` channel against a real Alertmanager.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use keeper::core::EventKind;
use keeper::core::Severity;
use keeper::notify::{
    Channel, ChannelSpec, Deliver, alertmanager, discord, ntfy, pagerduty, teams, webhook,
};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::alertmanager::AlertmanagerServer;
use crate::support::app::spawn_app;
use crate::support::config::{self, Check, Route, TestConfig};
use crate::support::db::Backend;
use crate::support::receiver::{Receiver, Reply};
use crate::support::recorded::Recorded;
use crate::support::{init, wait_for, wait_until};

const WAIT: Duration = Duration::from_secs(10);

use crate::notify::{http, notification};

/// What a receiver does: HMAC-SHA256 over the raw body, compared in constant time.
fn verifies(secret: &str, r: &Recorded) -> bool {
    let Some(hex_sig) = r
        .header("x-keeper-signature")
        .and_then(|v| v.strip_prefix("sha256="))
    else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(&r.body);
    mac.verify_slice(&sig).is_ok()
}

#[tokio::test]
async fn webhook_secret_signs_the_exact_body() {
    init();
    let rx = Receiver::start().await;
    let signed = webhook::Webhook::new(
        &webhook::Spec {
            url: rx.url(),
            headers: BTreeMap::new(),
            secret: Some("s3cret-key".into()),
        },
        http(),
    )
    .expect("webhook spec");
    let unsigned = webhook::Webhook::new(
        &webhook::Spec {
            url: rx.url(),
            headers: BTreeMap::new(),
            secret: None,
        },
        http(),
    )
    .expect("webhook spec");

    let n = notification(EventKind::Opened, Severity::Critical);
    signed.send(&n, "key-1").await.expect("signed delivered");
    unsigned
        .send(&n, "key-1")
        .await
        .expect("unsigned delivered");

    let requests = rx.wait_for_requests(2, WAIT).await;
    let sig = requests[0].header("x-keeper-signature").unwrap_or_default();
    assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64, "{sig}");
    assert!(
        verifies("s3cret-key", &requests[0]),
        "the right secret verifies"
    );
    assert!(
        !verifies("wrong-key", &requests[0]),
        "a wrong secret does not"
    );
    assert_eq!(requests[0].json()["incident"], 42);
    assert_eq!(requests[1].header("x-keeper-signature"), None);
    assert_eq!(
        requests[0].body, requests[1].body,
        "signing leaves the body alone"
    );
}

#[tokio::test]
async fn pagerduty_triggers_acknowledges_and_resolves_one_dedup_key() {
    init();
    let rx = Receiver::start().await;
    rx.set_reply(Reply::status(202).body(r#"{"status":"success","message":"Event processed"}"#));
    let pd = pagerduty::PagerDuty::new(
        &pagerduty::Spec {
            routing_key: "rk-s3cret".into(),
            url: Some(rx.url_for("/v2/enqueue")),
        },
        http(),
    )
    .expect("pagerduty spec");
    assert!(!format!("{pd:?}").contains("s3cret"));

    let states = [
        (EventKind::Opened, Severity::Critical, "trigger", "critical"),
        (EventKind::Escalated, Severity::High, "trigger", "error"),
        (EventKind::Reminder, Severity::Medium, "trigger", "warning"),
        (EventKind::Opened, Severity::Low, "trigger", "info"),
        (
            EventKind::Acknowledged,
            Severity::Critical,
            "acknowledge",
            "",
        ),
        (EventKind::Resolved, Severity::Critical, "resolve", ""),
    ];
    for (state, severity, _, _) in states {
        pd.send(&notification(state, severity), "key-1")
            .await
            .expect("202 is success");
    }
    let requests = rx.wait_for_requests(states.len(), WAIT).await;
    for (r, (state, _, action, severity)) in requests.iter().zip(states) {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/v2/enqueue");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let e = r.json();
        assert_eq!(e["routing_key"], "rk-s3cret");
        assert_eq!(e["event_action"], action, "{state}");
        assert_eq!(e["dedup_key"], "keeper-42");
        assert_eq!(e["client"], "keeper");
        assert_eq!(e["client_url"], "http://keeper.example/incidents/42");
        if action == "trigger" {
            assert_eq!(e["payload"]["severity"], severity, "{state}");
        } else {
            assert!(e.get("payload").is_none(), "{state}: {e}");
        }
    }
    assert_eq!(
        requests[0].json()["payload"],
        json!({"summary": "[CRITICAL] web: GET https://example.com/health: 503 Service Unavailable",
               "source": "web", "severity": "critical", "timestamp": "2026-11-27T08:00:30Z",
               "custom_details": {"message": "GET https://example.com/health: 503 Service Unavailable",
                   "labels": {"app": "web"}, "state": "opened",
                   "started_at": "2026-11-27T08:00:00Z",
                   "incident_url": "http://keeper.example/incidents/42"}})
    );

    let n = notification(EventKind::Opened, Severity::Critical);
    rx.set_reply(Reply::status(400).body(r#"{"status":"invalid event"}"#));
    let e = pd.send(&n, "key-1").await.expect_err("400 fails");
    assert!(e.permanent, "400 is permanent: {e}");
    assert!(!e.message.contains("s3cret"), "{e}");
    rx.set_reply(Reply::status(429).header("Retry-After", "3"));
    let e = pd.send(&n, "key-1").await.expect_err("429 fails");
    assert!(!e.permanent, "429 is retried: {e}");
    assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
}

#[tokio::test]
async fn discord_posts_an_embed_with_an_integer_color_and_404_is_permanent() {
    init();
    let rx = Receiver::start().await;
    rx.set_response(204, "");
    let d = discord::Discord::new(
        &discord::Spec {
            url: rx.url_for("/api/webhooks/1/tok"),
        },
        http(),
    )
    .expect("discord spec");

    d.send(
        &notification(EventKind::Opened, Severity::Critical),
        "key-1",
    )
    .await
    .expect("204 is success");
    d.send(
        &notification(EventKind::Resolved, Severity::Critical),
        "key-1",
    )
    .await
    .expect("204 is success");
    let requests = rx.wait_for_requests(2, WAIT).await;
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/api/webhooks/1/tok");
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
    assert_eq!(
        requests[0].json(),
        json!({"username": "keeper", "embeds": [{
            "title": "[CRITICAL] web opened",
            "description": "GET https://example.com/health: 503 Service Unavailable",
            "color": 0x99_2D_22, "timestamp": "2026-11-27T08:00:30Z",
            "url": "http://keeper.example/incidents/42"}]})
    );
    assert_eq!(requests[1].json()["embeds"][0]["color"], 0x2E_CC_71);

    rx.set_response(404, r#"{"message": "Unknown Webhook", "code": 10015}"#);
    let e = d
        .send(
            &notification(EventKind::Opened, Severity::Critical),
            "key-1",
        )
        .await
        .expect_err("404 fails");
    assert!(e.permanent, "a deleted webhook is permanent: {e}");
    assert!(!e.message.contains("tok"), "{e}");
    rx.set_reply(Reply::status(429).header("Retry-After", "2"));
    let e = d
        .send(
            &notification(EventKind::Opened, Severity::Critical),
            "key-1",
        )
        .await
        .expect_err("429 fails");
    assert!(!e.permanent);
    assert_eq!(e.retry_after, Some(Duration::from_secs(2)));
}

#[tokio::test]
async fn ntfy_publishes_plain_text_with_title_priority_tags_and_click() {
    init();
    let rx = Receiver::start().await;
    let ntfy = ntfy::Ntfy::new(
        &ntfy::Spec {
            url: rx.url_for("/mytopic"),
            token: Some("tk_s3cret".into()),
        },
        http(),
    )
    .expect("ntfy spec");
    assert!(!format!("{ntfy:?}").contains("s3cret"));

    let cases = [
        (
            EventKind::Opened,
            Severity::Critical,
            "[CRITICAL] web opened",
            "5",
            "rotating_light",
        ),
        (
            EventKind::Escalated,
            Severity::High,
            "[HIGH] web escalated",
            "4",
            "warning",
        ),
        (
            EventKind::Reminder,
            Severity::Medium,
            "[MEDIUM] web reminder",
            "3",
            "warning",
        ),
        (
            EventKind::Opened,
            Severity::Low,
            "[LOW] web opened",
            "2",
            "information_source",
        ),
        (
            EventKind::Resolved,
            Severity::Critical,
            "[CRITICAL] web resolved",
            "3",
            "white_check_mark",
        ),
    ];
    for (state, severity, ..) in cases {
        ntfy.send(&notification(state, severity), "key-1")
            .await
            .expect("200 is success");
    }
    let requests = rx.wait_for_requests(cases.len(), WAIT).await;
    for (r, (state, _, title, priority, tags)) in requests.iter().zip(cases) {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/mytopic");
        assert_eq!(r.header("authorization"), Some("Bearer tk_s3cret"));
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(r.header("title"), Some(title), "{state}");
        assert_eq!(r.header("priority"), Some(priority), "{state}");
        assert_eq!(r.header("tags"), Some(tags), "{state}");
        assert_eq!(
            r.header("click"),
            Some("http://keeper.example/incidents/42")
        );
        assert_eq!(
            &r.body[..],
            b"GET https://example.com/health: 503 Service Unavailable"
        );
    }

    rx.set_reply(
        Reply::status(429)
            .header("Retry-After", "5")
            .body(r#"{"code":42901,"http":429,"error":"limit reached: too many requests"}"#),
    );
    let e = ntfy
        .send(
            &notification(EventKind::Opened, Severity::Critical),
            "key-1",
        )
        .await
        .expect_err("429 fails");
    assert!(!e.permanent);
    assert_eq!(e.retry_after, Some(Duration::from_secs(5)));
}

#[tokio::test]
async fn teams_posts_one_adaptive_card() {
    init();
    let rx = Receiver::start().await;
    rx.set_response(202, "");
    let teams = teams::Teams::new(
        &teams::Spec {
            url: rx.url_for("/workflows/x?sig=s3cret"),
        },
        http(),
    )
    .expect("teams spec");
    assert!(!format!("{teams:?}").contains("s3cret"));

    teams
        .send(
            &notification(EventKind::Opened, Severity::Critical),
            "key-1",
        )
        .await
        .expect("202 is success");
    let requests = rx.wait_for_requests(1, WAIT).await;
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/workflows/x?sig=s3cret");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({"type": "message", "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard", "version": "1.2",
                "body": [
                    {"type": "TextBlock", "text": "[CRITICAL] web opened", "weight": "Bolder",
                     "size": "Medium", "wrap": true, "style": "heading", "color": "Attention"},
                    {"type": "TextBlock", "text": "GET https://example.com/health: 503 Service Unavailable",
                     "wrap": true},
                    {"type": "TextBlock", "text": "Started 2026-11-27T08:00:00Z · app=web",
                     "wrap": true, "isSubtle": true, "size": "Small"},
                    {"type": "TextBlock", "text": "[Incident #42](http://keeper.example/incidents/42)",
                     "wrap": true}],
                "msteams": {"width": "full"}}}]})
    );

    rx.set_response(500, "flow failed");
    let e = teams
        .send(
            &notification(EventKind::Resolved, Severity::Critical),
            "key-1",
        )
        .await
        .expect_err("500 fails");
    assert!(!e.permanent && !e.message.contains("s3cret"), "{e}");
}

#[tokio::test]
async fn new_kinds_are_read_strictly_and_refuse_bad_urls_without_echoing_them() {
    init();
    let read = |kind: &str, toml_src: &str| -> Result<ChannelSpec, String> {
        let value: toml::Value = toml::from_str(toml_src).map_err(|e| e.to_string())?;
        ChannelSpec::deserialize_kind(kind, value).map_err(|e| e.to_string())
    };
    for (kind, keys) in [
        ("discord", r#"url = "http://x/""#),
        ("teams", r#"url = "http://x/""#),
        ("pagerduty", r#"routing_key = "rk""#),
        ("ntfy", "url = \"http://x/t\"\ntoken = \"tk\""),
        (
            "alertmanager",
            "url = \"http://x:9093\"\nheaders = { Authorization = \"Basic x\" }",
        ),
    ] {
        let spec = read(kind, keys).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(spec.kind(), kind);
        spec.build(&http())
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let e = read(kind, &format!("{keys}\nbogus_key = 1")).expect_err("unknown key");
        assert!(e.contains("bogus_key"), "{kind}: {e}");
    }
    for (kind, keys) in [
        ("discord", r#"url = "ftp://s3cret@x/""#),
        ("teams", r#"url = "not a url s3cret""#),
        ("ntfy", r#"url = "gopher://x/s3cret""#),
        ("alertmanager", r#"url = "file:///s3cret""#),
        ("pagerduty", "routing_key = \"k\"\nurl = \"ftp://x/s3cret\""),
    ] {
        let e = read(kind, keys)
            .expect("keys parse")
            .build(&http())
            .expect_err("bad url refused");
        assert!(
            e.starts_with("invalid url") && !e.contains("s3cret"),
            "{kind}: {e}"
        );
    }
    let e = read("pagerduty", r#"routing_key = """#)
        .unwrap()
        .build(&http())
        .unwrap_err();
    assert_eq!(e, "routing_key is empty");
}

/// The alerts Alertmanager lists for incident 42.
async fn keeper_alerts(am: &AlertmanagerServer) -> Vec<Value> {
    am.alerts()
        .await
        .into_iter()
        .filter(|a| a["labels"]["incident"] == "42")
        .collect()
}

#[tokio::test]
async fn alertmanager_shows_the_alert_active_then_gone_once_resolved() {
    init();
    let am = AlertmanagerServer::start().await;
    let channel = ChannelSpec::Alertmanager(alertmanager::Spec {
        url: am.url(),
        headers: BTreeMap::new(),
        resend: None,
    })
    .build(&http())
    .expect("alertmanager spec");
    assert!(matches!(channel, Channel::Alertmanager(_)));

    // Alertmanager keeps an alert active until endsAt: the times must be now.
    let now = Utc::now();
    let mut n = notification(EventKind::Opened, Severity::High);
    n.started_at = now - chrono::Duration::seconds(30);
    n.at = now;
    channel.send(&n, "key-1").await.expect("200 is success");

    let active = wait_for("alertmanager lists the opened alert", WAIT, || async {
        let alerts = keeper_alerts(&am).await;
        (!alerts.is_empty()).then_some(alerts)
    })
    .await;
    assert_eq!(active.len(), 1, "{active:?}");
    let a = &active[0];
    assert_eq!(a["status"]["state"], "active", "{a}");
    assert_eq!(
        a["labels"],
        json!({"alertname": "KeeperCheckFailing", "check": "web", "severity": "high",
               "incident": "42", "app": "web"})
    );
    assert_eq!(a["annotations"]["summary"], "web opened");
    assert_eq!(
        a["annotations"]["description"],
        "GET https://example.com/health: 503 Service Unavailable"
    );
    assert_eq!(a["generatorURL"], "http://keeper.example/incidents/42");

    // Escalating to critical ends the high alert and fires a critical one.
    n.state = EventKind::Escalated;
    n.severity = Severity::Critical;
    n.at = Utc::now();
    channel
        .send(&n, "key-1")
        .await
        .expect("escalation accepted");
    wait_for("only the critical alert is active", WAIT, || async {
        let alerts = keeper_alerts(&am).await;
        let severities: Vec<&str> = alerts
            .iter()
            .filter_map(|a| a["labels"]["severity"].as_str())
            .collect();
        (severities == ["critical"]).then_some(())
    })
    .await;

    // A resolve ends it: Alertmanager 0.25 leaves alerts whose endsAt has
    // passed out of GET /api/v2/alerts.
    n.state = EventKind::Resolved;
    n.at = Utc::now();
    channel.send(&n, "key-1").await.expect("resolve accepted");
    wait_for("alertmanager no longer lists the alert", WAIT, || async {
        keeper_alerts(&am).await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn alertmanager_hears_an_open_incident_again_every_resend_until_it_resolves() {
    let target = crate::support::target::Target::start().await;
    target.set_status(503);
    let am = Receiver::start().await;
    let config = TestConfig::new()
        .check(Check::http("web", target.url("/")).interval("200ms"))
        .channel(
            config::Channel::new("am", "alertmanager")
                .set("url", am.url())
                .set("resend", "1s"),
        )
        .route(Route::to(&["am"]));
    let app = spawn_app(Backend::Sqlite, config).await;
    // The opening, then at least two re-sends a second apart, each still firing a day ahead.
    let posts = am.wait_for_json(3, WAIT).await;
    for post in &posts {
        let web: Vec<&serde_json::Value> = post
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["labels"]["severity"] == "critical")
            .collect();
        assert_eq!(web.len(), 1, "{post}");
        let ends: chrono::DateTime<Utc> = web[0]["endsAt"].as_str().unwrap().parse().unwrap();
        assert!(ends > Utc::now() + chrono::Duration::hours(23), "{post}");
    }
    target.set_status(200);
    let resolved = |posts: &[serde_json::Value]| {
        posts.iter().position(|p| {
            p.as_array().unwrap().iter().all(|a| {
                a["endsAt"]
                    .as_str()
                    .unwrap()
                    .parse::<chrono::DateTime<Utc>>()
                    .unwrap()
                    <= Utc::now()
            })
        })
    };
    let at = wait_for("the resolve", WAIT, || async {
        resolved(&am.json_bodies())
    })
    .await;
    // Two more resend periods: nothing is sent again for a resolved incident.
    let seen = target.requests();
    wait_until("ten probes", WAIT, || async {
        target.requests() >= seen + 10
    })
    .await;
    assert_eq!(am.json_bodies().len(), at + 1, "{:?}", am.json_bodies());
    app.stop().await;
}
