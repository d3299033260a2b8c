//! Regions and quorum (DESIGN.md §11): one check probed from three regions,
//! each region an instance of its own on one PostgreSQL database that
//! reaches the target from an address of its own (127.0.0.2, .3, .4). The
//! target refuses the regions it is told to: one region down of three is no
//! page with `quorum = 2`; two down is one page naming both; a region whose
//! instance dies is unknown, reported, and counts neither way.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::cluster::{LEASE, Member};
use crate::support::config::{Check, TestConfig};
use crate::support::db::TestDb;
use crate::support::receiver::Receiver;
use crate::support::{wait_for, wait_until};

const REGIONS: [(&str, &str, &str); 3] = [
    ("fra", "keeper-fra", "127.0.0.2"),
    ("iad", "keeper-iad", "127.0.0.3"),
    ("syd", "keeper-syd", "127.0.0.4"),
];

/// An HTTP target answering 503 to the source addresses it refuses and 200
/// to the rest, counting requests per source address.
#[derive(Clone, Default)]
struct Firewall {
    refused: Arc<Mutex<BTreeSet<IpAddr>>>,
    seen: Arc<Mutex<BTreeMap<IpAddr, usize>>>,
}

impl Firewall {
    async fn start(&self) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, peer)) = listener.accept().await else {
                    return;
                };
                let me = me.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    *me.seen.lock().unwrap().entry(peer.ip()).or_default() += 1;
                    let refused = me.refused.lock().unwrap().contains(&peer.ip());
                    let reply: &[u8] = match refused {
                        true => b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 7\r\nconnection: close\r\n\r\nrefused",
                        false => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    };
                    let _ = stream.write_all(reply).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        addr
    }

    fn refuse(&self, sources: &[&str]) {
        let mut refused = self.refused.lock().unwrap();
        refused.clear();
        refused.extend(sources.iter().map(|s| s.parse::<IpAddr>().unwrap()));
    }

    /// Requests from each source address so far.
    fn seen(&self) -> BTreeMap<String, usize> {
        (self.seen.lock().unwrap().iter())
            .map(|(ip, n)| (ip.to_string(), *n))
            .collect()
    }

    /// Waits until every region probed `n` more times than in `from`.
    async fn probed_from_each(&self, from: &BTreeMap<String, usize>, n: usize) {
        let sources: Vec<&str> = REGIONS.iter().map(|(_, _, ip)| *ip).collect();
        self.probed_from(&sources, from, n).await;
    }

    /// Waits until each of `sources` probed `n` more times than in `from`.
    async fn probed_from(&self, sources: &[&str], from: &BTreeMap<String, usize>, n: usize) {
        let more = |now: &BTreeMap<String, usize>, ip: &str| {
            now.get(ip).copied().unwrap_or(0) >= from.get(ip).copied().unwrap_or(0) + n
        };
        wait_until("the regions probing", Duration::from_secs(60), || async {
            let now = self.seen();
            sources.iter().all(|ip| more(&now, ip))
        })
        .await;
    }
}

/// The instance of `region`: the check probed from `source`.
fn config(
    db: &TestDb,
    target: SocketAddr,
    hook: &Receiver,
    region: &str,
    source: &str,
) -> TestConfig {
    let regions = toml::Value::Array(REGIONS.iter().map(|(r, _, _)| (*r).into()).collect());
    TestConfig::new()
        .listen("127.0.0.1:0")
        .storage(db.url())
        .set("cluster", "region", region)
        .defaults("failures_before_alert", 2)
        .set("watchdog", "interval", "1s")
        .page(hook)
        .check(
            Check::http("web", format!("http://{target}/"))
                .interval("500ms")
                .set("regions", regions)
                .set("quorum", 2)
                .set("source_address", source),
        )
}

/// `(state, message)` of each notification about `web`.
fn pages(hook: &Receiver) -> Vec<(String, String)> {
    (hook.json_bodies().into_iter())
        .filter(|n| n["check"] == "web")
        .map(|n| {
            let state = n["state"].as_str().unwrap_or("?").to_string();
            (state, n["message"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

fn count(hook: &Receiver, state: &str) -> usize {
    pages(hook).iter().filter(|(s, _)| s == state).count()
}

/// `web` as instance `m` shows it.
async fn web(m: &Member) -> Value {
    check(m, "web").await
}

/// Check `name` as instance `m` shows it.
async fn check(m: &Member, name: &str) -> Value {
    let checks = m.get("/api/v1/checks").await;
    (checks.as_array().expect("checks").iter())
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} listed"))
}

#[tokio::test]
async fn a_check_pages_only_when_a_quorum_of_regions_sees_it_down_and_names_them() {
    crate::support::init();
    let db = TestDb::postgres().await;
    let firewall = Firewall::default();
    let target = firewall.start().await;
    let hook = Receiver::start().await;
    let mut members = Vec::new();
    for (region, name, source) in REGIONS {
        members.push(Member::start(name, config(&db, target, &hook, region, source)).await);
    }

    // Each region probes the check, from its own address.
    firewall.probed_from_each(&BTreeMap::new(), 3).await;
    let cluster = members[0].get("/api/v1/cluster").await;
    let owner = (cluster["checks"].as_array().unwrap().iter())
        .find(|c| c["check"] == "web")
        .cloned()
        .expect("web in the cluster view");
    for (region, name, _) in REGIONS {
        assert_eq!(owner["probers"][region], name, "{cluster}");
    }

    // One region refused: its samples fail, the others' do not; no page.
    firewall.refuse(&["127.0.0.2"]);
    let before = firewall.seen();
    wait_until(
        "fra seen down by the decider",
        Duration::from_secs(30),
        || async {
            web(&members[1]).await["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("down from fra; up from iad, syd"))
        },
    )
    .await;
    firewall.probed_from_each(&before, 6).await;
    assert_eq!(count(&hook, "opened"), 0, "{:?}", pages(&hook));
    assert_eq!(web(&members[2]).await["color"], "green");

    // Two refused: one page, naming both.
    firewall.refuse(&["127.0.0.2", "127.0.0.3"]);
    let opened = wait_for("the page", Duration::from_secs(30), || async {
        pages(&hook).into_iter().find(|(s, _)| s == "opened")
    })
    .await;
    assert!(
        opened
            .1
            .starts_with("down from fra, iad; up from syd (quorum 2 of 3)"),
        "{opened:?}"
    );
    firewall.probed_from_each(&firewall.seen(), 4).await;
    assert_eq!(count(&hook, "opened"), 1, "{:?}", pages(&hook));

    // All answer again: one resolve.
    firewall.refuse(&[]);
    wait_until("the resolve", Duration::from_secs(30), || async {
        count(&hook, "resolved") == 1
    })
    .await;

    // syd's instance dies: the region is unknown, shown as such, and
    // keeper's own check of its regions pages.
    let regions = check(&members[0], "keeper:regions").await;
    assert_eq!(regions["color"], "green", "{regions}");
    members[2].kill();
    wait_until("syd unknown", Duration::from_secs(60), || async {
        let cluster = members[0].get("/api/v1/cluster").await;
        let syd = (cluster["regions"].as_array().unwrap().iter())
            .find(|r| r["name"] == "syd")
            .cloned();
        let gone = syd.is_some_and(|r| r["members"].as_array().is_some_and(|m| m.is_empty()));
        let message = web(&members[0]).await["message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        gone && message.contains("unknown from syd")
    })
    .await;
    wait_until("keeper:regions red", Duration::from_secs(60), || async {
        let regions = check(&members[0], "keeper:regions").await;
        regions["color"] == "red"
            && regions["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("no live instance in region syd"))
    })
    .await;
    // With syd unknown, fra down alone is undecided: no page, no resolve.
    firewall.refuse(&["127.0.0.2"]);
    let before = firewall.seen();
    firewall
        .probed_from(&["127.0.0.2", "127.0.0.3"], &before, 6)
        .await;
    assert_eq!(count(&hook, "opened"), 1, "{:?}", pages(&hook));
    println!("LEASE {LEASE}; pages: {:?}", pages(&hook));

    // Samples are stored with their region.
    let regions = db
        .count("(SELECT DISTINCT region FROM samples WHERE check_name = 'web' AND region IS NOT NULL) r")
        .await;
    assert_eq!(regions, 3);
    for m in &mut members {
        m.kill();
    }
}

/// A check with `regions` and `extra` keys, on PostgreSQL.
fn regional(extra: &str) -> String {
    format!(
        "[storage]\nurl = \"postgres://keeper@127.0.0.1/keeper\"\n\n\
         [checks.web]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\n{extra}\n"
    )
}

#[test]
fn regions_and_quorum_are_checked_where_they_are_written() {
    use crate::support::{config_error, parse_config};
    let ok = parse_config(&regional("regions = [\"fra\", \"iad\", \"syd\"]")).expect("valid");
    let regions = ok.checks[0].regions.clone().expect("regions");
    assert_eq!(regions.names, ["fra", "iad", "syd"]);
    assert_eq!(regions.quorum, 2, "a majority by default");
    assert_eq!(
        config_error(&regional("regions = [\"fra\", \"iad\"]\nquorum = 3")),
        "keeper.toml:8:10: checks.web.quorum: must be between 1 and the 2 regions listed"
    );
    assert_eq!(
        config_error(&regional("quorum = 1")),
        "keeper.toml:7:10: checks.web.quorum: quorum needs regions (the regions to count it in)"
    );
    assert_eq!(
        config_error(&regional("regions = [\"fra\", \"fra\"]")),
        "keeper.toml:7:19: checks.web.regions: \"fra\" is listed twice"
    );
    let bad = config_error(&regional("regions = [\"fr a\"]"));
    assert!(
        bad.starts_with("keeper.toml:7:12: checks.web.regions: \"fr a\" must be letters"),
        "{bad}"
    );
    assert!(config_error(&regional("regions = []")).contains("list at least one region"));
}

/// SQLite is for one instance: a check to probe from several regions is
/// refused by `check-config` (and `run`), naming the check.
#[test]
fn regions_on_sqlite_are_refused_naming_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[checks.web]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nregions = [\"fra\", \"iad\"]\n";
    let out = crate::support::keeper_on_config(dir.path(), &["check-config"], text);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "keeper.toml:1:1: checks.web: regions need several instances on one PostgreSQL database"
        ),
        "{stderr}"
    );
}
