//! Several instances on one PostgreSQL database (DESIGN.md §11): which
//! instance probes and decides each check, and which does each cluster-wide
//! duty, through leases in the database — no consensus of our own.
//!
//! Every renewal (a third of `[cluster] lease`) an instance says it is alive,
//! reads who else is, and wants the checks that rendezvous hashing gives it
//! among the live members ([`rendezvous`]). It gives up at once what it no
//! longer wants (it stops probing first), claims or renews what it wants —
//! a lease another instance holds and renews stays that instance's — and
//! takes on what it was granted: the engine reloads those checks' open
//! incidents before the scheduler probes them. So a check has one owner at a
//! time; a dead instance's checks go to the others once its leases expire,
//! and a returning one gets its share back as the others give it up, each
//! check at its next planned run (no burst). With each renewal the owner
//! publishes its view of its checks in their leases, and every instance
//! shows the others' checks as their owners see them.
//!
//! While the database is away an instance keeps probing what it owned
//! (a double probe is better than none; one that could not renew even once
//! probes everything) and reports the storage trouble through
//! `keeper:storage`. keeper's own checks (`keeper:*`) watch the instance
//! they run in: every instance runs its own, unleased.
//!
//! On SQLite an instance owns everything and no task runs; alone on
//! PostgreSQL it is a cluster of one. A config reload starts the next
//! config's member, which finds the leases of the checks kept still held
//! ([`carry_over`]).

mod rendezvous;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::core::CheckName;
use crate::core::ownership::{DUTY_REGION, Duty, Ownership};
use crate::engine::{Board, EngineHandle};
use crate::metrics::Metrics;
use crate::state::Seen;
use crate::store::{Beat, Lease, LeaseClaim, LeaseViews, Member, Store, StoreError};

/// Members and leases nobody renewed for this long are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(86_400);

/// What the API shows of the cluster (`GET /api/v1/cluster`): cheap to
/// clone, refreshed at each renewal.
#[derive(Clone, Debug, Default)]
pub struct View(Arc<RwLock<Snapshot>>);

impl View {
    pub fn snapshot(&self) -> Snapshot {
        self.0.read().map(|s| s.clone()).unwrap_or_default()
    }

    fn set(&self, snapshot: Snapshot) {
        if let Ok(mut s) = self.0.write() {
            *s = snapshot;
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
    pub owner: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// This instance's part in the cluster: its leases, renewed by [`Cluster::run`].
pub struct Cluster {
    store: Store,
    me: crate::config::Cluster,
    /// Random per start, to tell two processes calling themselves one name apart.
    incarnation: String,
    /// Each check's name, by index; keeper's own checks are not leased ([`leased`]).
    checks: Vec<CheckName>,
    index: HashMap<CheckName, usize>,
    ownership: Ownership,
    board: Board,
    engine: EngineHandle,
    metrics: Metrics,
    view: View,
    /// Sends and fetches only the views that changed since the last renewal.
    lease_views: LeaseViews,
}

/// Which checks and duties this instance starts with: alone on SQLite,
/// everything; on PostgreSQL, only keeper's own checks until the leases say.
pub fn ownership(config: &Config, store: &Store) -> Ownership {
    let n = config.checks.len();
    match store {
        Store::Sqlite(_) => Ownership::all(n),
        Store::Postgres(_) => {
            let ownership = Ownership::none(n);
            for (i, check) in config.checks.iter().enumerate() {
                if !leased(&check.name) {
                    ownership.set(i, true);
                }
            }
            ownership
        }
    }
}

/// At a config reload: checks the running config owned stay owned under
/// the next (by name), with the duties, so the next config's member finds
/// them held and the engine keeps their state; the new ones wait for its
/// first renewal.
pub fn carry_over(from: (&Config, &Ownership), to: (&Config, &Ownership)) {
    let owned: std::collections::HashSet<&str> = (from.0.checks.iter().enumerate())
        .filter(|(i, _)| from.1.owns(*i))
        .map(|(_, c)| &*c.name)
        .collect();
    for (i, check) in to.0.checks.iter().enumerate() {
        if owned.contains(&*check.name) {
            to.1.set(i, true);
        }
    }
    for duty in Duty::ALL {
        to.1.set_duty(duty, from.1.does(duty));
    }
}

/// Whether check `name` is owned through a lease: all but keeper's own.
fn leased(name: &str) -> bool {
    !name.starts_with(crate::watchdog::PREFIX)
}

/// What an instance alone shows: itself the only member, owning everything.
fn alone(config: &Config, metrics: &Metrics) -> Snapshot {
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
        checks: (config.checks.iter())
            .map(|c| Owner {
                check: c.name.to_string(),
                owner: Some(config.cluster.name.clone()),
                expires_at: None,
            })
            .collect(),
    }
}

/// What building a cluster member needs from the other parts.
pub struct Parts {
    pub store: Store,
    pub board: Board,
    pub engine: EngineHandle,
    pub metrics: Metrics,
    /// As [`ownership`] made it.
    pub ownership: Ownership,
}

/// This instance's part in the cluster for one config: on PostgreSQL a
/// member to run ([`Cluster::run`]), owning nothing until its first renewal
/// (but keeper's own checks); alone on SQLite, `None`, `view` saying so.
pub fn start(config: &Config, parts: Parts, view: &View) -> Option<Cluster> {
    match parts.store {
        Store::Sqlite(_) => {
            view.set(alone(config, &parts.metrics));
            None
        }
        Store::Postgres(_) => Some(Cluster::new(config, parts, view)),
    }
}

impl Cluster {
    /// A member owning nothing yet but keeper's own checks; its first
    /// renewal takes its share. What it sees goes to `view`.
    fn new(config: &Config, parts: Parts, view: &View) -> Cluster {
        let checks: Vec<CheckName> = config.checks.iter().map(|c| c.name.clone()).collect();
        let index = (checks.iter().enumerate())
            .map(|(i, c)| (c.clone(), i))
            .collect();
        Cluster {
            store: parts.store,
            me: config.cluster.clone(),
            incarnation: format!("{:016x}", rand::random::<u64>()),
            checks,
            index,
            ownership: parts.ownership,
            board: parts.board,
            engine: parts.engine,
            metrics: parts.metrics,
            view: view.clone(),
            lease_views: LeaseViews::default(),
        }
    }

    /// Renews at once, then every third of a lease, until `stop`; returns
    /// itself, still holding its leases (a config reload starts the next
    /// config's member, which renews them; at shutdown [`Cluster::leave`]
    /// gives them up). A failed renewal is logged and tried again at the
    /// next; what is owned stays owned.
    /// `known` hears once the first renewal is over (done or failed): the
    /// scheduler plans its runs then.
    pub async fn run(mut self, stop: CancellationToken, known: oneshot::Sender<()>) -> Cluster {
        let mut known = Some(known);
        self.first_beat().await;
        let mut every = tokio::time::interval(self.me.renew_every());
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = every.tick() => {}
            }
            let renewed = self.round().await;
            if let Some(known) = known.take() {
                if renewed.is_err() {
                    self.take_everything();
                }
                let _ = known.send(());
            }
            match renewed {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("cluster leases renewed again");
                }
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "renewing cluster leases; keeping the checks owned until the database answers");
                    failing = true;
                }
            }
        }
        self
    }

    /// The first renewal failed: this instance cannot know its share, so it
    /// probes every check and does every duty (a check probed twice is
    /// better than one nobody probes) until a renewal succeeds and gives the
    /// others' back.
    fn take_everything(&self) {
        tracing::warn!(
            "the database did not answer the first lease renewal: probing every check until it does"
        );
        for i in 0..self.checks.len() {
            self.ownership.set(i, true);
        }
        for duty in Duty::ALL {
            self.ownership.set_duty(duty, true);
        }
    }

    /// Before the first renewal: rows nobody renewed for a day are
    /// forgotten, and another process heartbeating this name is told of.
    async fn first_beat(&self) {
        if let Err(e) = self.store.forget_cluster_rows(FORGET_AFTER).await {
            tracing::warn!(error = %e, "forgetting old cluster rows");
        }
        if let Ok(Some(other)) = self.beat().await {
            tracing::warn!(instance = %self.me.name, other, "another keeper process used this instance's name within a lease: if it still runs, set a distinct [cluster] name on each");
        }
    }

    async fn round(&mut self) -> Result<(), StoreError> {
        if let Some(other) = self.beat().await? {
            tracing::error!(instance = %self.me.name, other, "another keeper process calls itself by this instance's name: give each a distinct [cluster] name");
        }
        self.renew().await
    }

    /// Says this instance is alive; another incarnation's name if one also is.
    async fn beat(&self) -> Result<Option<String>, StoreError> {
        let beat = Beat {
            name: &self.me.name,
            region: self.me.region.as_deref(),
            incarnation: &self.incarnation,
            version: env!("CARGO_PKG_VERSION"),
            lease: self.me.lease,
        };
        self.store.beat(&beat).await
    }

    /// One renewal: give up, claim, take on, show.
    async fn renew(&mut self) -> Result<(), StoreError> {
        let members = self.store.live_members(self.me.lease).await?;
        let wanted = self.wanted(&members);
        self.give_up(&wanted).await?;
        let claims = self.claims(&wanted);
        let held: BTreeSet<(String, String)> = (self.lease_views)
            .claim(&self.store, &self.me.name, self.me.lease, &claims)
            .await?
            .into_iter()
            .collect();
        let leases = self.lease_views.read(&self.store).await?;
        let by_check = by_check(&leases);
        self.take_on(&held, &by_check).await;
        self.show(&members, &by_check);
        Ok(())
    }

    /// Each leased check and duty, and whether this instance should own it.
    fn wanted(&self, members: &[Member]) -> Wanted {
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        let mine =
            |key: &str| rendezvous::owner(key, names.iter().copied()) == Some(&*self.me.name);
        Wanted {
            checks: (self.checks.iter()).map(|c| leased(c) && mine(c)).collect(),
            duties: Duty::ALL.map(|d| mine(&format!("{DUTY_REGION}/{}", d.key()))),
        }
    }

    /// Stops owning what another instance should own now, then gives the
    /// leases up so it need not wait for them to expire.
    async fn give_up(&self, wanted: &Wanted) -> Result<(), StoreError> {
        let mut keys = Vec::new();
        for (i, name) in self.checks.iter().enumerate() {
            if leased(name) && self.ownership.owns(i) && !wanted.checks[i] {
                self.ownership.set(i, false);
                keys.push((name.to_string(), String::new()));
            }
        }
        for (d, duty) in Duty::ALL.into_iter().enumerate() {
            if self.ownership.does(duty) && !wanted.duties[d] {
                self.ownership.set_duty(duty, false);
                keys.push((duty.key().to_string(), DUTY_REGION.to_string()));
            }
        }
        if !keys.is_empty() {
            tracing::info!(
                leases = keys.len(),
                "giving up leases another instance should hold now"
            );
        }
        self.store.release(&self.me.name, &keys).await.map(drop)
    }

    /// The leases to claim or renew, each owned check's with this
    /// instance's view of it.
    fn claims(&self, wanted: &Wanted) -> Vec<LeaseClaim> {
        let mut claims: Vec<LeaseClaim> = (0..self.checks.len())
            .filter(|&i| wanted.checks[i])
            .map(|i| LeaseClaim {
                name: self.checks[i].to_string(),
                region: String::new(),
                view: (self.ownership.owns(i))
                    .then(|| self.board.seen(i))
                    .flatten()
                    .and_then(|seen| serde_json::to_string(&seen).ok()),
            })
            .collect();
        for (d, duty) in Duty::ALL.into_iter().enumerate() {
            if wanted.duties[d] {
                claims.push(LeaseClaim {
                    name: duty.key().into(),
                    region: DUTY_REGION.into(),
                    view: None,
                });
            }
        }
        claims
    }

    /// Owns what it holds: checks newly held are first taken on by the
    /// engine (their open incidents reloaded, their owner's view shown);
    /// anything owned but not held any more (its lease ran out while the
    /// database was away, and another took it) stops.
    async fn take_on(&self, held: &BTreeSet<(String, String)>, leases: &ByCheck<'_>) {
        let holds =
            |name: &str, region: &str| held.contains(&(name.to_string(), region.to_string()));
        let mut gained = Vec::new();
        for (i, name) in self.checks.iter().enumerate() {
            if !leased(name) {
                continue;
            }
            match (self.ownership.owns(i), holds(name, "")) {
                (false, true) => gained.push((i, leases.get(&**name).and_then(|l| view_of(l)))),
                (true, false) => {
                    tracing::warn!(check = %name, "another instance holds this check's lease now: no longer probing it");
                    self.ownership.set(i, false);
                }
                _ => {}
            }
        }
        for duty in Duty::ALL {
            self.ownership
                .set_duty(duty, holds(duty.key(), DUTY_REGION));
        }
        if gained.is_empty() {
            return;
        }
        let checks: Vec<usize> = gained.iter().map(|(i, _)| *i).collect();
        if let Err(e) = self.engine.adopt(gained).await {
            // Held but not probed until the next renewal takes them on.
            tracing::warn!(error = %e, checks = checks.len(), "taking on checks: their incidents could not be read; trying at the next renewal");
            return;
        }
        tracing::info!(checks = checks.len(), "taking on checks");
        for i in checks {
            self.ownership.set(i, true);
        }
    }

    /// Shows the other instances' checks as their owners see them, and the
    /// members and owners to the API and the metrics.
    fn show(&self, members: &[Member], leases: &ByCheck<'_>) {
        for lease in leases.values() {
            let Some(&i) = self.index.get(lease.name.as_str()) else {
                continue;
            };
            if self.ownership.owns(i) {
                continue;
            }
            if let Some(seen) = view_of(lease) {
                self.metrics.set_status(i, seen.color);
                self.board.show(i, seen);
            }
        }
        let owned = self.ownership.owned();
        self.metrics.cluster_members.set(members.len() as i64);
        self.metrics.checks_owned.set(owned as i64);
        self.view.set(self.snapshot(members, leases));
    }

    fn snapshot(&self, members: &[Member], leases: &ByCheck<'_>) -> Snapshot {
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
            checks: (self.checks.iter())
                .map(|c| {
                    let lease = owner_of(c);
                    Owner {
                        check: c.to_string(),
                        owner: match leased(c) {
                            true => lease.map(|l| l.owner.clone()),
                            false => Some(self.me.name.clone()),
                        },
                        expires_at: lease.map(|l| l.expires_at),
                    }
                })
                .collect(),
        }
    }

    /// At shutdown: gives every lease up, so the others take the checks at
    /// their next renewal instead of a lease later.
    pub async fn leave(&self) {
        let mut keys: Vec<(String, String)> = (0..self.checks.len())
            .filter(|&i| leased(&self.checks[i]) && self.ownership.owns(i))
            .map(|i| (self.checks[i].to_string(), String::new()))
            .collect();
        keys.extend(
            (Duty::ALL.into_iter())
                .filter(|&d| self.ownership.does(d))
                .map(|d| (d.key().to_string(), DUTY_REGION.to_string())),
        );
        for (i, check) in self.checks.iter().enumerate() {
            if leased(check) {
                self.ownership.set(i, false);
            }
        }
        match self.store.release(&self.me.name, &keys).await {
            Ok(n) => tracing::info!(leases = n, "left the cluster: leases given up"),
            Err(e) => {
                tracing::warn!(error = %e, "leaving the cluster: leases will expire on their own")
            }
        }
    }
}

/// What this instance should own.
struct Wanted {
    checks: Vec<bool>,
    duties: [bool; Duty::ALL.len()],
}

/// The checks' leases (region `""`) by check name, looked up once per
/// check each renewal.
type ByCheck<'l> = HashMap<&'l str, &'l Lease>;

fn by_check(leases: &[Lease]) -> ByCheck<'_> {
    (leases.iter())
        .filter(|l| l.region.is_empty())
        .map(|l| (l.name.as_str(), l))
        .collect()
}

/// The view published in `lease`, if any; one that does not parse (another
/// version's) is skipped.
fn view_of(lease: &Lease) -> Option<Seen> {
    serde_json::from_str(lease.view.as_deref()?).ok()
}
