//! Durable delivery across crashes: keeper killed with SIGKILL while a channel
//! is down delivers each pending notification exactly once after a restart;
//! killed after a delivery, it does not send it again.

use std::path::Path;
use std::time::Duration;

use crate::support::config::{Check, TestConfig};
use crate::support::process::Process;
use crate::support::receiver::Receiver;
use crate::support::target::Target;
use crate::support::{wait_for, wait_until};

fn write_config(dir: &Path, target: &Target, hook: &Receiver) -> std::path::PathBuf {
    TestConfig::new()
        .listen("127.0.0.1:0")
        .storage(format!("sqlite://{}", dir.join("keeper.db").display()))
        .check(Check::http("web", target.url("/")).interval("200ms"))
        .page(hook)
        .write_in(dir)
}

/// Outbox rows marked sent in the SQLite database at `url`.
async fn sent_rows(url: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(url)
        .await
        .expect("open the database");
    let n = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE status = 'sent'")
        .fetch_one(&mut conn)
        .await
        .expect("count sent rows");
    let _ = conn.close().await;
    n
}

fn opened(bodies: &[serde_json::Value]) -> Vec<serde_json::Value> {
    bodies
        .iter()
        .filter(|b| b["state"] == "opened")
        .cloned()
        .collect()
}

#[tokio::test]
async fn pending_notifications_survive_sigkill_and_are_delivered_once() {
    crate::support::init();
    let dir = tempfile::tempdir().unwrap();
    let target = Target::start().await;
    target.set_status(503);
    let hook = Receiver::start().await;
    hook.set_response(500, "receiver down");
    let config = write_config(dir.path(), &target, &hook);

    let first = Process::start(&config).await;
    wait_until(
        "a delivery attempt failed",
        Duration::from_secs(20),
        || async { !hook.requests().is_empty() },
    )
    .await;
    first.kill();

    let failed_attempts = hook.requests().len();
    hook.set_response(200, "ok");
    let second = Process::start(&config).await;
    let delivered = wait_for(
        "the pending page, delivered",
        Duration::from_secs(30),
        || async {
            let after: Vec<serde_json::Value> = hook.json_bodies().split_off(failed_attempts);
            let o = opened(&after);
            (!o.is_empty()).then_some(o)
        },
    )
    .await;
    let id = delivered[0]["incident"].clone();
    // Time passes: the target sees the probes go by, and retries would have come.
    let seen = target.requests();
    wait_until("ten more probes", Duration::from_secs(20), || async {
        target.requests() >= seen + 10
    })
    .await;
    let after: Vec<serde_json::Value> = hook.json_bodies().split_off(failed_attempts);
    assert_eq!(opened(&after).len(), 1, "delivered exactly once: {after:?}");
    assert!(
        opened(&hook.json_bodies())
            .iter()
            .all(|o| o["incident"] == id),
        "one incident"
    );
    second.kill();
}

#[tokio::test]
async fn a_delivered_notification_is_not_sent_again_after_sigkill() {
    crate::support::init();
    let dir = tempfile::tempdir().unwrap();
    let target = Target::start().await;
    target.set_status(503);
    let hook = Receiver::start().await;
    let config = write_config(dir.path(), &target, &hook);

    let first = Process::start(&config).await;
    wait_until("the page", Duration::from_secs(20), || async {
        opened(&hook.json_bodies()).len() == 1
    })
    .await;
    // Killed once the send is on record (between the receiver's answer and
    // that record, a resend is the price of never losing one).
    let db = format!("sqlite://{}", dir.path().join("keeper.db").display());
    wait_until("the send recorded", Duration::from_secs(20), || async {
        sent_rows(&db).await > 0
    })
    .await;
    first.kill();

    let second = Process::start(&config).await;
    let seen = target.requests();
    wait_until(
        "ten probes after the restart",
        Duration::from_secs(20),
        || async { target.requests() >= seen + 10 },
    )
    .await;
    assert_eq!(opened(&hook.json_bodies()).len(), 1, "not sent again");
    second.kill();
}
