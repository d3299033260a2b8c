//! What every instance shows of the cluster (`GET /api/v1/cluster`): the
//! members, which instance decides each check and, for a check with
//! regions, which probes it from each region; every region with its live
//! members, so a region nobody probes from shows.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{ByCheck, Cluster, leased};
use crate::config::Config;
use crate::core::CheckName;
use crate::core::ownership::DUTY_REGION;
use crate::metrics::Metrics;
use crate::store::{Lease, Member};

/// What the API shows of the cluster (`GET /api/v1/cluster`): cheap to
/// clone, refreshed at each renewal.
#[derive(Clone, Debug, Default)]
pub struct View(Arc<RwLock<Shown>>);

/// A member's last snapshot; or, alone, the snapshot without its checks
/// and their names, each check's row made when asked (all owned by this
/// instance): 10,000 rows held for nothing were 1.2 MB.
#[derive(Debug, Default)]
struct Shown {
    snapshot: Snapshot,
    alone: Option<Vec<CheckName>>,
}

impl View {
    pub fn snapshot(&self) -> Snapshot {
        let Ok(shown) = self.0.read() else {
            return Snapshot::default();
        };
        let mut snapshot = shown.snapshot.clone();
        if let Some(checks) = &shown.alone {
            let owner = Some(snapshot.instance.clone());
            snapshot.checks = (checks.iter())
                .map(|check| Owner {
                    check: check.to_string(),
                    owner: owner.clone(),
                    expires_at: None,
                    probers: BTreeMap::new(),
                })
                .collect();
        }
        snapshot
    }

    pub(super) fn set(&self, snapshot: Snapshot) {
        self.show(Shown {
            snapshot,
            alone: None,
        });
    }

    /// An instance alone on SQLite ([`alone`]): it owns `checks`.
    pub(super) fn set_alone(&self, snapshot: Snapshot, checks: Vec<CheckName>) {
        self.show(Shown {
            snapshot,
            alone: Some(checks),
        });
    }

    fn show(&self, shown: Shown) {
        if let Ok(mut s) = self.0.write() {
            *s = shown;
        }
    }
}

/// The cluster as this instance last saw it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    /// This instance's name.
    pub instance: String,
    pub region: Option<String>,
    /// `postgres` (a cluster of one or more), or `sqlite` (always alone).
    pub backend: &'static str,
    pub lease_seconds: f64,
    /// When the leases were last read; `None` alone.
    pub updated_at: Option<DateTime<Utc>>,
    pub members: Vec<MemberView>,
    /// Each check's owner (`None`: nobody holds a live lease on it).
    pub checks: Vec<Owner>,
    /// Every region a member is in or a check is probed from, with its live
    /// members: one without any is unknown to the checks probed from it.
    pub regions: Vec<RegionView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RegionView {
    pub name: String,
    pub members: Vec<String>,
    /// Checks probed from it.
    pub checks: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct MemberView {
    pub name: String,
    pub region: Option<String>,
    pub version: String,
    pub started_at: Option<DateTime<Utc>>,
    pub seen_at: Option<DateTime<Utc>>,
    /// Live leases on checks it holds.
    pub checks_owned: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Owner {
    pub check: String,
    /// The instance deciding it (and probing it, unless it has regions).
    pub owner: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// A check with regions: the instance probing it from each region.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub probers: BTreeMap<String, Option<String>>,
}

/// What an instance alone shows: itself the only member, owning everything.
pub(super) fn alone(config: &Config, metrics: &Metrics) -> Snapshot {
    metrics.cluster_members.set(1);
    metrics.checks_owned.set(config.checks.len() as i64);
    Snapshot {
        instance: config.cluster.name.clone(),
        region: config.cluster.region.clone(),
        backend: "sqlite",
        lease_seconds: config.cluster.lease.as_secs_f64(),
        updated_at: None,
        members: vec![MemberView {
            name: config.cluster.name.clone(),
            region: config.cluster.region.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: None,
            seen_at: None,
            checks_owned: config.checks.len(),
        }],
        // Made when asked (`View::set_alone`).
        checks: Vec::new(),
        regions: Vec::new(),
    }
}

impl Cluster {
    pub(super) fn snapshot(
        &self,
        members: &[Member],
        all: &[Lease],
        leases: &ByCheck<'_>,
    ) -> Snapshot {
        let probers = probers(all);
        let owner_of = |check: &str| leases.get(check).copied().filter(|l| l.live);
        Snapshot {
            instance: self.me.name.clone(),
            region: self.me.region.clone(),
            backend: "postgres",
            lease_seconds: self.me.lease.as_secs_f64(),
            updated_at: Some(Utc::now()),
            members: (members.iter())
                .map(|m| MemberView {
                    name: m.name.clone(),
                    region: m.region.clone(),
                    version: m.version.clone(),
                    started_at: Some(m.started_at),
                    seen_at: Some(m.seen_at),
                    checks_owned: (leases.values())
                        .filter(|l| l.live && l.owner == m.name)
                        .count(),
                })
                .collect(),
            checks: (self.checks.iter().enumerate())
                .map(|(i, c)| {
                    let lease = owner_of(c);
                    Owner {
                        check: c.to_string(),
                        owner: match leased(c) {
                            true => lease.map(|l| l.owner.clone()),
                            false => Some(self.me.name.clone()),
                        },
                        expires_at: lease.map(|l| l.expires_at),
                        probers: (self.regions[i].iter().flat_map(|r| &r.names))
                            .map(|r| {
                                let by = probers.get(&(&**c, r.as_str())).map(|o| o.to_string());
                                (r.clone(), by)
                            })
                            .collect(),
                    }
                })
                .collect(),
            regions: self.region_views(members),
        }
    }

    /// Every region members are in or checks are probed from, with its
    /// live members and how many checks are probed from it.
    fn region_views(&self, members: &[Member]) -> Vec<RegionView> {
        let mut regions: BTreeMap<&str, RegionView> = BTreeMap::new();
        for m in members {
            if let Some(r) = &m.region {
                view_for(&mut regions, r).members.push(m.name.clone());
            }
        }
        for r in self.regions.iter().flatten().flat_map(|r| &r.names) {
            view_for(&mut regions, r).checks += 1;
        }
        regions.into_values().collect()
    }
}

/// The live regional leases' holders, by (check, region).
fn probers(leases: &[Lease]) -> HashMap<(&str, &str), &str> {
    (leases.iter())
        .filter(|l| l.live && !l.region.is_empty() && l.region != DUTY_REGION)
        .map(|l| ((l.name.as_str(), l.region.as_str()), l.owner.as_str()))
        .collect()
}

fn view_for<'m, 'r>(
    regions: &'m mut BTreeMap<&'r str, RegionView>,
    name: &'r str,
) -> &'m mut RegionView {
    regions.entry(name).or_insert_with(|| RegionView {
        name: name.to_string(),
        members: Vec::new(),
        checks: 0,
    })
}
