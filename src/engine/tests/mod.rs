//! Step tests of the engine with an explicit clock, on a memory SQLite
//! store: observations and ticks at given instants, then what the store
//! holds (the incident's timeline, the outbox rows). Nothing waits in real time.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};

use super::*;
use crate::config::Config;
use crate::core::Notification;
use crate::core::value::Crontab;
use crate::incident::Silence;
use crate::notify::outbox::Outbox;

mod regional;
mod shared;

struct Fixture {
    engine: Engine,
    store: Store,
    /// Holds the direct queue open.
    _outbox: Outbox,
    t0: DateTime<Utc>,
}

/// An engine over `checks_and_policy` (TOML: checks, severities, routes),
/// every route to the webhook `hook`, on a fresh memory database.
async fn fixture(checks_and_policy: &str) -> Fixture {
    // Whole seconds (SQLite keeps milliseconds, the digest's times are
    // whole), taken before the engine starts its timetable.
    let t0 = Utc::now().trunc_subsecs(0);
    let toml = format!(
        "{checks_and_policy}\n[channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n\n\
         [[routes]]\nchannels = [\"hook\"]\n"
    );
    let config = Config::parse(Path::new("test.toml"), &toml, &|_| None).expect("config");
    let store = Store::connect("sqlite::memory:").await.expect("store");
    store.migrate().await.expect("migrate");
    let names: Vec<_> = config.checks.iter().map(|c| c.name.clone()).collect();
    let metrics = Metrics::new(&names);
    let outbox = Outbox::new(
        store.clone(),
        Arc::new(BTreeMap::new()),
        metrics.notifications.clone(),
    );
    let (mut engine, _sink, _handle, _inputs) = Engine::new(Parts {
        checks: config.checks.clone(),
        rules: config.policy_rules(),
        store: store.clone(),
        buffer: SampleBuffer::new(16),
        metrics,
        outbox: outbox.waker(),
        direct: outbox.direct(),
        queue: 16,
        deploys: config.deploys.clone(),
        ownership: crate::core::ownership::Ownership::all(config.checks.len()),
        place: Default::default(),
    });
    engine.restore().await.expect("restore");
    Fixture {
        engine,
        store,
        _outbox: outbox,
        t0,
    }
}

impl Fixture {
    fn at(&self, s: i64) -> DateTime<Utc> {
        self.t0 + chrono::Duration::seconds(s)
    }

    fn index(&self, check: &str) -> usize {
        self.engine
            .checks
            .iter()
            .position(|rt| *rt.config.name == *check)
            .expect("a configured check")
    }

    /// A sample of `check` at `s`: failing with `severity`, or green with `None`.
    async fn sample(&mut self, check: &str, severity: Option<Severity>, s: i64) {
        let at = self.at(s);
        let mut sample = match severity {
            Some(_) => Sample::down("503"),
            None => Sample::up("200 OK"),
        };
        sample.at = at;
        let verdict = Verdict::of(severity, sample.message.clone());
        let check = self.index(check);
        let obs = Observation {
            check,
            sample,
            verdict,
        };
        self.engine.observe(obs, at).await;
    }

    async fn tick(&mut self, s: i64) {
        self.engine.tick(self.at(s)).await;
    }

    async fn open_id(&self, check: &str) -> i64 {
        let open = self.store.open_incidents().await.expect("open incidents");
        open.iter().find(|i| i.check == check).expect("open").id
    }

    /// The timeline of incident `id`: its events' kinds.
    async fn timeline(&self, id: i64) -> Vec<String> {
        let events = self.store.incident_events(id).await.expect("events");
        events.into_iter().map(|e| e.kind).collect()
    }

    /// Every outbox row queued so far, oldest first.
    async fn queued(&self) -> Vec<(Notification, Option<DateTime<Utc>>)> {
        let far = self.at(10 * 86_400);
        let due = self.store.due_notifications(far, 1000).await.expect("due");
        due.entries
            .into_iter()
            .map(|e| (e.notification, e.batch_at))
            .collect()
    }

    async fn queued_kinds(&self) -> Vec<(String, EventKind)> {
        let queued = self.queued().await;
        queued
            .into_iter()
            .map(|(n, _)| (n.check, n.state))
            .collect()
    }
}

const WEB: &str = "[severities]\ncritical = { repeat = \"60s\" }\n\n[checks.web]\nkind = \"http\"\n\
                   url = \"http://127.0.0.1:9/\"\nfailures_before_alert = 1\nsuccesses_before_resolve = 1\n";

#[tokio::test]
async fn opens_reminds_each_window_until_acknowledged_then_resolves() {
    let mut f = fixture(WEB).await;
    f.sample("web", Some(Severity::Critical), 0).await;
    let id = f.open_id("web").await;
    f.tick(59).await;
    assert_eq!(f.timeline(id).await, ["opened"]);
    f.tick(60).await;
    f.tick(119).await;
    f.tick(120).await;
    assert_eq!(f.timeline(id).await, ["opened", "reminder", "reminder"]);
    let acked = f
        .engine
        .acknowledge(id, Some("ann".into()), f.at(130))
        .await
        .expect("acknowledged");
    assert_eq!(acked.acknowledged_at, Some(f.at(130)));
    for s in (180..=600).step_by(60) {
        f.tick(s).await;
    }
    f.sample("web", None, 610).await;
    assert_eq!(
        f.timeline(id).await,
        ["opened", "reminder", "reminder", "acknowledged", "resolved"],
        "no reminder once acknowledged"
    );
    let web = || "web".to_string();
    assert_eq!(
        f.queued_kinds().await,
        [
            (web(), EventKind::Opened),
            (web(), EventKind::Reminder),
            (web(), EventKind::Reminder),
            (web(), EventKind::Acknowledged),
            (web(), EventKind::Resolved),
        ]
    );
}

#[tokio::test]
async fn an_acknowledgement_made_elsewhere_stops_the_reminders() {
    let mut f = fixture(WEB).await;
    f.sample("web", Some(Severity::Critical), 0).await;
    let id = f.open_id("web").await;
    f.tick(60).await;
    assert_eq!(f.timeline(id).await, ["opened", "reminder"]);
    // Another instance on the same database acknowledges; this engine does not hear of it.
    let ack = IncidentChange::Acknowledge {
        id,
        by: Some("bob".into()),
        at: f.at(90),
    };
    f.store
        .record(ack, Vec::new())
        .await
        .expect("acknowledged elsewhere");
    // The next reminder is refused by the store, and the incident reloaded.
    f.tick(120).await;
    let web = f.index("web");
    let open = f.engine.checks[web].open.clone().expect("still open");
    assert_eq!(open.acknowledged_at, Some(f.at(90)));
    for s in (180..=600).step_by(60) {
        f.tick(s).await;
    }
    assert_eq!(f.timeline(id).await, ["opened", "reminder", "acknowledged"]);
    let web = || "web".to_string();
    assert_eq!(
        f.queued_kinds().await,
        [(web(), EventKind::Opened), (web(), EventKind::Reminder)],
        "no reminder after the acknowledgement"
    );
}

#[tokio::test]
async fn a_silenced_opening_is_recorded_then_paged_once_the_silence_ends() {
    let mut f = fixture(WEB).await;
    f.engine.policy.add_silence(Silence {
        id: 1,
        check: Some("web".into()),
        labels: BTreeMap::new(),
        starts_at: f.at(-10),
        ends_at: f.at(300),
        comment: String::new(),
        created_by: None,
    });
    f.sample("web", Some(Severity::Critical), 0).await;
    let id = f.open_id("web").await;
    for s in [60, 120, 299] {
        f.sample("web", Some(Severity::Critical), s).await;
        f.tick(s).await;
    }
    assert_eq!(f.timeline(id).await, ["opened"]);
    assert_eq!(f.queued_kinds().await, [], "held: no page, no reminder");
    f.tick(300).await;
    assert_eq!(f.timeline(id).await, ["opened", "notified"]);
    assert_eq!(
        f.queued_kinds().await,
        [("web".to_string(), EventKind::Opened)]
    );
    let incident = f.store.incident(id).await.expect("incident");
    assert_eq!(incident.notified_at, Some(f.at(300)));
}

#[tokio::test]
async fn low_incidents_wait_for_the_digest_and_go_out_in_one_batch() {
    let schedule = "0 0 3 * * *";
    let checks: String = ["docs", "blog"]
        .iter()
        .map(|name| {
            format!(
                "[checks.{name}]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\n\
                 down_severity = \"low\"\nfailures_before_alert = 1\nsuccesses_before_resolve = 1\n\n"
            )
        })
        .collect();
    let mut f = fixture(&format!(
        "[severities]\nlow = {{ digest = \"{schedule}\" }}\n\n{checks}"
    ))
    .await;
    let cron: Crontab = schedule.parse().expect("crontab");
    let due = (cron.next_after(f.t0).expect("a next digest") - f.t0).num_seconds();
    // docs stays low and open; blog comes and goes before the digest.
    f.sample("docs", Some(Severity::Low), 0).await;
    f.sample("blog", Some(Severity::Low), 1).await;
    let blog = f.open_id("blog").await;
    f.sample("blog", None, 2).await;
    f.tick(due - 1).await;
    assert_eq!(f.queued_kinds().await, [], "nothing before the digest");
    f.tick(due).await;
    let queued = f.queued().await;
    let kinds: Vec<_> = queued
        .iter()
        .map(|(n, _)| (n.check.as_str(), n.state))
        .collect();
    assert_eq!(
        kinds,
        [("blog", EventKind::Resolved), ("docs", EventKind::Opened)]
    );
    let gather = Some(f.at(due) + chrono::Duration::seconds(2));
    assert!(
        queued.iter().all(|(_, batch)| *batch == gather),
        "{queued:?}"
    );
    assert_eq!(f.timeline(blog).await, ["opened", "resolved", "notified"]);
    f.tick(due + 1).await;
    assert_eq!(f.queued().await.len(), 2, "once");
}

const APPS: &str = "[checks.web]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\nlabels = { app = \"web\" }\n\
                    failures_before_alert = 3\n\n[checks.api]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\n\
                    labels = { app = \"api\" }\nfailures_before_alert = 3\n\n\
                    [apps.web]\nrollback_hint = \"./rollback web\"\n";

/// Deployment v42 of `web` by ci at `at`.
fn v42_of_web(at: DateTime<Utc>) -> crate::core::deployment::Deployment {
    crate::core::deployment::Deployment {
        id: 7,
        app: "web".into(),
        version: "v42".into(),
        description: String::new(),
        by: "ci".into(),
        at,
    }
}

#[tokio::test]
async fn after_a_deployment_its_apps_checks_page_at_the_first_failure_naming_it() {
    let mut f = fixture(APPS).await;
    f.engine
        .command(Command::Deployed(v42_of_web(f.at(0))))
        .await;
    f.sample("web", Some(Severity::Critical), 180).await;
    f.sample("api", Some(Severity::Critical), 180).await;
    let queued = f.queued().await;
    assert_eq!(queued.len(), 1, "web at once, api not yet: {queued:?}");
    let opened = &queued[0].0;
    assert_eq!(
        (opened.check.as_str(), opened.state),
        ("web", EventKind::Opened)
    );
    assert_eq!(
        opened.message,
        "503\nstarted 3 min after deploy v42 of web (by ci)\nto roll back: ./rollback web"
    );
    let id = f.open_id("web").await;
    let stored = f.store.incident(id).await.expect("incident");
    assert_eq!(stored.message, opened.message, "the incident says so too");

    // Past the 10-minute watch, web needs its three failures again.
    f.sample("web", None, 590).await;
    f.sample("web", None, 591).await;
    assert!(
        f.store
            .open_incidents()
            .await
            .expect("open")
            .iter()
            .all(|i| i.check != "web")
    );
    f.sample("web", Some(Severity::Critical), 600).await;
    f.sample("web", Some(Severity::Critical), 601).await;
    assert_eq!(f.store.open_incidents().await.expect("open").len(), 0);
    f.sample("web", Some(Severity::Critical), 602).await;
    let web = f.open_id("web").await;
    let later = f.store.incident(web).await.expect("incident");
    assert_eq!(later.message, "503", "outside the watch: no note");
}

/// A stored sample of `check` at `at`, up, taking `latency_ms`.
fn stored(check: &str, at: DateTime<Utc>, latency_ms: f64) -> crate::store::SampleRow {
    crate::store::SampleRow {
        check: check.into(),
        at,
        duration_ms: latency_ms,
        up: true,
        color: Color::Green,
        status_code: Some(200),
        latency_ms,
        message: "200 OK".into(),
        metrics: None,
        region: None,
    }
}

#[tokio::test]
async fn a_slower_p95_after_a_deployment_opens_an_incident_until_it_is_back() {
    let mut f = fixture(APPS).await;
    // An hour at 100 ms, then 300 ms after the deployment at 0.
    let mut rows: Vec<_> = (0..60)
        .map(|m| stored("web", f.at(-3600 + m * 60), 100.0))
        .collect();
    rows.extend((0..20).map(|i| stored("web", f.at(i * 30), 300.0)));
    rows.extend((0..20).map(|i| stored("api", f.at(-3600 + i * 180), 100.0)));
    rows.extend((0..20).map(|i| stored("api", f.at(i * 30), 300.0)));
    f.store.insert_samples(&rows).await.expect("samples");
    f.engine
        .command(Command::Deployed(v42_of_web(f.at(0))))
        .await;
    f.tick(599).await;
    f.sample("web", None, 599).await;
    assert_eq!(f.queued().await.len(), 0, "the watch has not ended");
    f.tick(600).await;
    f.sample("web", None, 601).await;
    f.sample("api", None, 601).await;
    let queued = f.queued().await;
    assert_eq!(queued.len(), 1, "web, not api (not deployed): {queued:?}");
    let opened = &queued[0].0;
    assert_eq!(
        (opened.check.as_str(), opened.state, opened.severity),
        ("web", EventKind::Opened, Severity::High)
    );
    assert_eq!(
        opened.message,
        "p95 latency rose to 300 ms after deploy v42 of web (by ci), from 100 ms in the hour before\n\
         to roll back: ./rollback web"
    );

    let shown = f.engine.board.get("web").expect("web").message;
    assert_eq!(
        shown, opened.message,
        "the check shows the regression, not 200 OK"
    );

    // Still slow a minute on: it stands. Then the last ten minutes are fast again: lifted.
    f.tick(660).await;
    assert!(f.engine.regressions.contains_key(&f.index("web")));
    let fast: Vec<_> = (0..20)
        .map(|i| stored("web", f.at(700 + i * 30), 100.0))
        .collect();
    f.store.insert_samples(&fast).await.expect("samples");
    f.tick(1300).await;
    assert!(f.engine.regressions.is_empty(), "back within the band");
    f.sample("web", None, 1301).await;
    assert_eq!(f.engine.board.get("web").expect("web").message, "200 OK");
    f.sample("web", None, 1302).await;
    assert!(
        f.store.open_incidents().await.expect("open").is_empty(),
        "resolved"
    );
}

#[tokio::test]
async fn a_deployment_recorded_by_another_instance_is_read_from_the_store() {
    let mut f = fixture(APPS).await;
    // As another instance's API would, straight into the shared database.
    let other = crate::core::deployment::NewDeployment {
        app: "web".into(),
        version: "v42".into(),
        description: String::new(),
        by: "ci".into(),
        at: f.at(0),
    };
    f.store
        .record_deployment(&other)
        .await
        .expect("recorded elsewhere");
    f.tick(5).await;
    f.sample("web", Some(Severity::Critical), 6).await;
    assert!(
        f.queued().await.is_empty(),
        "not read yet: three failures needed"
    );
    f.sample("web", None, 7).await;
    // The first read was at the restore, on the real clock (at or after
    // t0): 21 s on, the next is due however slow the restore was.
    f.tick(21).await;
    f.sample("web", Some(Severity::Critical), 22).await;
    let queued = f.queued().await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert!(
        queued[0].0.message.ends_with(
            "\nstarted 22 s after deploy v42 of web (by ci)\nto roll back: ./rollback web"
        ),
        "{}",
        queued[0].0.message
    );
}

/// What [`Engine::reshape`] takes for `checks_and_policy` (as [`fixture`]'s).
fn reshape_parts(f: &Fixture, checks_and_policy: &str) -> Parts {
    let toml = format!(
        "{checks_and_policy}\n[channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n\n\
         [[routes]]\nchannels = [\"hook\"]\n"
    );
    let config = Config::parse(Path::new("test.toml"), &toml, &|_| None).expect("config");
    let names: Vec<_> = config.checks.iter().map(|c| c.name.clone()).collect();
    Parts {
        checks: config.checks.clone(),
        rules: config.policy_rules(),
        store: f.store.clone(),
        buffer: SampleBuffer::new(16),
        metrics: Metrics::new(&names),
        outbox: f._outbox.waker(),
        direct: f._outbox.direct(),
        queue: 16,
        deploys: config.deploys.clone(),
        ownership: crate::core::ownership::Ownership::all(config.checks.len()),
        place: Default::default(),
    }
}

#[tokio::test]
async fn a_reload_keeps_the_failure_count_of_an_unchanged_check_only() {
    let check = |name: &str, port: u16| {
        format!(
            "[checks.{name}]\nkind = \"http\"\nurl = \"http://127.0.0.1:{port}/\"\nfailures_before_alert = 3\n\n"
        )
    };
    let mut f = fixture(&format!("{}{}", check("web", 9), check("api", 9))).await;
    for s in [1, 2] {
        f.sample("web", Some(Severity::Critical), s).await;
        f.sample("api", Some(Severity::Critical), s).await;
    }
    assert!(f.queued().await.is_empty(), "two failures of three");

    // web unchanged, api's target changed, new added.
    let parts = reshape_parts(
        &f,
        &format!("{}{}{}", check("new", 9), check("web", 9), check("api", 10)),
    );
    let (engine, _sink, _handle, _inputs, reshaped) = f.engine.reshape(parts).await;
    f.engine = engine;
    assert_eq!(reshaped.added, ["api", "new"]);
    assert_eq!(reshaped.removed, ["api"]);
    assert_eq!(reshaped.kept[0], "web", "then keeper's own: {reshaped:?}");

    f.sample("web", Some(Severity::Critical), 3).await;
    f.sample("api", Some(Severity::Critical), 3).await;
    let queued = f.queued().await;
    assert_eq!(
        queued.len(),
        1,
        "web's third failure opens; api starts over: {queued:?}"
    );
    assert_eq!(queued[0].0.check, "web");
}
