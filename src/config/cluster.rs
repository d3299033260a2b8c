//! `[cluster]` (DESIGN.md §11): who this instance is among the keepers that
//! share one PostgreSQL database. `name` (default: the host name) must differ
//! between instances; `region` (default: none) is where it probes from;
//! `lease` (default 15 s) is how long a check stays with an instance that
//! stopped renewing its leases before another takes it over.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::error::Collector;
use crate::core::value::HumanDuration;

/// The shortest lease: renewals come three times a lease, and a round trip
/// to the database must fit well inside one.
const MIN_LEASE: Duration = Duration::from_secs(1);

/// This instance's place in a cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    pub name: String,
    pub region: Option<String>,
    pub lease: Duration,
}

impl Cluster {
    /// How often leases are renewed and the members looked at: a quarter
    /// of the lease.
    pub fn renew_every(&self) -> Duration {
        self.lease / 4
    }

    /// How long a renewal holds the leases and keeps the instance among the
    /// live members: the lease less one renewal. So a dead instance's checks
    /// are claimed by the others' first renewal after that — within `lease`
    /// of its last renewal — and two renewals in a row may fail before its
    /// leases run out.
    pub fn hold(&self) -> Duration {
        self.lease - self.renew_every()
    }
}

impl Default for Cluster {
    fn default() -> Cluster {
        Cluster {
            name: crate::telemetry::host_name(),
            region: None,
            lease: Duration::from_secs(15),
        }
    }
}

/// `[cluster]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    name: Option<Spanned<String>>,
    region: Option<Spanned<String>>,
    lease: Option<Spanned<HumanDuration>>,
}

impl Raw {
    pub fn resolve(self, errors: &mut Collector) -> Cluster {
        let mut cluster = Cluster::default();
        let mut word = |value: Spanned<String>, key: &str| {
            let text = value.get_ref();
            let fine = !text.is_empty()
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !fine {
                let message = format!(
                    "{text:?} must be letters, digits, '-', '_' or '.' (it names this instance to the others)"
                );
                errors.at(value.span(), key, message);
            }
            value.into_inner()
        };
        if let Some(name) = self.name {
            cluster.name = word(name, "cluster.name");
        }
        cluster.region = self.region.map(|r| word(r, "cluster.region"));
        if let Some(lease) = self.lease {
            if lease.get_ref().0 < MIN_LEASE {
                let message = format!("must be at least {}", HumanDuration(MIN_LEASE));
                errors.at(lease.span(), "cluster.lease", message);
            } else {
                cluster.lease = lease.into_inner().0;
            }
        }
        cluster
    }
}
