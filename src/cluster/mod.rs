//! Several instances on one PostgreSQL database (DESIGN.md §11): which
//! instance probes and decides each check, and which does each cluster-wide
//! duty, through leases in the database — no consensus of our own.
//!
//! Every renewal (a quarter of `[cluster] lease`) an instance says it is alive,
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
mod view;

pub use view::{MemberView, Owner, RegionView, Snapshot, View};

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::core::CheckName;
use crate::core::health::RegionMembers;
use crate::core::ownership::{DUTY_REGION, Duty, Ownership, Regions};
use crate::engine::{Board, EngineHandle};
use crate::metrics::Metrics;
use crate::state::Seen;
use crate::store::{Beat, Lease, LeaseClaim, LeaseViews, Member, Store, StoreError};

/// Members and leases nobody renewed for this long are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(86_400);

/// This instance's part in the cluster: its leases, renewed by [`Cluster::run`].
pub struct Cluster {
    store: Store,
    me: crate::config::Cluster,
    /// Random per start, to tell two processes calling themselves one name apart.
    incarnation: String,
    /// Each check's name, by index; keeper's own checks are not leased ([`leased`]).
    checks: Vec<CheckName>,
    /// Each check's regions, by index: probed from this instance's region's
    /// lease, decided through the check's own.
    regions: Vec<Option<Regions>>,
    index: HashMap<CheckName, usize>,
    ownership: Ownership,
    board: Board,
    engine: EngineHandle,
    metrics: Metrics,
    view: View,
    region_members: RegionMembers,
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
    let held: HashMap<&str, (bool, bool)> = (from.0.checks.iter().enumerate())
        .map(|(i, c)| (&*c.name, (from.1.owns(i), from.1.probes(i))))
        .collect();
    for (i, check) in to.0.checks.iter().enumerate() {
        if let Some(&(decides, probes)) = held.get(&*check.name) {
            to.1.set_decides(i, decides);
            to.1.set_probes(i, probes);
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

/// What building a cluster member needs from the other parts.
pub struct Parts {
    pub store: Store,
    pub board: Board,
    pub engine: EngineHandle,
    pub metrics: Metrics,
    /// As [`ownership`] made it.
    pub ownership: Ownership,
    /// Where `keeper:regions` reads which regions have live instances.
    pub regions: RegionMembers,
}

/// This instance's part in the cluster for one config: on PostgreSQL a
/// member to run ([`Cluster::run`]), owning nothing until its first renewal
/// (but keeper's own checks); alone on SQLite, `None`, `view` saying so.
pub fn start(config: &Config, parts: Parts, view: &View) -> Option<Cluster> {
    match parts.store {
        Store::Sqlite(_) => {
            let checks = config.checks.iter().map(|c| c.name.clone()).collect();
            view.set_alone(view::alone(config, &parts.metrics), checks);
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
            regions: config.checks.iter().map(|c| c.regions.clone()).collect(),
            index,
            ownership: parts.ownership,
            board: parts.board,
            engine: parts.engine,
            metrics: parts.metrics,
            view: view.clone(),
            region_members: parts.regions,
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
            self.ownership.set_decides(i, true);
            self.ownership.set_probes(
                i,
                self.my_region_of(i).is_some() || self.regions[i].is_none(),
            );
        }
        for duty in Duty::ALL {
            self.ownership.set_duty(duty, true);
        }
    }

    /// This instance's region, when check `i` is probed from it.
    fn my_region_of(&self, i: usize) -> Option<&str> {
        let mine = self.me.region.as_deref()?;
        let regions = self.regions[i].as_ref()?;
        regions.names.iter().any(|r| r == mine).then_some(mine)
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
        let members = self.store.live_members(self.me.hold()).await?;
        let wanted = self.wanted(&members);
        self.give_up(&wanted).await?;
        let claims = self.claims(&wanted);
        let held: BTreeSet<(String, String)> = (self.lease_views)
            .claim(&self.store, &self.me.name, self.me.hold(), &claims)
            .await?
            .into_iter()
            .collect();
        let leases = self.lease_views.read(&self.store).await?;
        let by_check = by_check(&leases);
        self.take_on(&held, &by_check).await;
        self.hear_regions(&leases).await;
        self.show(&members, &leases, &by_check);
        Ok(())
    }

    /// Each leased check and duty, and whether this instance should own it.
    fn wanted(&self, members: &[Member]) -> Wanted {
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        let mine =
            |key: &str| rendezvous::owner(key, names.iter().copied()) == Some(&*self.me.name);
        // A check's region is probed by one of the members in that region.
        let neighbours: Vec<&str> = (members.iter())
            .filter(|m| m.region.is_some() && m.region == self.me.region)
            .map(|m| m.name.as_str())
            .collect();
        let mine_here =
            |key: &str| rendezvous::owner(key, neighbours.iter().copied()) == Some(&*self.me.name);
        let checks: Vec<bool> = (self.checks.iter()).map(|c| leased(c) && mine(c)).collect();
        let probes = (0..self.checks.len())
            .map(|i| match &self.regions[i] {
                None => checks[i],
                Some(_) => self.my_region_of(i).is_some() && mine_here(&self.checks[i]),
            })
            .collect();
        Wanted {
            checks,
            probes,
            duties: Duty::ALL.map(|d| mine(&format!("{DUTY_REGION}/{}", d.key()))),
        }
    }

    /// Stops owning what another instance should own now, then gives the
    /// leases up so it need not wait for them to expire.
    async fn give_up(&self, wanted: &Wanted) -> Result<(), StoreError> {
        let mut keys = Vec::new();
        for (i, name) in self.checks.iter().enumerate() {
            if let Some(region) = self.my_region_of(i)
                && self.ownership.probes(i)
                && !wanted.probes[i]
            {
                self.ownership.set_probes(i, false);
                keys.push((name.to_string(), region.to_string()));
            }
            if leased(name) && self.ownership.owns(i) && !wanted.checks[i] {
                self.decide(i, false);
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
        // Each check with regions probed from here: this region's state of it.
        for i in (0..self.checks.len()).filter(|&i| wanted.probes[i]) {
            if let Some(region) = self.my_region_of(i) {
                claims.push(LeaseClaim {
                    name: self.checks[i].to_string(),
                    region: region.to_string(),
                    view: (self.board.regional(i))
                        .and_then(|seen| serde_json::to_string(&seen).ok()),
                });
            }
        }
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
            if let Some(region) = self.my_region_of(i) {
                self.ownership.set_probes(i, holds(name, region));
            }
            match (self.ownership.owns(i), holds(name, "")) {
                // A view unchanged since an earlier read is the one shown then.
                (false, true) => gained.push((
                    i,
                    (leases.get(&**name).and_then(|l| view_of(l))).or_else(|| self.board.seen(i)),
                )),
                (true, false) => {
                    tracing::warn!(check = %name, "another instance holds this check's lease now: no longer deciding it");
                    self.decide(i, false);
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
            self.decide(i, true);
        }
    }

    /// Decides check `i` or stops: with its probing, unless it has
    /// regions (probed through a lease of its own).
    fn decide(&self, i: usize, on: bool) {
        match self.regions[i] {
            None => self.ownership.set(i, on),
            Some(_) => self.ownership.set_decides(i, on),
        }
    }

    /// Hands the engine each region's state of the checks with regions, as
    /// their probers published them (those changed since the last read):
    /// it decides the checks this instance owns, and has them at hand for
    /// the others should it take them over.
    async fn hear_regions(&self, leases: &[Lease]) {
        let mut seen = Vec::new();
        for lease in leases {
            if lease.region.is_empty() || lease.region == DUTY_REGION {
                continue;
            }
            let Some(&i) = self.index.get(lease.name.as_str()) else {
                continue;
            };
            let listed =
                (self.regions[i].as_ref()).is_some_and(|r| r.names.contains(&lease.region));
            if listed && let Some(view) = view_of(lease) {
                seen.push((i, lease.region.clone(), view));
            }
        }
        if !seen.is_empty() {
            self.engine.regions_seen(seen).await;
        }
    }

    /// Shows the other instances' checks as their owners see them, and the
    /// members and owners to the API and the metrics.
    fn show(&self, members: &[Member], all: &[Lease], leases: &ByCheck<'_>) {
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
        let snapshot = self.snapshot(members, all, leases);
        let probed_from = (snapshot.regions.iter())
            .filter(|r| r.checks > 0)
            .map(|r| (r.name.clone(), r.members.len()))
            .collect();
        self.region_members.set(probed_from);
        self.view.set(snapshot);
    }

    /// At shutdown: gives every lease up, so the others take the checks at
    /// their next renewal instead of a lease later.
    pub async fn leave(&self) {
        let mut keys: Vec<(String, String)> = (0..self.checks.len())
            .filter(|&i| leased(&self.checks[i]) && self.ownership.owns(i))
            .map(|i| (self.checks[i].to_string(), String::new()))
            .collect();
        keys.extend((0..self.checks.len()).filter_map(|i| {
            let region = self.my_region_of(i).filter(|_| self.ownership.probes(i))?;
            Some((self.checks[i].to_string(), region.to_string()))
        }));
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
    /// Decide (and probe, for a check without regions).
    checks: Vec<bool>,
    /// Probe: a check without regions as `checks`; one with regions from
    /// this instance's region.
    probes: Vec<bool>,
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
