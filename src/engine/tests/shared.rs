//! Engine steps with shared state: what another instance on the database
//! changed (an acknowledgement, a silence) reaching this one.

use super::*;

/// Opens an incident of `web` at `s` as another instance would, straight in the store.
async fn opened_elsewhere(f: &Fixture, s: i64) -> i64 {
    let open = crate::incident::IncidentChange::Open {
        check: "web".into(),
        severity: Severity::Critical,
        color: Color::Red,
        message: "down".into(),
        at: f.at(s),
        notify: true,
    };
    f.store.record(open, Vec::new()).await.expect("opened").id
}

/// Acknowledges incident `id` at `s` as another instance would, straight in the store.
async fn acknowledged_elsewhere(f: &Fixture, id: i64, s: i64) {
    let ack = crate::incident::IncidentChange::Acknowledge {
        id,
        by: Some("bob".into()),
        at: f.at(s),
    };
    f.store
        .record(ack, Vec::new())
        .await
        .expect("acknowledged elsewhere");
}

#[tokio::test]
async fn an_acknowledgement_made_elsewhere_stops_the_reminders_once_reread() {
    let mut f = fixture(WEB).await;
    f.sample("web", Some(Severity::Critical), 0).await;
    let id = f.open_id("web").await;
    acknowledged_elsewhere(&f, id, 30).await;
    f.engine.reread(Reread::Incident(id)).await;
    let web = f.index("web");
    let open = f.engine.checks[web].open.as_ref().expect("still open");
    assert_eq!(open.acknowledged_at, Some(f.at(30)));
    for s in (60..=300).step_by(60) {
        f.tick(s).await;
    }
    assert_eq!(f.timeline(id).await, ["opened", "acknowledged"]);
}

#[tokio::test]
async fn an_acknowledgement_seen_only_in_the_store_refuses_the_reminder() {
    let mut f = fixture(WEB).await;
    f.sample("web", Some(Severity::Critical), 0).await;
    let id = f.open_id("web").await;
    acknowledged_elsewhere(&f, id, 30).await;
    // Not told: the reminder is refused by the store, and the engine reloads.
    f.tick(60).await;
    f.tick(120).await;
    assert_eq!(f.timeline(id).await, ["opened", "acknowledged"]);
    assert_eq!(f.queued_kinds().await.len(), 1, "the opening only");
}

#[tokio::test]
async fn an_incident_opened_elsewhere_is_acknowledged_here_and_left_to_its_owner() {
    let mut f = fixture(WEB).await;
    let id = opened_elsewhere(&f, 0).await;
    let acked = (f.engine)
        .acknowledge(id, Some("ann".into()), f.at(10))
        .await
        .expect("acknowledged");
    assert_eq!(acked.acknowledged_at, Some(f.at(10)));
    assert_eq!(f.timeline(id).await, ["opened", "acknowledged"]);
    assert_eq!(
        f.queued_kinds().await,
        [("web".to_string(), EventKind::Acknowledged)]
    );
    let web = f.index("web");
    assert!(f.engine.checks[web].open.is_none(), "the owner holds it");
}

#[tokio::test]
async fn a_silence_created_elsewhere_holds_the_page_once_reread() {
    let mut f = fixture(WEB).await;
    let silence = crate::incident::NewSilence {
        check: Some("web".into()),
        labels: BTreeMap::new(),
        starts_at: f.at(0),
        ends_at: f.at(3600),
        comment: String::new(),
        created_by: None,
    };
    f.store
        .create_silence(&silence)
        .await
        .expect("silenced elsewhere");
    f.engine.reread(Reread::Silences).await;
    f.sample("web", Some(Severity::Critical), 1).await;
    f.tick(2).await;
    let id = f.open_id("web").await;
    assert_eq!(f.timeline(id).await, ["opened"]);
    assert!(f.queued().await.is_empty(), "held by the silence");
}

/// A check taken over from another instance carries on its hysteresis: one
/// failure counted there and one here open the incident of a check that
/// alerts at the second failure.
#[tokio::test]
async fn a_check_taken_over_keeps_the_failures_counted_by_its_last_owner() {
    let two = WEB.replace("failures_before_alert = 1", "failures_before_alert = 2");
    let mut f = fixture(&two).await;
    let web = f.index("web");
    let seen = crate::state::Seen {
        color: Color::Green,
        severity: None,
        message: "503".into(),
        since: None,
        last_run_at: Some(f.at(0)),
        latency_ms: None,
        incident: None,
        streaks: crate::state::Streaks {
            failing: 1,
            green: 0,
        },
    };
    f.engine
        .adopt(vec![(web, Some(seen))])
        .await
        .expect("adopted");
    f.sample("web", Some(Severity::Critical), 10).await;
    assert_eq!(
        f.queued_kinds().await,
        [("web".to_string(), EventKind::Opened)],
        "the second failure in a row, counted over two instances"
    );
}
