//! The cluster's tables (DESIGN.md §11), on PostgreSQL only: who is alive
//! (`cluster_members`) and who owns each check and duty (`check_leases`).
//! Every time is the database's `now()`, so the instances' clocks never
//! have to agree.

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
    /// views given. Returns the leases `owner` holds now, as (name, region).
    /// A lease another instance holds and renews stays its: taking a check
    /// over waits for its owner to give it up or to die.
    pub async fn claim(
        &self,
        owner: &str,
        lease: Duration,
        claims: &[LeaseClaim],
    ) -> Result<Vec<(String, String)>> {
        let names: Vec<&str> = claims.iter().map(|c| c.name.as_str()).collect();
        let regions: Vec<&str> = claims.iter().map(|c| c.region.as_str()).collect();
        let views: Vec<Option<&str>> = claims.iter().map(|c| c.view.as_deref()).collect();
        let sql = "INSERT INTO check_leases (check_name, region, owner, expires_at, view) \
             SELECT c.name, c.region, $1, now() + make_interval(secs => $2), c.view \
             FROM unnest($3::text[], $4::text[], $5::text[]) AS c(name, region, view) \
             ON CONFLICT (check_name, region) DO UPDATE SET owner = EXCLUDED.owner, \
               expires_at = EXCLUDED.expires_at, view = COALESCE(EXCLUDED.view, check_leases.view) \
             WHERE check_leases.owner = EXCLUDED.owner OR check_leases.expires_at < now() \
             RETURNING check_name, region";
        let rows = sqlx::query(sql)
            .bind(owner)
            .bind(lease.as_secs_f64())
            .bind(names)
            .bind(regions)
            .bind(views)
            .fetch_all(self.cluster_pool()?)
            .await
            .doing("claiming and renewing leases")?;
        rows.iter()
            .map(|row| Ok((row.try_get("check_name")?, row.try_get("region")?)))
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

    /// Every lease, with its view.
    pub async fn leases(&self) -> Result<Vec<Lease>> {
        let sql = "SELECT check_name, region, owner, expires_at, expires_at > now() AS live, view \
             FROM check_leases ORDER BY check_name, region";
        let rows = sqlx::query(sql)
            .fetch_all(self.cluster_pool()?)
            .await
            .doing("reading the leases")?;
        rows.iter()
            .map(|row| {
                Ok(Lease {
                    name: row.try_get("check_name")?,
                    region: row.try_get("region")?,
                    owner: row.try_get("owner")?,
                    expires_at: row.try_get("expires_at")?,
                    live: row.try_get("live")?,
                    view: row.try_get("view")?,
                })
            })
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
