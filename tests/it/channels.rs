//! The webhook-style channels against a loopback receiver (method, path,
//! headers and the exact payload each service expects), and the
//! `alertmanager` channel against a real Alertmanager.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use hmac::{Hmac, KeyInit, Mac};
use keeper::classify::{Color, Severity};
use keeper::notify::{EventKind, Notification, webhook};
use sha2::Sha256;

use crate::support::init;
use crate::support::receiver::{Receiver, Recorded};

const WAIT: Duration = Duration::from_secs(10);

fn notification(state: EventKind, severity: Severity) -> Notification {
    Notification {
        incident: 42,
        check: "web".into(),
        state,
        severity,
        color: Color::Red,
        message: "GET https://example.com/health: 503 Service Unavailable".into(),
        labels: BTreeMap::from([("app".into(), "web".into())]),
        started_at: Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap(),
        at: Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 30).unwrap(),
        url: Some("http://keeper.example/incidents/42".into()),
        duration_s: None,
    }
}

fn http() -> reqwest::Client {
    init();
    reqwest::Client::new()
}

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
    signed.send(&n).await.expect("signed delivered");
    unsigned.send(&n).await.expect("unsigned delivered");

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
