//! Several keeper instances on one PostgreSQL database share their state
//! (issue 12, point 3): an acknowledgement, a silence, a heartbeat ping or
//! log lines taken in by one instance take effect on the other, told by
//! `NOTIFY keeper_events`, and found by the periodic re-read when nobody
//! told (a change written behind keeper's back, a listener reconnecting).
//! Each instance has a name of its own, so each check is probed by one of
//! them (`crate::cluster`): what one instance takes in reaches the check
//! wherever it is probed, and every instance shows it.

use std::time::Duration;

use serde_json::Value;

use crate::support::app::TestApp;
use crate::support::config::{Check, TestConfig};
use crate::support::db::TestDb;
use crate::support::receiver::Receiver;
use crate::support::target::Target;
use crate::support::{wait_for, wait_until};

const TOKEN: &str = "s3cret-api-token-0001";
const BEAT_TOKEN: &str = "backup-token-0123456789";
const SOURCE_TOKEN: &str = "ingest-t0ken-0123456789";
const WAIT: Duration = Duration::from_secs(20);

/// `n` keepers started with `config` on one fresh PostgreSQL database: the
/// first owns the database (dropped with it), the others share it.
async fn instances(config: &TestConfig, n: usize) -> Vec<TestApp> {
    let db = TestDb::postgres().await;
    let named = |i: usize| {
        config
            .clone()
            .set("cluster", "name", format!("instance-{i}"))
    };
    let mut apps = Vec::new();
    for i in 1..n {
        apps.push(TestApp::start_on(db.shared(), named(i)).await);
    }
    apps.insert(0, TestApp::start_on(db, named(0)).await);
    apps
}

/// Two of [`instances`].
async fn two(config: &TestConfig) -> (TestApp, TestApp) {
    let mut apps = instances(config, 2).await;
    let b = apps.pop().expect("b");
    (apps.pop().expect("a"), b)
}

/// Stops the instances last first: the first one's database goes with it.
async fn stop_all(apps: Vec<TestApp>) {
    for app in apps.into_iter().rev() {
        app.stop().await;
    }
}

async fn stop(a: TestApp, b: TestApp) {
    stop_all(vec![a, b]).await;
}

fn with_state(hook: &Receiver, state: &str) -> Vec<Value> {
    hook.json_bodies()
        .into_iter()
        .filter(|n| n["state"] == state)
        .collect()
}

/// A write to the API of `app` with the API token: the status and the JSON answer.
async fn write(app: &TestApp, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let resp = app
        .http
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Waits until both instances probed `web` for about `seconds` (4 probes a
/// second each): time passing, seen by the target.
async fn seconds_of_probes(target: &Target, seconds: usize) {
    let seen = target.requests();
    wait_until(&format!("{seconds} s of probes"), WAIT, || async {
        target.requests() >= seen + 8 * seconds
    })
    .await;
}

/// A failing check `web` (every 250 ms) paging `hook`, critical reminders every second.
fn paging(target: &Target, hook: &Receiver) -> TestConfig {
    TestConfig::new()
        .api_token(TOKEN)
        .severity("critical", "repeat", "1s")
        .check(Check::http("web", target.url("/health")).interval("250ms"))
        .page(hook)
}

#[tokio::test]
async fn an_acknowledgement_on_one_instance_stops_the_reminders_of_the_other() {
    let target = Target::start().await;
    target.set_status(503);
    let hook = Receiver::start().await;
    let (a, b) = two(&paging(&target, &hook)).await;

    let opened = wait_for("an opened notification", WAIT, || async {
        with_state(&hook, "opened").pop()
    })
    .await;
    let id = opened["incident"].as_i64().expect("incident id");
    wait_until("reminders", WAIT, || async {
        with_state(&hook, "reminder").len() >= 2
    })
    .await;

    let (status, acked) = write(
        &a,
        reqwest::Method::POST,
        &format!("/api/v1/incidents/{id}/ack"),
        serde_json::json!({"by": "alice"}),
    )
    .await;
    assert_eq!(status, 200, "{acked}");
    assert!(acked["acknowledged_at"].is_string(), "{acked}");
    wait_until("the acknowledged notification", WAIT, || async {
        !with_state(&hook, "acknowledged").is_empty()
    })
    .await;
    // Reminders queued before the acknowledgement may still be on their way.
    seconds_of_probes(&target, 1).await;
    let reminders = with_state(&hook, "reminder").len();
    // Three response windows of both instances probing (8 probes a second).
    seconds_of_probes(&target, 3).await;
    assert_eq!(
        with_state(&hook, "reminder").len(),
        reminders,
        "no reminder after the acknowledgement, from either instance"
    );
    stop(a, b).await;
}

#[tokio::test]
async fn a_silence_created_on_one_instance_holds_the_page_on_the_other() {
    let target = Target::start().await;
    let hook = Receiver::start().await;
    let (a, b) = two(&paging(&target, &hook)).await;
    let silence = serde_json::json!({"check": "web", "for": "1h", "comment": "deploying"});
    let (status, created) = write(&b, reqwest::Method::POST, "/api/v1/silences", silence).await;
    assert_eq!(status, 201, "{created}");

    target.set_status(503);
    let incident = wait_for("the incident, recorded", WAIT, || async {
        a.check("web").await["incident"].as_i64()
    })
    .await;
    wait_until("the incident, seen by both", WAIT, || async {
        b.check("web").await["incident"].as_i64() == Some(incident)
    })
    .await;
    // Both instances' engines tick (and would release a hold) every second.
    seconds_of_probes(&target, 3).await;
    assert!(
        hook.json_bodies().is_empty(),
        "silenced: {:?}",
        hook.json_bodies()
    );

    // Ended on A: the page goes out once.
    let path = format!("/api/v1/silences/{}", created["id"]);
    let (status, _) = write(&a, reqwest::Method::DELETE, &path, Value::Null).await;
    assert_eq!(status, 200);
    wait_until("the page once the silence ended", WAIT, || async {
        !with_state(&hook, "opened").is_empty()
    })
    .await;
    seconds_of_probes(&target, 2).await;
    assert_eq!(with_state(&hook, "opened").len(), 1, "paged once");
    stop(a, b).await;
}

/// A heartbeat check `backup` with [`BEAT_TOKEN`] and `keys`.
fn heartbeat(keys: &[(&str, &str)]) -> TestConfig {
    let mut backup = Check::heartbeat("backup").set("token", BEAT_TOKEN);
    for (key, value) in keys {
        backup = backup.set(key, *value);
    }
    TestConfig::new().check(backup)
}

async fn ping(app: &TestApp, path: &str) {
    let resp = app
        .http
        .post(format!("{}/ping/{BEAT_TOKEN}{path}", app.base))
        .send()
        .await
        .expect("ping sent");
    assert_eq!(resp.status(), 200);
}

/// Waits until `app` shows check `backup` `color` with a message starting with `prefix`.
async fn wait_for_backup(app: &TestApp, color: &str, prefix: &str) {
    let what = format!("backup is {color} with a message starting {prefix:?}");
    wait_until(&what, WAIT, || async {
        let check = app.check("backup").await;
        check["color"] == color
            && check["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with(prefix)
    })
    .await;
}

#[tokio::test]
async fn a_ping_to_one_instance_wakes_the_heartbeat_check_of_the_other() {
    // Evaluated hourly: only the ping's wake can show the change now.
    let (a, b) = two(&heartbeat(&[("period", "1h"), ("interval", "1h")])).await;
    wait_for_backup(&b, "green", "no ping yet").await;

    ping(&a, "/fail").await;
    wait_for_backup(&b, "red", "failed").await;
    ping(&a, "").await;
    wait_for_backup(&b, "green", "last ping").await;
    stop(a, b).await;
}

#[tokio::test]
async fn pings_to_one_instance_keep_the_check_green_on_the_other_past_its_period() {
    let keys = [("period", "2s"), ("grace", "1s"), ("interval", "100ms")];
    let (a, b) = two(&heartbeat(&keys)).await;
    ping(&a, "").await;
    wait_for_backup(&b, "green", "last ping").await;
    // The job runs every second for three periods; B hears of every run.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        ping(&a, "").await;
    }
    wait_for_backup(&b, "green", "last ping").await;
    let incidents = b.get_json("/api/v1/incidents?state=all").await;
    assert_eq!(
        incidents,
        serde_json::json!([]),
        "never late on either instance"
    );
    stop(a, b).await;
}

/// A log check `app` fed by ingest source `web`.
fn logs() -> TestConfig {
    TestConfig::new().check(
        Check::new("app", "log")
            .set("ingest", "web")
            .set("token", SOURCE_TOKEN)
            .set("window", "30s")
            .interval("200ms"),
    )
}

/// `n` JSON lines of which every `every`-th is an error.
fn burst(n: usize, every: usize) -> String {
    (1..=n)
        .map(|i| match i % every {
            0 => "{\"level\":\"error\",\"msg\":\"payment failed\"}\n",
            _ => "{\"level\":\"info\",\"msg\":\"request done\"}\n",
        })
        .collect()
}

async fn post_lines(app: &TestApp, body: String) {
    let resp = app
        .http
        .post(format!("{}/ingest/web", app.base))
        .bearer_auth(SOURCE_TOKEN)
        .body(body)
        .send()
        .await
        .expect("ingest sent");
    assert_eq!(resp.status(), 202);
}

/// Waits until `app`'s own log check counts errors in its window.
async fn wait_for_errors(app: &TestApp) -> Value {
    wait_for("the log check counting errors", WAIT, || async {
        let check = app.check("app").await;
        (check["color"] != "green"
            && check["message"]
                .as_str()
                .unwrap_or_default()
                .contains("errors"))
        .then_some(check)
    })
    .await
}

#[tokio::test]
async fn lines_posted_to_one_instance_count_in_the_window_of_the_others() {
    let apps = instances(&logs(), 3).await;
    for app in &apps {
        wait_until("the log check ran", WAIT, || async {
            app.check("app").await["last_run_at"].is_string()
        })
        .await;
        assert_eq!(app.check("app").await["color"], "green");
    }

    post_lines(&apps[2], burst(500, 10)).await;
    for app in &apps[..2] {
        let seen = wait_for_errors(app).await;
        let message = seen["message"].as_str().unwrap();
        assert!(message.contains("(50 in 30s)"), "each error once: {seen}");
    }
    // A periodic re-read later, still each line once.
    tokio::time::sleep(keeper::store::events::RESYNC_EVERY + Duration::from_secs(1)).await;
    for app in &apps[..2] {
        let message = app.check("app").await["message"].to_string();
        assert!(
            message.contains("(50 in 30s)"),
            "each error once: {message}"
        );
    }
    stop_all(apps).await;
}

#[tokio::test]
async fn changes_nobody_was_told_of_arrive_by_the_periodic_re_read() {
    let db = TestDb::postgres().await;
    let config = heartbeat(&[("period", "1h"), ("interval", "1h")]);
    let config = config.check(
        Check::new("app", "log")
            .set("ingest", "web")
            .set("token", SOURCE_TOKEN)
            .set("window", "1m")
            .interval("200ms"),
    );
    let app = TestApp::start_on(db, config).await;
    wait_for_backup(&app, "green", "no ping yet").await;

    // Written by "another instance" without NOTIFY.
    app.db
        .execute("UPDATE heartbeats SET last_fail = now() WHERE check_name = 'backup'")
        .await;
    let lines = serde_json::to_string(&burst(200, 5).lines().collect::<Vec<_>>()).unwrap();
    let insert = format!(
        "INSERT INTO ingested (origin, source, at, lines) VALUES ('elsewhere', 'web', now(), '{}')",
        lines.replace('\'', "''")
    );
    app.db.execute(&insert).await;

    wait_for_backup(&app, "red", "failed").await;
    wait_for_errors(&app).await;
    app.stop().await;
}

/// The connections listening on `db` for keeper's notifications.
async fn listeners(db: &TestDb) -> i64 {
    db.count("pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'")
        .await
}

#[tokio::test]
async fn a_listener_cut_off_listens_again_and_hears_what_follows() {
    let (a, b) = two(&heartbeat(&[("period", "1h"), ("interval", "1h")])).await;
    wait_until("both instances listening", WAIT, || async {
        listeners(&a.db).await == 2
    })
    .await;
    a.db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .await;
    wait_until("the listeners cut off", WAIT, || async {
        listeners(&a.db).await < 2
    })
    .await;
    wait_until("both instances listening again", WAIT, || async {
        listeners(&a.db).await == 2
    })
    .await;

    ping(&a, "/fail").await;
    wait_for_backup(&b, "red", "failed").await;
    stop(a, b).await;
}

#[tokio::test]
async fn lines_are_kept_for_the_other_instances_and_deleted_when_old() {
    use keeper::store::events::{Bus, INGESTED_KEPT, Ingested};
    crate::support::init();
    let db = TestDb::postgres().await;
    let (here, there) = (Bus::new(db.store().await), Bus::new(db.store().await));
    let now = chrono::Utc::now();
    let lines = vec!["one".to_string(), "two's".to_string()];
    let old = here
        .share_lines(
            "web",
            &lines,
            now - INGESTED_KEPT - chrono::Duration::minutes(1),
        )
        .await
        .expect("kept")
        .expect("an id on PostgreSQL");
    let new = here
        .share_lines("web", &lines, now)
        .await
        .expect("kept")
        .expect("an id");

    let read = there.ingested(new).await.expect("read");
    let expected = Ingested {
        id: new,
        source: "web".into(),
        lines: lines.clone(),
    };
    assert_eq!(read, Some(expected));
    assert_eq!(here.ingested(new).await.expect("read"), None, "its own");
    let since = now - chrono::Duration::minutes(2);
    assert_eq!(there.ingested_since(since).await.expect("listed"), [new]);
    assert_eq!(
        here.ingested_since(since).await.expect("listed"),
        Vec::<i64>::new()
    );

    // Whoever received them: an instance gone for good leaves its rows.
    let forgot = there.forget_ingested(now - INGESTED_KEPT).await;
    assert_eq!(forgot.expect("forgot"), 1, "the old row");
    assert_eq!(there.ingested(old).await.expect("read"), None);
    assert_eq!(db.count("ingested").await, 1);

    // On SQLite (one instance) nothing is kept.
    let sqlite = TestDb::sqlite();
    let alone = Bus::new(sqlite.store().await);
    assert_eq!(
        alone
            .share_lines("web", &lines, now)
            .await
            .expect("nothing"),
        None
    );
    assert_eq!(sqlite.count("ingested").await, 0);
}
