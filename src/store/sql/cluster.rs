//! The cluster's tables (DESIGN.md §11), on PostgreSQL only: who is alive
//! (`cluster_members`) and who owns each check and duty (`check_leases`).
//! Every time is the database's `now()`, so the instances' clocks never
//! have to agree.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{Doing, Result};
use crate::store::{Store, StoreError};

/// An instance seen alive.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub name: String,
    /// `None`: no region configured.
    pub region: Option<String>,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
}

/// What an instance says of itself at each renewal.
#[derive(Clone, Debug)]
pub struct Beat<'a> {
    pub name: &'a str,
    pub region: Option<&'a str>,
    pub incarnation: &'a str,
    pub version: &'a str,
    pub lease: Duration,
}

/// A lease to claim or renew: a check's (region `""`) or a duty's, with
/// the owner's view of the check to publish (`None` keeps the stored one).
#[derive(Clone, Debug, PartialEq)]
pub struct LeaseClaim {
    pub name: String,
    pub region: String,
    pub view: Option<String>,
}

/// A stored lease.
#[derive(Clone, Debug, PartialEq)]
pub struct Lease {
    pub name: String,
    pub region: String,
    pub owner: String,
    pub expires_at: DateTime<Utc>,
    /// Whether it has not expired.
    pub live: bool,
    /// The owner's view of the check; `None` when never published.
    pub view: Option<String>,
}

impl Store {
    fn cluster_pool(&self) -> Result<&sqlx::PgPool> {
        match self {
            Store::Postgres(s) => Ok(&s.pool),
            Store::Sqlite(_) => Err(StoreError::Corrupt(
                "several instances share PostgreSQL only; SQLite is for one".into(),
            )),
        }
    }

    /// Says this instance is alive. Returns the incarnation of another
    /// process that heartbeated the same name within a lease, if one did.
    pub async fn beat(&self, beat: &Beat<'_>) -> Result<Option<String>> {
        let sql = "WITH before AS ( \
               SELECT incarnation FROM cluster_members \
               WHERE name = $1 AND incarnation <> $3 AND seen_at > now() - make_interval(secs => $5)) \
             INSERT INTO cluster_members (name, region, incarnation, version, started_at, seen_at) \
             VALUES ($1, $2, $3, $4, now(), now()) \
             ON CONFLICT (name) DO UPDATE SET region = EXCLUDED.region, version = EXCLUDED.version, \
               seen_at = now(), incarnation = EXCLUDED.incarnation, \
               started_at = CASE WHEN cluster_members.incarnation = EXCLUDED.incarnation \
                            THEN cluster_members.started_at ELSE now() END \
             RETURNING (SELECT incarnation FROM before) AS other";
        let row = sqlx::query(sql)
            .bind(beat.name)
            .bind(beat.region.unwrap_or(""))
            .bind(beat.incarnation)
            .bind(beat.version)
            .bind(beat.lease.as_secs_f64())
            .fetch_one(self.cluster_pool()?)
            .await
            .doing("saying this instance is alive")?;
        row.try_get("other")
            .doing("reading the cluster_members row")
    }

    /// The instances seen within `lease`, by name.
    pub async fn live_members(&self, lease: Duration) -> Result<Vec<Member>> {
        let sql = "SELECT name, region, version, started_at, seen_at FROM cluster_members \
                   WHERE seen_at > now() - make_interval(secs => $1) ORDER BY name";
        let rows = sqlx::query(sql)
            .bind(lease.as_secs_f64())
            .fetch_all(self.cluster_pool()?)
            .await
            .doing("reading the live cluster members")?;
        rows.iter()
            .map(|row| {
                let region: String = row.try_get("region")?;
                Ok(Member {
                    name: row.try_get("name")?,
                    region: (!region.is_empty()).then_some(region),
                    version: row.try_get("version")?,
                    started_at: row.try_get("started_at")?,
                    seen_at: row.try_get("seen_at")?,
                })
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .doing("decoding a cluster member")
    }

    /// Claims each lease of `claims` for `owner` (or renews it) for `lease`
    /// from now, where it is `owner`'s already or has expired, publishing the
    /// views given (a view equal to the stored one keeps its version, so
    /// [`LeaseViews`] do not fetch it again). Returns the leases `owner`
    /// holds now, as (name, region).
    /// A lease another instance holds and renews stays its: taking a check
    /// over waits for its owner to give it up or to die.
    pub async fn claim(
        &self,
        owner: &str,
        lease: Duration,
        claims: &[LeaseClaim],
    ) -> Result<Vec<(String, String)>> {
        let held = self.claim_versions(owner, lease, claims).await?;
        Ok(held.into_iter().map(|(key, _)| key).collect())
    }

    /// [`Store::claim`], each lease held returned with its view's version.
    async fn claim_versions(
        &self,
        owner: &str,
        lease: Duration,
        claims: &[LeaseClaim],
    ) -> Result<Vec<((String, String), i64)>> {
        let names: Vec<&str> = claims.iter().map(|c| c.name.as_str()).collect();
        let regions: Vec<&str> = claims.iter().map(|c| c.region.as_str()).collect();
        let views: Vec<Option<&str>> = claims.iter().map(|c| c.view.as_deref()).collect();
        let sql = "INSERT INTO check_leases (check_name, region, owner, expires_at, view) \
             SELECT c.name, c.region, $1, now() + make_interval(secs => $2), c.view \
             FROM unnest($3::text[], $4::text[], $5::text[]) AS c(name, region, view) \
             ON CONFLICT (check_name, region) DO UPDATE SET owner = EXCLUDED.owner, \
               expires_at = EXCLUDED.expires_at, view = COALESCE(EXCLUDED.view, check_leases.view), \
               view_version = CASE WHEN COALESCE(EXCLUDED.view, check_leases.view) \
                 IS NOT DISTINCT FROM check_leases.view THEN check_leases.view_version \
                 ELSE EXCLUDED.view_version END \
             WHERE check_leases.owner = EXCLUDED.owner OR check_leases.expires_at < now() \
             RETURNING check_name, region, view_version";
        let rows = sqlx::query(sql)
            .bind(owner)
            .bind(lease.as_secs_f64())
            .bind(names)
            .bind(regions)
            .bind(views)
            .fetch_all(self.cluster_pool()?)
            .await
            .doing("claiming and renewing leases")?;
        (rows.iter())
            .map(|row| {
                let key = (row.try_get("check_name")?, row.try_get("region")?);
                Ok((key, row.try_get("view_version")?))
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .doing("decoding a lease")
    }

    /// Gives up `owner`'s leases on `keys` (name, region) at once, so the
    /// instance they belong to now takes them without waiting for them to
    /// expire. The published view stays, for the next owner.
    pub async fn release(&self, owner: &str, keys: &[(String, String)]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let names: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        let regions: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
        let sql = "UPDATE check_leases SET expires_at = now() - interval '1 millisecond' \
             FROM unnest($2::text[], $3::text[]) AS k(name, region) \
             WHERE check_leases.owner = $1 AND check_name = k.name AND check_leases.region = k.region";
        let done = sqlx::query(sql)
            .bind(owner)
            .bind(names)
            .bind(regions)
            .execute(self.cluster_pool()?)
            .await
            .doing("giving up leases")?;
        Ok(done.rows_affected())
    }

    /// Every lease, with its view, read whole: the cluster reads them
    /// through [`LeaseViews`], which fetches only the views that changed.
    pub async fn leases(&self) -> Result<Vec<Lease>> {
        let sql = "SELECT check_name, region, owner, expires_at, expires_at > now() AS live, view \
             FROM check_leases ORDER BY check_name, region";
        let rows = sqlx::query(sql)
            .fetch_all(self.cluster_pool()?)
            .await
            .doing("reading the leases")?;
        rows.iter()
            .map(lease)
            .collect::<std::result::Result<_, sqlx::Error>>()
            .doing("decoding a lease")
    }

    /// Forgets members and leases nobody renewed for `age` (instances
    /// retired, checks removed from the config).
    pub async fn forget_cluster_rows(&self, age: Duration) -> Result<()> {
        let pool = self.cluster_pool()?;
        for sql in [
            "DELETE FROM cluster_members WHERE seen_at < now() - make_interval(secs => $1)",
            "DELETE FROM check_leases WHERE expires_at < now() - make_interval(secs => $1)",
        ] {
            sqlx::query(sql)
                .bind(age.as_secs_f64())
                .execute(pool)
                .await
                .doing("forgetting old cluster rows")?;
        }
        Ok(())
    }
}

/// The leases' views as this instance knows them, so a renewal sends and
/// reads only the views that changed: [`LeaseViews::claim`] leaves out a view
/// equal to the one it last published for the lease, and
/// [`LeaseViews::read`] reads every lease's owner and expiry but only the
/// views whose `view_version` moved since it last saw them, other than its
/// own instance's (a view is a few hundred bytes, and between two renewals
/// most stay as they were). What they return equals what [`Store::claim`]
/// and [`Store::leases`] would.
#[derive(Debug, Default)]
pub struct LeaseViews {
    /// Each lease's view as last fetched or published, with its version.
    views: HashMap<(String, String), (i64, Option<String>)>,
    /// How many views the last read fetched.
    fetched: usize,
    /// How many views the last claim sent.
    sent: usize,
    /// The highest view version a read saw.
    seen: i64,
    /// Who claims through it: its own views are not read back.
    owner: Option<String>,
}

impl LeaseViews {
    /// [`Store::claim`], leaving out the views already published.
    pub async fn claim(
        &mut self,
        store: &Store,
        owner: &str,
        lease: Duration,
        claims: &[LeaseClaim],
    ) -> Result<Vec<(String, String)>> {
        let mut sent = claims.to_vec();
        for claim in &mut sent {
            let key = (claim.name.clone(), claim.region.clone());
            let known = self.views.get(&key).map(|v| &v.1);
            if claim.view.is_some() && known == Some(&claim.view) {
                claim.view = None;
            }
        }
        self.sent = sent.iter().filter(|c| c.view.is_some()).count();
        self.owner = Some(owner.to_string());
        let held = store.claim_versions(owner, lease, &sent).await?;
        let by_key: HashMap<(&str, &str), &LeaseClaim> = (sent.iter())
            .map(|c| ((c.name.as_str(), c.region.as_str()), c))
            .collect();
        for (key, version) in &held {
            let view = by_key
                .get(&(key.0.as_str(), key.1.as_str()))
                .and_then(|c| c.view.clone());
            match view {
                Some(view) => {
                    self.views.insert(key.clone(), (*version, Some(view)));
                }
                // Stored since by another instance: sent again next time.
                None if self.views.get(key).is_some_and(|v| v.0 != *version) => {
                    self.views.remove(key);
                }
                None => {}
            }
        }
        Ok(held.into_iter().map(|(key, _)| key).collect())
    }

    /// Every lease, with its view.
    pub async fn read(&mut self, store: &Store) -> Result<Vec<Lease>> {
        let pool = store.cluster_pool()?;
        // Views stored after any this reader saw come with the leases, but
        // its own instance's (its claims told it). One stored earlier but
        // committed after the last read is fetched next, by name.
        let sql = "SELECT check_name, region, owner, expires_at, expires_at > now() AS live, \
             view_version, CASE WHEN view_version > $1 AND owner IS DISTINCT FROM $2 \
             THEN view END AS view FROM check_leases ORDER BY check_name, region";
        let rows = sqlx::query(sql)
            .bind(self.seen)
            .bind(self.owner.as_deref())
            .fetch_all(pool)
            .await
            .doing("reading the leases")?;
        let mut decoded = (rows.iter())
            .map(|row| Ok((lease(row)?, row.try_get::<i64, _>("view_version")?)))
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
            .doing("decoding a lease")?;
        let (seen, mut sent) = (self.seen, 0);
        let mut stale: (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
        for (lease, version) in &mut decoded {
            let key = (lease.name.clone(), lease.region.clone());
            if *version > seen && self.owner.as_deref() != Some(lease.owner.as_str()) {
                self.views.insert(key, (*version, lease.view.take()));
                sent += 1;
            } else if self.views.get(&key).map(|v| v.0) != Some(*version) {
                stale.0.push(key.0);
                stale.1.push(key.1);
            }
            self.seen = self.seen.max(*version);
        }
        self.fetched = sent + stale.0.len();
        if !stale.0.is_empty() {
            self.fetch(pool, stale).await?;
        }
        let mut leases: Vec<Lease> = decoded.into_iter().map(|(l, _)| l).collect();
        let keys: HashSet<(&str, &str)> = (leases.iter())
            .map(|l| (l.name.as_str(), l.region.as_str()))
            .collect();
        (self.views).retain(|(n, r), _| keys.contains(&(n.as_str(), r.as_str())));
        for lease in &mut leases {
            let key = (
                std::mem::take(&mut lease.name),
                std::mem::take(&mut lease.region),
            );
            lease.view = self.views.get(&key).and_then(|v| v.1.clone());
            (lease.name, lease.region) = key;
        }
        Ok(leases)
    }

    /// How many views the last [`LeaseViews::read`] fetched.
    pub fn fetched(&self) -> usize {
        self.fetched
    }

    /// How many views the last [`LeaseViews::claim`] sent.
    pub fn sent(&self) -> usize {
        self.sent
    }

    /// Fetches the views of leases `keys` (names, regions) with their versions.
    async fn fetch(&mut self, pool: &sqlx::PgPool, keys: (Vec<String>, Vec<String>)) -> Result<()> {
        let sql = "SELECT l.check_name, l.region, l.view_version, l.view FROM check_leases l \
             JOIN unnest($1::text[], $2::text[]) AS k(name, region) \
             ON l.check_name = k.name AND l.region = k.region";
        let rows = sqlx::query(sql)
            .bind(keys.0)
            .bind(keys.1)
            .fetch_all(pool)
            .await
            .doing("reading the views that changed")?;
        let fetched = (rows.iter())
            .map(|row| {
                let key = (row.try_get("check_name")?, row.try_get("region")?);
                Ok((key, (row.try_get("view_version")?, row.try_get("view")?)))
            })
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
            .doing("decoding a lease's view")?;
        self.views.extend(fetched);
        Ok(())
    }
}

/// A row of `check_leases` as read by [`Store::leases`] and [`LeaseViews::read`].
fn lease(row: &sqlx::postgres::PgRow) -> std::result::Result<Lease, sqlx::Error> {
    Ok(Lease {
        name: row.try_get("check_name")?,
        region: row.try_get("region")?,
        owner: row.try_get("owner")?,
        expires_at: row.try_get("expires_at")?,
        live: row.try_get("live")?,
        view: row.try_get("view")?,
    })
}
