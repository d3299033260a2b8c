//! Several keeper processes on one PostgreSQL database (DESIGN.md §11):
//! each check probed by one instance, a killed instance's checks taken over
//! and given back when it returns, one page per incident however many
//! instances run, and an acknowledgement through any instance heard by all.
//!
//! Every instance's checks send a header naming the instance, so the target
//! tells who probed what.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::app::spawn_app;
use crate::support::config::{Check, TestConfig, table};
use crate::support::db::{Backend, TestDb};
use crate::support::process::Process;
use crate::support::receiver::Receiver;
use crate::support::target::Target;
use crate::support::{wait_for, wait_until};

const TOKEN: &str = "cluster-test-token";
/// Short, so takeovers come within seconds.
pub(crate) const LEASE: &str = "3s";

/// One keeper process of a test cluster.
pub(crate) struct Member {
    pub(crate) name: &'static str,
    config: PathBuf,
    process: Option<Process>,
    pub(crate) base: String,
    _dir: tempfile::TempDir,
}

impl Member {
    /// Starts instance `name` on `config` (the cluster section and the
    /// instance header added to every check).
    pub(crate) async fn start(name: &'static str, config: TestConfig) -> Member {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = config
            .set("cluster", "name", name)
            .set("cluster", "lease", LEASE)
            .write_in(dir.path());
        let mut process = Process::start(&config).await;
        let base = process.base().await;
        Member {
            name,
            config,
            process: Some(process),
            base,
            _dir: dir,
        }
    }

    pub(crate) fn kill(&mut self) {
        if let Some(p) = self.process.take() {
            p.kill();
        }
    }

    async fn restart(&mut self) {
        let mut process = Process::start(&self.config).await;
        self.base = process.base().await;
        self.process = Some(process);
    }

    pub(crate) async fn get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.base);
        let resp = reqwest::get(&url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        resp.json().await.expect("a JSON answer")
    }

    /// Check → owner, as this instance sees the cluster.
    async fn owners(&self) -> BTreeMap<String, Option<String>> {
        let cluster = self.get("/api/v1/cluster").await;
        (cluster["checks"].as_array().expect("checks"))
            .iter()
            .filter(|c| !c["check"].as_str().unwrap().starts_with("keeper:"))
            .map(|c| {
                let owner = c["owner"].as_str().map(String::from);
                (c["check"].as_str().unwrap().to_string(), owner)
            })
            .collect()
    }
}

/// `n` http checks `c00…` on `target` (path `/cNN`), every `interval`, each
/// sending `x-instance: NAME`.
fn checks_config(db: &TestDb, target: &Target, n: usize, interval: &str, name: &str) -> TestConfig {
    let mut config = TestConfig::new()
        .listen("127.0.0.1:0")
        .storage(db.url())
        .api_token(TOKEN);
    for i in 0..n {
        let check = Check::http(&format!("c{i:02}"), target.url(&format!("/c{i:02}")))
            .interval(interval)
            .set("headers", table(&[("x-instance", name)]));
        config = config.check(check);
    }
    config
}

/// Waits until every instance of `members` sees the same owner for each of
/// `n` checks, each owner one of them, every one of them owning some: the
/// ownership has settled. Returns it.
async fn settled(members: &[&Member], n: usize) -> BTreeMap<String, String> {
    wait_for(
        "the ownership to settle",
        Duration::from_secs(90),
        || async {
            let mut seen = Vec::new();
            for m in members {
                seen.push(m.owners().await);
            }
            let first = seen[0].clone();
            let names: BTreeSet<&str> = members.iter().map(|m| m.name).collect();
            let owners: BTreeMap<String, String> = (first.iter())
                .filter_map(|(c, o)| Some((c.clone(), o.clone()?)))
                .collect();
            let holders: BTreeSet<&str> = owners.values().map(String::as_str).collect();
            let fine = seen.iter().all(|s| *s == first) && owners.len() == n && holders == names;
            fine.then_some(owners)
        },
    )
    .await
}

/// Which instances probed each path since request number `from`.
fn probers(target: &Target, from: usize) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in target.recorded().into_iter().skip(from) {
        let instance = (r.headers.get("x-instance"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?")
            .to_string();
        out.entry(r.path.trim_start_matches('/').to_string())
            .or_default()
            .insert(instance);
    }
    out
}

/// Waits until each of the `n` checks was probed three times from now (a
/// second instance probing one would have had two intervals to show);
/// returns where the requests from now start.
async fn probed_thrice(target: &Target, n: usize) -> usize {
    let from = target.recorded().len();
    wait_until(
        "every check probed three times",
        Duration::from_secs(60),
        || async {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for r in target.recorded().into_iter().skip(from) {
                *counts.entry(r.path).or_default() += 1;
            }
            counts.len() == n && counts.values().all(|&c| c >= 3)
        },
    )
    .await;
    from
}

#[tokio::test]
async fn each_check_is_probed_by_one_instance_taken_over_when_it_dies_and_given_back() {
    crate::support::init();
    let db = TestDb::postgres().await;
    let target = Target::start().await;
    const N: usize = 100;
    let mut members = Vec::new();
    for name in ["a", "b", "c"] {
        members.push(Member::start(name, checks_config(&db, &target, N, "1s", name)).await);
    }
    let owners = settled(&members.iter().collect::<Vec<_>>(), N).await;

    // Settled: every check is probed a few times over, each by its owner alone.
    let from = probed_thrice(&target, N).await;
    let seen = probers(&target, from);
    for (check, owner) in &owners {
        let by = seen
            .get(check)
            .unwrap_or_else(|| panic!("{check} was not probed: {seen:?}"));
        assert_eq!(
            by,
            &BTreeSet::from([owner.clone()]),
            "{check} owned by {owner}"
        );
    }

    // b dies: its checks are probed by a or c again.
    let of_b: Vec<&String> = owners
        .iter()
        .filter(|(_, o)| *o == "b")
        .map(|(c, _)| c)
        .collect();
    assert!(!of_b.is_empty());
    let from = target.recorded().len();
    let killed = Instant::now();
    members[1].kill();
    wait_until(
        "b's checks probed by the others",
        Duration::from_secs(60),
        || async {
            let seen = probers(&target, from);
            of_b.iter().all(|c| {
                seen.get(*c)
                    .is_some_and(|by| by.iter().any(|i| i == "a" || i == "c"))
            })
        },
    )
    .await;
    println!(
        "takeover after SIGKILL: {:?} (lease {LEASE}, interval 1s)",
        killed.elapsed()
    );
    let survivors = [&members[0], &members[2]];
    let after = wait_for(
        "b's checks owned by a or c",
        Duration::from_secs(30),
        || async {
            let owners = survivors[0].owners().await;
            owners
                .values()
                .all(|o| matches!(o.as_deref(), Some("a" | "c")))
                .then_some(owners)
        },
    )
    .await;
    assert_eq!(after.len(), N);

    // b returns: it takes its share back, and every check is still probed by one.
    members[1].restart().await;
    let back = settled(&members.iter().collect::<Vec<_>>(), N).await;
    assert_eq!(
        back, owners,
        "rendezvous hashing gives b the same share back"
    );
    let from = probed_thrice(&target, N).await;
    let seen = probers(&target, from);
    for (check, owner) in &back {
        assert_eq!(
            seen.get(check),
            Some(&BTreeSet::from([owner.clone()])),
            "{check}"
        );
    }
}

/// `(state, incident)` of each notification about check `c00` the hook
/// received (keeper's own checks, run by every instance, may page too on a
/// loaded machine: a lagging scheduler).
fn states(hook: &Receiver) -> Vec<(String, i64)> {
    (hook.json_bodies().into_iter())
        .filter(|n| n["check"] == "c00")
        .map(|n| {
            let state = n["state"].as_str().unwrap_or("?").to_string();
            (state, n["incident"].as_i64().unwrap_or(-1))
        })
        .collect()
}

fn count(hook: &Receiver, state: &str) -> usize {
    states(hook).iter().filter(|(s, _)| s == state).count()
}

#[tokio::test]
async fn three_instances_page_once_remind_once_and_hear_an_acknowledgement_made_anywhere() {
    crate::support::init();
    let db = TestDb::postgres().await;
    let target = Target::start().await;
    target.set_status(503);
    let hook = Receiver::start().await;
    let mut members = Vec::new();
    for name in ["a", "b", "c"] {
        let config = checks_config(&db, &target, 1, "500ms", name)
            .defaults("failures_before_alert", 1)
            .severity("critical", "repeat", "2s")
            .page(&hook);
        members.push(Member::start(name, config).await);
    }
    let opened = wait_for("the opening", Duration::from_secs(60), || async {
        states(&hook).into_iter().find(|(s, _)| s == "opened")
    })
    .await;
    let id = opened.1;
    // Reminders every 2 s from one instance: over 9 s at most five, not three times as many.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let reminders = count(&hook, "reminder");
    assert!(
        (1..=5).contains(&reminders),
        "{reminders} reminders in 9 s: {:?}",
        states(&hook)
    );
    assert_eq!(count(&hook, "opened"), 1, "{:?}", states(&hook));

    // Acknowledged through an instance that does not own the check.
    let owner = members[0].owners().await["c00"].clone().expect("c00 owned");
    let other = members.iter().find(|m| m.name != owner).unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/incidents/{id}/ack", other.base))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"by": "alice"}))
        .send()
        .await
        .expect("ack");
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{body}");
    println!(
        "ack answer: {body}; notifications so far: {:?}",
        states(&hook)
    );
    wait_until(
        "the acknowledgement heard",
        Duration::from_secs(10),
        || async { count(&hook, "acknowledged") == 1 },
    )
    .await;
    let before = count(&hook, "reminder");
    tokio::time::sleep(Duration::from_secs(6)).await;
    // One reminder may have been on its way as the acknowledgement came.
    assert!(
        count(&hook, "reminder") <= before + 1,
        "{:?}",
        states(&hook)
    );

    target.set_status(200);
    wait_until("the resolve", Duration::from_secs(30), || async {
        count(&hook, "resolved") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&hook, "opened"), 1, "{:?}", states(&hook));
    assert_eq!(count(&hook, "resolved"), 1, "{:?}", states(&hook));
    assert!(
        states(&hook).iter().all(|(_, i)| *i == id),
        "{:?}",
        states(&hook)
    );
    for m in &mut members {
        m.kill();
    }
}

#[tokio::test]
async fn alone_on_sqlite_an_instance_owns_every_check() {
    crate::support::init();
    let target = Target::start().await;
    let config = TestConfig::new()
        .set("cluster", "name", "solo")
        .check(Check::http("web", target.url("/")).interval("1s"));
    let app = spawn_app(Backend::Sqlite, config).await;
    let cluster = app.get_json("/api/v1/cluster").await;
    assert_eq!(cluster["backend"], "sqlite", "{cluster}");
    assert_eq!(cluster["instance"], "solo");
    assert_eq!(cluster["members"].as_array().unwrap().len(), 1, "{cluster}");
    let web = (cluster["checks"].as_array().unwrap())
        .iter()
        .find(|c| c["check"] == "web")
        .cloned();
    assert_eq!(web.map(|w| w["owner"].clone()), Some(Value::from("solo")));
    // Every check (keeper's own too) is its own, as many as it counts.
    let checks = cluster["checks"].as_array().unwrap();
    assert!(checks.iter().all(|c| c["owner"] == "solo"), "{cluster}");
    assert_eq!(
        cluster["members"][0]["checks_owned"],
        checks.len(),
        "{cluster}"
    );
    let metrics = app.get_text("/metrics").await;
    assert!(metrics.contains("keeper_cluster_members 1"), "{metrics}");
    assert!(metrics.contains("keeper_checks_owned "), "{metrics}");
}
