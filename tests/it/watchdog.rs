//! keeper watching itself: a channel failing for `channel_failing_for`,
//! storage becoming unreachable and a database that answers but refuses
//! samples are incidents of their own, sent through the channels that still
//! work — storage's directly, around the database.

use std::time::Duration;

use crate::support::app::{TestApp, spawn_app};
use crate::support::config::{Channel, Check, Route, TestConfig};
use crate::support::db::{Backend, TestDb, both_backends};
use crate::support::proxy::Proxy;
use crate::support::receiver::{Receiver, Reply};
use crate::support::target::Target;
use crate::support::wait_until;

const WAIT: Duration = Duration::from_secs(30);

/// The webhook bodies `rx` received about check `check` in state `state`.
fn about(rx: &Receiver, check: &str, state: &str) -> Vec<serde_json::Value> {
    rx.json_bodies()
        .into_iter()
        .filter(|b| b["check"] == check && b["state"] == state)
        .collect()
}

#[tokio::test]
async fn a_channel_failing_for_its_window_pages_through_the_others_and_resolves() {
    let target = Target::start().await;
    target.set_status(503);
    let dead = Receiver::start().await;
    dead.set_reply(Reply::status(500));
    let alive = Receiver::start().await;
    let config = TestConfig::new()
        .set("watchdog", "interval", "100ms")
        .set("watchdog", "channel_failing_for", "1s")
        .check(
            Check::http("web", target.url("/"))
                .interval("200ms")
                .set("failures_before_alert", 1),
        )
        .channel(Channel::webhook("dead", &dead))
        .channel(Channel::webhook("alive", &alive))
        .route(Route::to(&["dead", "alive"]));
    let app = spawn_app(Backend::Sqlite, config).await;

    // web's page reaches alive; dead refuses it and keeps failing.
    alive.wait_for_json(1, WAIT).await;
    wait_until(
        "keeper:channel:dead's incident reaches alive",
        WAIT,
        || async { !about(&alive, "keeper:channel:dead", "opened").is_empty() },
    )
    .await;
    let opened = &about(&alive, "keeper:channel:dead", "opened")[0];
    assert_eq!(opened["severity"], "high");
    let message = opened["message"].as_str().unwrap();
    assert!(
        message.contains("channel dead failing for") && message.contains("500"),
        "{message}"
    );
    let check = app.check("keeper:channel:dead").await;
    assert_eq!(check["color"], "red", "{check}");

    // The failing channel is never asked to carry news of its own failure.
    dead.set_reply(Reply::status(200));
    wait_until(
        "keeper:channel:dead resolves once dead delivers again",
        WAIT,
        || async { !about(&alive, "keeper:channel:dead", "resolved").is_empty() },
    )
    .await;
    let to_dead: Vec<_> = dead
        .requests()
        .iter()
        .map(|r| r.json())
        .filter(|b| b["check"] == "keeper:channel:dead")
        .collect();
    assert!(
        to_dead.is_empty(),
        "sent through the failing channel: {to_dead:?}"
    );
    // alive never failed: no incident about it.
    assert!(about(&alive, "keeper:channel:alive", "opened").is_empty());
    app.stop().await;
}

/// keeper on `db` with `config`, its storage looked at every 100 ms and
/// paged to `alive` after two red looks; once `keeper:storage` is green.
async fn storage_watched(db: TestDb, config: TestConfig, alive: &Receiver) -> TestApp {
    let config = config
        .set("watchdog", "interval", "100ms")
        .set("watchdog", "failures_before_alert", 2)
        .page(alive);
    let app = TestApp::start_on(db, config).await;
    wait_until("keeper:storage is green", WAIT, || async {
        app.check("keeper:storage").await["color"] == "green"
    })
    .await;
    app
}

#[tokio::test]
async fn storage_unreachable_pages_directly_and_is_recorded_once_back() {
    let db = TestDb::postgres().await;
    let (proxy, url) = Proxy::in_front_of(db.url()).await;
    let alive = Receiver::start().await;
    // keeper reaches its database through the proxy.
    let config = TestConfig::new()
        .storage(url.as_str())
        .set("watchdog", "timeout", "500ms");
    let app = storage_watched(db, config, &alive).await;

    proxy.cut();
    wait_until("the storage incident is sent", WAIT, || async {
        !about(&alive, "keeper:storage", "opened").is_empty()
    })
    .await;
    let opened = &about(&alive, "keeper:storage", "opened")[0];
    assert_eq!(opened["severity"], "critical");
    assert!(
        opened["message"]
            .as_str()
            .unwrap()
            .starts_with("storage unreachable"),
        "{opened}"
    );
    // While the database is away, the API still answers from memory.
    assert_eq!(app.check("keeper:storage").await["color"], "red");

    proxy.restore();
    wait_until("the storage incident resolves", WAIT, || async {
        !about(&alive, "keeper:storage", "resolved").is_empty()
    })
    .await;
    assert_eq!(about(&alive, "keeper:storage", "opened").len(), 1);
    // Written down as it happened, once the database is back.
    let recorded = || async {
        let resolved = app.get_json("/api/v1/incidents?state=all").await;
        resolved
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["check"] == "keeper:storage")
            .cloned()
            .collect::<Vec<_>>()
    };
    wait_until(
        "the storage incident is recorded, resolved",
        WAIT,
        || async {
            recorded()
                .await
                .first()
                .is_some_and(|i| i["state"] == "resolved")
        },
    )
    .await;
    let recorded = recorded().await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["severity"], "critical");
    assert!(recorded[0]["resolved_at"].is_string(), "{recorded:?}");
    assert_eq!(recorded[0]["state"], "resolved");
    app.stop().await;
}

/// Makes the database refuse every new sample (`refuse`) or take them again.
async fn refuse_samples(db: &TestDb, refuse: bool) {
    let statements: &[&str] = match (db.backend(), refuse) {
        (Backend::Sqlite, true) => &["CREATE TRIGGER no_room BEFORE INSERT ON samples_recent \
              BEGIN SELECT RAISE(FAIL, 'no room for samples'); END"],
        (Backend::Sqlite, false) => &["DROP TRIGGER no_room"],
        (Backend::Postgres, true) => &[
            "CREATE FUNCTION no_room() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'no room for samples'; END $$",
            "CREATE TRIGGER no_room BEFORE INSERT ON samples \
             FOR EACH ROW EXECUTE FUNCTION no_room()",
        ],
        (Backend::Postgres, false) => &["DROP TRIGGER no_room ON samples"],
    };
    for sql in statements {
        db.execute(sql).await;
    }
}

both_backends!(
    async fn a_database_that_answers_but_refuses_samples_is_paged_and_loses_none(db) {
        let alive = Receiver::start().await;
        let app = storage_watched(db, TestConfig::new(), &alive).await;

        refuse_samples(&app.db, true).await;
        wait_until("the storage incident is sent", WAIT, || async {
            !about(&alive, "keeper:storage", "opened").is_empty()
        })
        .await;
        let opened = &about(&alive, "keeper:storage", "opened")[0];
        assert_eq!(opened["severity"], "critical");
        let message = opened["message"].as_str().unwrap();
        assert!(message.starts_with("storage answers but takes no samples"), "{message}");
        assert!(message.contains("no room for samples"), "{message}");
        // The engine does not take the database for away: it answers.
        let metrics = app.get_text("/metrics").await;
        assert!(metrics.contains("\nkeeper_store_errors_total 0\n"), "{metrics}");

        refuse_samples(&app.db, false).await;
        wait_until("the storage incident resolves", WAIT, || async {
            !about(&alive, "keeper:storage", "resolved").is_empty()
        })
        .await;
        assert_eq!(about(&alive, "keeper:storage", "opened").len(), 1);
        // The samples held while the database refused them are written: the red ones too.
        let red = "check_name = 'keeper:storage' AND color = 'red'";
        wait_until("the red looks are stored", WAIT, || async {
            app.db.samples_where(red).await >= 2
        })
        .await;
        app.stop().await;
    }
);
