//! Which checks this instance probes and decides, and which cluster-wide
//! duties it does (DESIGN.md §11). Alone (SQLite, or no other instance) it
//! owns everything; among several instances on one PostgreSQL database the
//! cluster's leases say, and the scheduler and the engine ask before they act.
//! A check with [`Regions`] is probed from each of them, by one instance in
//! each, and decided by one instance: probing and deciding are apart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The region of duties' leases (configured regions are words without `@`).
pub const DUTY_REGION: &str = "@duty";

/// Work done once for the whole cluster, by the one instance holding its lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Duty {
    /// The daily digest of low incidents.
    Digest,
    /// The scheduled reports (`[reports]`).
    Reports,
}

impl Duty {
    pub const ALL: [Duty; 2] = [Duty::Digest, Duty::Reports];

    /// Its lease's name. Duties' leases are in a region of their own,
    /// [`DUTY_REGION`], which no configured region can name: a check called
    /// `digest` keeps its own lease.
    pub fn key(self) -> &'static str {
        match self {
            Duty::Digest => "digest",
            Duty::Reports => "reports",
        }
    }
}

/// `regions = [...]` and `quorum` of a check: probed from each region, an
/// incident only when at least `quorum` of them see it failing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Regions {
    /// The regions' names as configured, each once.
    pub names: Vec<String>,
    /// How many regions must see the check failing; 1 ≤ quorum ≤ names.
    pub quorum: usize,
}

impl Regions {
    /// The default quorum: a majority of the regions.
    pub fn majority(regions: usize) -> usize {
        regions / 2 + 1
    }
}

/// Per check (by index, as the config lists them) and per duty: whether this
/// instance holds it now. Cheap to clone; read with one atomic load.
#[derive(Clone, Debug)]
pub struct Ownership {
    /// Decides the check: its state and incidents.
    checks: Arc<[AtomicBool]>,
    /// Probes the check: the same lease as deciding for most checks, one
    /// region's lease for a check with regions.
    probes: Arc<[AtomicBool]>,
    duties: Arc<[AtomicBool; Duty::ALL.len()]>,
}

impl Ownership {
    /// Everything owned: a keeper alone.
    pub fn all(checks: usize) -> Ownership {
        Ownership::with(checks, true)
    }

    /// Nothing owned yet: a cluster member before its first leases.
    pub fn none(checks: usize) -> Ownership {
        Ownership::with(checks, false)
    }

    fn with(checks: usize, owned: bool) -> Ownership {
        Ownership {
            checks: (0..checks).map(|_| AtomicBool::new(owned)).collect(),
            probes: (0..checks).map(|_| AtomicBool::new(owned)).collect(),
            duties: Arc::new(std::array::from_fn(|_| AtomicBool::new(owned))),
        }
    }

    /// Whether this instance decides check `i`: its state, incidents and reminders.
    pub fn owns(&self, i: usize) -> bool {
        flag(&self.checks, i)
    }

    /// Whether this instance probes check `i`.
    pub fn probes(&self, i: usize) -> bool {
        flag(&self.probes, i)
    }

    /// Probes and decides check `i`, or neither: a check without regions.
    pub fn set(&self, i: usize, owned: bool) {
        self.set_decides(i, owned);
        self.set_probes(i, owned);
    }

    pub fn set_decides(&self, i: usize, owned: bool) {
        set_flag(&self.checks, i, owned);
    }

    pub fn set_probes(&self, i: usize, owned: bool) {
        set_flag(&self.probes, i, owned);
    }

    /// Whether this instance does `duty` now.
    pub fn does(&self, duty: Duty) -> bool {
        self.duties[duty as usize].load(Ordering::Acquire)
    }

    pub fn set_duty(&self, duty: Duty, owned: bool) {
        self.duties[duty as usize].store(owned, Ordering::Release);
    }

    /// How many checks there are, owned or not.
    pub fn len(&self) -> usize {
        self.checks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// How many checks this instance decides.
    pub fn owned(&self) -> usize {
        (0..self.len()).filter(|&i| self.owns(i)).count()
    }
}

fn flag(flags: &[AtomicBool], i: usize) -> bool {
    flags.get(i).is_some_and(|o| o.load(Ordering::Acquire))
}

fn set_flag(flags: &[AtomicBool], i: usize, on: bool) {
    if let Some(o) = flags.get(i) {
        o.store(on, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alone_everything_is_owned_and_a_member_starts_with_nothing() {
        let alone = Ownership::all(3);
        assert_eq!(alone.owned(), 3);
        assert!(Duty::ALL.iter().all(|&d| alone.does(d)));
        let member = Ownership::none(3);
        assert_eq!(member.owned(), 0);
        assert!(!member.does(Duty::Digest));
        member.set(1, true);
        member.set_duty(Duty::Reports, true);
        assert!(member.owns(1) && !member.owns(0) && !member.owns(7));
        assert!(member.does(Duty::Reports) && !member.does(Duty::Digest));
        assert_eq!(member.clone().owned(), 1);
        assert!(member.probes(1) && !member.probes(0));
        member.set_probes(0, true);
        assert!(
            member.probes(0) && !member.owns(0),
            "probing a region is not deciding"
        );
        member.set_decides(2, true);
        assert!(member.owns(2) && !member.probes(2));
        assert_eq!(Regions::majority(3), 2);
        assert_eq!(Regions::majority(2), 2);
        assert_eq!(Regions::majority(1), 1);
    }
}
