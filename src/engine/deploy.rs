//! What a deployment changes, pure: after a deployment of an app, for the
//! app's `deploy_watch`, its checks alert at the first failure, and an
//! incident that opens in that time says so (`started 3 min after deploy v42
//! of web (by ci)`) with the app's rollback hint. [`Watch`] holds the newest
//! deployment per app; every answer is given for a `now` the caller passes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::config::Deploys;
use crate::core::deployment::Deployment;
use crate::core::text::MAX_TEXT;

/// The newest deployment of each app, and what each app's watch is.
#[derive(Debug)]
pub struct Watch {
    rules: Deploys,
    newest: BTreeMap<String, Deployment>,
    /// The newest deployment of each app until its watch ends: then its
    /// samples are compared with the hour before it ([`Watch::ended`]).
    pending: Vec<Deployment>,
    /// When the store was last read for deployments recorded elsewhere.
    read_at: Option<DateTime<Utc>>,
}

/// How often the store is read for deployments recorded elsewhere (another
/// instance's API); those recorded here reach the engine at once.
pub const READ_EVERY: chrono::Duration = chrono::Duration::seconds(15);

impl Watch {
    pub fn new(rules: Deploys) -> Watch {
        Watch {
            rules,
            newest: BTreeMap::new(),
            pending: Vec::new(),
            read_at: None,
        }
    }

    /// What follows a deployment from now on (a config reload); the
    /// deployments seen are kept.
    pub fn set_rules(&mut self, rules: Deploys) {
        self.rules = rules;
    }

    /// Whether the store is due to be read for deployments at `now`; if it
    /// is, the next read is [`READ_EVERY`] on.
    pub fn read_due(&mut self, now: DateTime<Utc>) -> bool {
        let due = self.read_at.is_none_or(|at| now - at >= READ_EVERY);
        if due {
            self.read_at = Some(now);
        }
        due
    }

    /// How far back deployments matter at all (the longest watch).
    pub fn horizon(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.rules.longest_watch()).unwrap_or(chrono::Duration::MAX)
    }

    /// Takes `deployment` into account at `now`; an older one than the
    /// app's newest, or one older than the longest watch (recorded after
    /// the fact: nothing to watch or judge), changes nothing. True when it
    /// is the app's newest now.
    pub fn record(&mut self, deployment: Deployment, now: DateTime<Utc>) -> bool {
        if deployment.at + self.horizon() < now {
            return false;
        }
        match self.newest.get(&deployment.app) {
            Some(had) if (had.at, had.id) >= (deployment.at, deployment.id) => false,
            _ => {
                self.pending.retain(|d| d.app != deployment.app);
                self.pending.push(deployment.clone());
                self.newest.insert(deployment.app.clone(), deployment);
                true
            }
        }
    }

    /// The deployments whose watch ended by `now`, each once, with the end.
    pub fn ended(&mut self, now: DateTime<Utc>) -> Vec<(Deployment, DateTime<Utc>)> {
        let end = |d: &Deployment| {
            let watch = chrono::Duration::from_std(self.rules.watch(&d.app));
            d.at + watch.unwrap_or(chrono::Duration::zero())
        };
        let (ended, pending): (Vec<_>, Vec<_>) =
            self.pending.drain(..).partition(|d| end(d) <= now);
        self.pending = pending;
        ended.into_iter().map(|d| (d.clone(), end(&d))).collect()
    }

    /// How long `app`'s watch is.
    pub fn watch_of(&self, app: &str) -> chrono::Duration {
        chrono::Duration::from_std(self.rules.watch(app)).unwrap_or(chrono::Duration::MAX)
    }

    /// How to roll `app` back, when keeper knows.
    pub fn rollback_hint(&self, app: &str) -> Option<&str> {
        self.rules.rollback_hint(app)
    }

    /// The deployment of `app` whose watch covers `at`: made at or before
    /// `at`, less than the app's `deploy_watch` before it.
    pub fn watching(&self, app: &str, at: DateTime<Utc>) -> Option<&Deployment> {
        let d = self.newest.get(app)?;
        let watch = chrono::Duration::from_std(self.rules.watch(app)).ok()?;
        (d.at <= at && at - d.at < watch).then_some(d)
    }

    /// How many failures in a row alert for a check of `app` configured with
    /// `configured`, at `at`: one while a deployment of the app is watched.
    pub fn failures_before_alert(
        &self,
        app: Option<&str>,
        configured: u32,
        at: DateTime<Utc>,
    ) -> u32 {
        match app {
            Some(app) if self.watching(app, at).is_some() => 1,
            _ => configured,
        }
    }

    /// `message` of an incident of a check of `app` that started at
    /// `started_at`, with what a watched deployment adds: the deployment
    /// ([`note`]) and the rollback hint. Unchanged outside any watch.
    pub fn annotate(&self, app: Option<&str>, message: &str, started_at: DateTime<Utc>) -> String {
        let Some(d) = app.and_then(|app| self.watching(app, started_at)) else {
            return message.to_string();
        };
        let note = note(d, started_at, self.rules.rollback_hint(&d.app));
        // The note must survive every channel's cut: the probe's text gives way.
        let room = MAX_TEXT.saturating_sub(note.len() + 1);
        let message = crate::core::text::clean_to(message, room);
        format!("{message}\n{note}")
    }
}

/// `started 3 min after deploy v42 of web (by ci)`, and on a second line the
/// rollback hint when there is one.
pub fn note(d: &Deployment, started_at: DateTime<Utc>, rollback_hint: Option<&str>) -> String {
    let mut note = format!(
        "started {} after deploy {} of {}",
        after(started_at - d.at),
        d.version,
        d.app
    );
    if !d.by.is_empty() {
        note.push_str(&format!(" (by {})", d.by));
    }
    if let Some(hint) = rollback_hint {
        note.push_str(&format!("\nto roll back: {hint}"));
    }
    note
}

/// `40 s`, `3 min`, `2 h 5 min`: whole units, rounded down.
fn after(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        _ if s % 3600 < 60 => format!("{} h", s / 3600),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;

    use super::*;
    use crate::config::AppDeploys;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 6, 0, 0).unwrap() + chrono::Duration::seconds(secs)
    }

    fn deploy(id: i64, app: &str, version: &str, by: &str, at: i64) -> Deployment {
        Deployment {
            id,
            app: app.into(),
            version: version.into(),
            description: String::new(),
            by: by.into(),
            at: t(at),
        }
    }

    /// 10 minutes by default; `api` 30 minutes with a hint of its own.
    fn watch() -> Watch {
        Watch::new(Deploys {
            watch: Duration::from_secs(600),
            apps: BTreeMap::from([(
                "api".to_string(),
                AppDeploys {
                    watch: Duration::from_secs(1800),
                    rollback_hint: Some("flyctl releases rollback --app api-prod".into()),
                },
            )]),
        })
    }

    #[test]
    fn a_deployment_is_watched_from_its_time_for_its_apps_watch() {
        let mut w = watch();
        w.record(deploy(1, "web", "v42", "ci", 0), t(0));
        w.record(deploy(2, "api", "v7", "", 0), t(0));
        assert!(w.watching("web", t(-1)).is_none(), "not before it");
        assert_eq!(w.watching("web", t(0)).map(|d| d.id), Some(1));
        assert_eq!(w.watching("web", t(599)).map(|d| d.id), Some(1));
        assert!(w.watching("web", t(600)).is_none(), "the default 10 min");
        assert_eq!(w.watching("api", t(1799)).map(|d| d.id), Some(2));
        assert!(w.watching("api", t(1800)).is_none(), "api's own 30 min");
        assert!(w.watching("other", t(10)).is_none());
        assert_eq!(w.horizon(), chrono::Duration::minutes(30));
    }

    #[test]
    fn the_newest_deployment_counts_whatever_the_order_heard() {
        let mut w = watch();
        w.record(deploy(2, "web", "v43", "ci", 300), t(0));
        w.record(deploy(1, "web", "v42", "ci", 0), t(0));
        assert_eq!(
            w.watching("web", t(400)).map(|d| d.version.as_str()),
            Some("v43")
        );
        assert!(w.watching("web", t(200)).is_none(), "v43 came after 200 s");
        assert_eq!(w.watching("web", t(899)).map(|d| d.id), Some(2));
    }

    #[test]
    fn each_apps_newest_deployment_ends_its_watch_once() {
        let mut w = watch();
        assert!(w.record(deploy(1, "web", "v41", "ci", 0), t(0)));
        assert!(
            w.record(deploy(2, "web", "v42", "ci", 60), t(0)),
            "v42 replaces v41"
        );
        assert!(
            !w.record(deploy(1, "web", "v41", "ci", 0), t(0)),
            "heard again: older"
        );
        assert!(w.record(deploy(3, "api", "v7", "", 0), t(0)));
        assert!(
            !w.record(deploy(4, "api", "v6", "", -1801), t(0)),
            "older than the longest watch: recorded after the fact"
        );
        assert!(w.ended(t(659)).is_empty());
        let ended: Vec<(i64, DateTime<Utc>)> = w
            .ended(t(660))
            .into_iter()
            .map(|(d, end)| (d.id, end))
            .collect();
        assert_eq!(ended, [(2, t(660))]);
        assert!(w.ended(t(1000)).is_empty(), "once");
        assert_eq!(
            w.ended(t(1800))
                .into_iter()
                .map(|(d, _)| d.id)
                .collect::<Vec<_>>(),
            [3]
        );
    }

    #[test]
    fn the_store_is_read_for_other_deployments_every_fifteen_seconds() {
        let mut w = watch();
        assert!(w.read_due(t(0)), "at once");
        assert!(!w.read_due(t(14)));
        assert!(w.read_due(t(15)));
        assert!(!w.read_due(t(16)));
    }

    #[test]
    fn checks_alert_at_the_first_failure_only_while_watched() {
        let mut w = watch();
        w.record(deploy(1, "web", "v42", "ci", 0), t(0));
        assert_eq!(w.failures_before_alert(Some("web"), 3, t(60)), 1);
        assert_eq!(w.failures_before_alert(Some("web"), 3, t(600)), 3);
        assert_eq!(w.failures_before_alert(Some("api"), 3, t(60)), 3);
        assert_eq!(w.failures_before_alert(None, 2, t(60)), 2);
    }

    #[test]
    fn an_incident_in_the_watch_names_the_deployment_and_the_rollback() {
        let mut w = watch();
        w.record(deploy(1, "web", "v42", "ci", 0), t(0));
        w.record(deploy(2, "api", "v7", "", 30), t(0));
        assert_eq!(
            w.annotate(Some("web"), "GET /health: 503", t(200)),
            "GET /health: 503\nstarted 3 min after deploy v42 of web (by ci)"
        );
        assert_eq!(
            w.annotate(Some("api"), "down", t(75)),
            "down\nstarted 45 s after deploy v7 of api\nto roll back: flyctl releases rollback --app api-prod"
        );
        assert_eq!(
            w.annotate(Some("web"), "down", t(601)),
            "down",
            "after the watch"
        );
        assert_eq!(w.annotate(None, "down", t(60)), "down");
        // A long message is cut so the note always fits.
        let long = "x".repeat(2 * MAX_TEXT);
        let annotated = w.annotate(Some("web"), &long, t(60));
        assert!(annotated.len() <= MAX_TEXT, "{}", annotated.len());
        assert!(annotated.ends_with("\nstarted 1 min after deploy v42 of web (by ci)"));
    }

    #[test]
    fn durations_read_as_people_say_them() {
        let cases = [
            (0, "0 s"),
            (59, "59 s"),
            (60, "1 min"),
            (3599, "59 min"),
            (3600, "1 h"),
            (3659, "1 h"),
            (3660, "1 h 1 min"),
            (-5, "0 s"),
        ];
        for (secs, want) in cases {
            assert_eq!(after(chrono::Duration::seconds(secs)), want, "{secs}");
        }
    }
}
