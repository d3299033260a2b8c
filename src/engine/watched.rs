//! The engine's side of the regression rule ([`regression`]): when a
//! deployment's watch ends, each check of its app has its samples since the
//! deployment compared with the hour before it; a check that regressed
//! carries the regression as its verdict (so it opens an incident that says
//! so) until its samples over the last watch are back within the band,
//! looked at every [`RECHECK`], or the app is deployed again.

use chrono::{DateTime, Utc};

use super::Engine;
use super::regression::{self, Point, Window};
use crate::classify::Verdict;
use crate::core::deployment::Deployment;

/// How often a regressed check's recent samples are looked at again.
pub const RECHECK: chrono::Duration = chrono::Duration::minutes(1);
/// The most samples read for one window.
const MAX_POINTS: u32 = 20_000;

/// A check that regressed after a deployment.
#[derive(Debug)]
pub struct Regressed {
    pub deployment: Deployment,
    /// The hour before the deployment.
    pub before: Window,
    /// What the check is while it lasts.
    pub verdict: Verdict,
    pub recheck_at: DateTime<Utc>,
}

impl Engine {
    /// A deployment was recorded: its app's checks are watched, and a
    /// regression of an earlier deployment of it no longer stands.
    pub(super) fn deployed(&mut self, deployment: Deployment, now: DateTime<Utc>) {
        let app = deployment.app.clone();
        if self.deploys.record(deployment, now) {
            let checks = &self.checks;
            self.regressions
                .retain(|&i, _| checks[i].config.app() != Some(app.as_str()));
        }
    }

    /// The regression verdicts due at `now`: deployments whose watch ended
    /// are judged, regressed checks looked at again.
    pub(super) async fn judge_deployments(&mut self, now: DateTime<Utc>) {
        if self.deploys.read_due(now) {
            self.read_deployments(now).await;
        }
        for (deployment, end) in self.deploys.ended(now) {
            for i in self.checks_of(&deployment.app) {
                let since = deployment.at - regression::BASELINE;
                let Some(points) = self.points(i, since).await else {
                    continue;
                };
                let before = regression::window(&points, since, deployment.at);
                let after = regression::window(&points, deployment.at, end);
                let hint = self.deploys.rollback_hint(&deployment.app);
                let Some(verdict) = regression::judge_windows(&before, &after, &deployment, hint)
                else {
                    continue;
                };
                tracing::warn!(check = %self.checks[i].config.name, reason = %verdict.reason, "regression after a deployment");
                let recheck_at = now + RECHECK;
                let deployment = deployment.clone();
                let regressed = Regressed {
                    deployment,
                    before,
                    verdict,
                    recheck_at,
                };
                self.regressions.insert(i, regressed);
            }
        }
        let due: Vec<usize> = (self.regressions.iter())
            .filter(|(_, r)| r.recheck_at <= now)
            .map(|(&i, _)| i)
            .collect();
        for i in due {
            self.recheck(i, now).await;
        }
    }

    /// Looks at regressed check `i`'s last watch of samples at `now`: still
    /// past the band, its verdict is brought up to date; else it is lifted.
    async fn recheck(&mut self, i: usize, now: DateTime<Utc>) {
        let Some(r) = self.regressions.get(&i) else {
            return;
        };
        let since = now - self.deploys.watch_of(&r.deployment.app);
        let Some(points) = self.points(i, since).await else {
            return;
        };
        let Some(r) = self.regressions.get_mut(&i) else {
            return;
        };
        let recent = regression::window(&points, since, now);
        let hint = self.deploys.rollback_hint(&r.deployment.app);
        match regression::judge_windows(&r.before, &recent, &r.deployment, hint) {
            Some(verdict) => {
                r.verdict = verdict;
                r.recheck_at = now + RECHECK;
            }
            None => {
                tracing::info!(check = %self.checks[i].config.name, "regression over: back within the band");
                self.regressions.remove(&i);
            }
        }
    }

    /// Deployments recorded elsewhere (another instance sharing the
    /// database) within the longest watch, up to an hour ahead; those
    /// already known change nothing.
    pub(super) async fn read_deployments(&mut self, now: DateTime<Utc>) {
        let store = self.store.clone();
        let (since, until) = (
            now - self.deploys.horizon(),
            now + chrono::Duration::hours(1),
        );
        match self
            .guarded(store.deployments(None, since, until, 1000))
            .await
        {
            Ok(deployments) => deployments.into_iter().for_each(|d| self.deployed(d, now)),
            // Storage away is said once, where it is noticed.
            Err(crate::store::StoreError::Away) => {}
            Err(e) => tracing::warn!(error = %e, "reading recent deployments"),
        }
    }

    /// The checks belonging to `app`.
    fn checks_of(&self, app: &str) -> Vec<usize> {
        (0..self.checks.len())
            .filter(|&i| self.checks[i].config.app() == Some(app))
            .collect()
    }

    /// Check `i`'s stored samples since `since`; `None` when the store did
    /// not answer (the rule then waits for the next look).
    async fn points(&mut self, i: usize, since: DateTime<Utc>) -> Option<Vec<Point>> {
        let store = self.store.clone();
        let name = self.checks[i].config.name.clone();
        let rows = match self.guarded(store.samples(&name, since, MAX_POINTS)).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(check = %name, error = %e, "reading samples to compare with before a deployment");
                return None;
            }
        };
        let error_rate = |metrics: &Option<String>| {
            let metrics: serde_json::Value = serde_json::from_str(metrics.as_deref()?).ok()?;
            metrics.get("error_rate_pct")?.as_f64()
        };
        Some(
            rows.iter()
                .map(|r| Point {
                    at: r.at,
                    up: r.up,
                    latency_ms: r.latency_ms,
                    error_rate_pct: error_rate(&r.metrics),
                })
                .collect(),
        )
    }
}
