//! Step tests of a check with regions: this instance probes from `fra` and
//! decides the check; the other regions' states come as from their leases.

use super::*;
use crate::state::Seen;

const REGIONAL: &str = "[checks.web]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\n\
                        interval = \"10s\"\nregions = [\"fra\", \"iad\", \"syd\"]\n\
                        failures_before_alert = 2\nsuccesses_before_resolve = 1\n";

/// A region's state of `web` at `s`, as its prober published it.
fn view(f: &Fixture, color: Color, s: i64) -> Seen {
    Seen {
        color,
        severity: (color == Color::Red).then_some(Severity::Critical),
        message: if color == Color::Red { "503" } else { "200 OK" }.into(),
        since: None,
        last_run_at: Some(f.at(s)),
        latency_ms: None,
        incident: None,
        streaks: Default::default(),
    }
}

async fn fixture_in_fra() -> Fixture {
    let mut f = fixture(REGIONAL).await;
    f.engine.place = Place {
        region: Some("fra".into()),
        lease: Duration::from_secs(15),
    };
    f
}

#[tokio::test]
async fn the_decider_pages_once_a_quorum_of_regions_fails_after_each_regions_hysteresis() {
    let mut f = fixture_in_fra().await;
    let web = f.index("web");
    // fra's own samples: the first failure is inside its hysteresis.
    f.sample("web", Some(Severity::Critical), 1).await;
    let iad = view(&f, Color::Red, 1);
    f.engine
        .regions_seen(vec![(web, "iad".into(), iad)], f.at(1))
        .await;
    assert!(f.queued_kinds().await.is_empty(), "fra is not red yet");
    // fra's second failure: two regions red of a quorum of two.
    f.sample("web", Some(Severity::Critical), 11).await;
    let queued = f.queued().await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].0.state, EventKind::Opened);
    assert_eq!(
        queued[0].0.message,
        "down from fra, iad; unknown from syd (quorum 2 of 3) — fra: 503"
    );
    // iad recovers and syd is up: fra alone is below the quorum.
    let iad = view(&f, Color::Green, 12);
    let syd = view(&f, Color::Green, 12);
    f.engine
        .regions_seen(
            vec![(web, "iad".into(), iad), (web, "syd".into(), syd)],
            f.at(12),
        )
        .await;
    assert_eq!(
        f.queued_kinds().await,
        [
            ("web".to_string(), EventKind::Opened),
            ("web".to_string(), EventKind::Resolved)
        ]
    );
}

#[tokio::test]
async fn an_older_state_is_ignored_and_a_stale_region_is_unknown() {
    let mut f = fixture_in_fra().await;
    let web = f.index("web");
    let red = |f: &Fixture, s| view(f, Color::Red, s);
    // iad and syd red long ago (past two runs and two renewals: 50 s), then
    // an older state of iad arriving late changes nothing.
    f.engine
        .regions_seen(
            vec![
                (web, "iad".into(), red(&f, 0)),
                (web, "syd".into(), red(&f, 0)),
            ],
            f.at(0),
        )
        .await;
    assert_eq!(f.queued_kinds().await.len(), 1, "iad and syd red: opened");
    let id = f.open_id("web").await;
    f.engine
        .regions_seen(
            vec![(web, "iad".into(), view(&f, Color::Green, -5))],
            f.at(1),
        )
        .await;
    assert_eq!(f.queued_kinds().await.len(), 1, "an older state is ignored");
    // 100 s on, iad and syd are stale: fra up alone cannot resolve it.
    f.sample("web", None, 100).await;
    assert_eq!(f.queued_kinds().await.len(), 1, "undecided: still open");
    assert_eq!(f.open_id("web").await, id);
    let shown = f.engine.board.get("web").expect("web");
    assert_eq!(
        shown.message,
        "up from fra; unknown from iad, syd (quorum 2 of 3)"
    );
}
