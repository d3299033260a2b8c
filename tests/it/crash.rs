//! The crash campaign: keeper SIGKILLed at random moments, again and again,
//! while its targets fail and recover and its channel flaps. Whatever the
//! moment of each kill, every incident's opening and resolve reach the
//! receiver at least once; duplicates (a kill between send and mark) are
//! counted and printed (`cargo test crash -- --nocapture`), not forbidden.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::RngExt;

use crate::support::config::{Check, TestConfig};
use crate::support::process::Process;
use crate::support::receiver::Receiver;
use crate::support::target::Target;
use crate::support::wait_for;

/// SIGKILLs in one campaign.
const KILLS: usize = 24;
const CHECKS: [&str; 3] = ["alpha", "beta", "gamma"];

fn write_config(
    dir: &std::path::Path,
    targets: &[Arc<Target>],
    hook: &Receiver,
) -> std::path::PathBuf {
    let mut config = TestConfig::new()
        .listen("127.0.0.1:0")
        .storage(format!("sqlite://{}", dir.join("keeper.db").display()))
        .defaults("interval", "100ms")
        .defaults("failures_before_alert", 1)
        .defaults("successes_before_resolve", 1)
        .delivery("max_backoff", "2s");
    for (name, target) in CHECKS.iter().zip(targets) {
        config = config.check(Check::http(name, target.url("/")));
    }
    config.page(hook).write_in(dir)
}

/// Flips between good and bad every 0.2–1.5 s until `stop`.
fn flap(
    stop: Arc<AtomicBool>,
    mut set: impl FnMut(bool) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut good = true;
        while !stop.load(Ordering::Relaxed) {
            let wait = rand::rng().random_range(200..1500);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            good = !good;
            set(good);
        }
    })
}

#[tokio::test]
async fn sigkill_at_random_moments_loses_no_opening_and_no_resolve() {
    crate::support::init();
    let dir = tempfile::tempdir().unwrap();
    let mut targets = Vec::new();
    for _ in CHECKS {
        targets.push(Arc::new(Target::start().await));
    }
    let hook = Arc::new(Receiver::start().await);
    let config = write_config(dir.path(), &targets, &hook);

    let stop = Arc::new(AtomicBool::new(false));
    let mut flappers = Vec::new();
    for target in &targets {
        let target = target.clone();
        flappers.push(flap(stop.clone(), move |good| {
            target.set_status(if good { 200 } else { 503 })
        }));
    }
    let channel = hook.clone();
    flappers.push(flap(stop.clone(), move |good| {
        channel.set_response(if good { 200 } else { 503 }, "flapping")
    }));

    for _ in 0..KILLS {
        // Not waiting for it to listen: a kill may land during start-up.
        let keeper = Process::spawn(&config);
        let alive = rand::rng().random_range(150..1500);
        tokio::time::sleep(Duration::from_millis(alive)).await;
        keeper.kill();
    }
    stop.store(true, Ordering::Relaxed);
    for f in flappers {
        let _ = f.await;
    }
    for target in &targets {
        target.set_status(200);
    }
    hook.set_response(200, "ok");

    // The last run, undisturbed: everything recorded must reach the receiver.
    let mut last = Process::start(&config).await;
    let client = reqwest::Client::new();
    let url = format!(
        "{}/api/v1/incidents?state=all&limit=1000",
        last.base().await
    );
    let delivered = || {
        hook.requests()
            .iter()
            .filter(|r| (200..300).contains(&r.replied))
            .map(|r| r.json())
            .collect::<Vec<_>>()
    };
    let incidents: Vec<i64> = wait_for(
        "every incident resolved and heard of",
        Duration::from_secs(120),
        || {
            let client = client.clone();
            let url = url.clone();
            let delivered = delivered();
            async move {
                let all: serde_json::Value =
                    client.get(&url).send().await.ok()?.json().await.ok()?;
                let ours: Vec<&serde_json::Value> = all
                    .as_array()?
                    .iter()
                    .filter(|i| CHECKS.contains(&i["check"].as_str().unwrap_or("")))
                    .collect();
                if ours.iter().any(|i| i["state"] != "resolved") {
                    return None;
                }
                let heard: BTreeSet<(i64, String)> = delivered
                    .iter()
                    .filter_map(|b| {
                        Some((b["incident"].as_i64()?, b["state"].as_str()?.to_string()))
                    })
                    .collect();
                let ids: Vec<i64> = ours.iter().filter_map(|i| i["id"].as_i64()).collect();
                ids.iter()
                    .all(|id| {
                        heard.contains(&(*id, "opened".into()))
                            && heard.contains(&(*id, "resolved".into()))
                    })
                    .then_some(ids)
            }
        },
    )
    .await;

    let mut deliveries: BTreeMap<(i64, String), usize> = BTreeMap::new();
    for body in delivered() {
        if let (Some(id), Some(state)) = (body["incident"].as_i64(), body["state"].as_str()) {
            *deliveries.entry((id, state.to_string())).or_default() += 1;
        }
    }
    let duplicates: usize = deliveries.values().map(|n| n - 1).sum();
    let total: usize = deliveries.values().sum();
    println!(
        "crash campaign: {KILLS} SIGKILLs, {} incidents, every opening and resolve delivered; \
         {total} deliveries, {duplicates} duplicates; {} attempts refused by the flapping channel",
        incidents.len(),
        hook.requests().iter().filter(|r| r.replied >= 300).count(),
    );
    assert!(
        incidents.len() >= 3,
        "the campaign made too few incidents to mean anything: {incidents:?}"
    );
}
