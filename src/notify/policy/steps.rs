//! Step tests of the notification policy with an explicit clock: checks'
//! samples and the clock's ticks at given instants, driven the way the
//! engine drives them (decide, ask the policy, take the plan), with a
//! pretend store that hands out ids and remembers who heard of what. What
//! the integration tests in `tests/it/alerting.rs` wait for in real time
//! (reminders, digests, holds ending) takes no time here.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::changes::{self, Planned};
use super::{Dependency, Maintenance, Policy, Route, Rules, Subject};
use crate::classify::Verdict;
use crate::core::{Color, EventKind, Outgoing, Severity};
use crate::incident::{self, IncidentChange, OpenIncident, Silence};
use crate::state::CheckState;

struct Check {
    name: String,
    labels: BTreeMap<String, String>,
    depends_on: Vec<usize>,
    failures_before_alert: u32,
    state: CheckState,
    open: Option<OpenIncident>,
}

/// The engine's loop over a policy, the store a list.
struct World {
    policy: Policy,
    checks: Vec<Check>,
    /// Every outbox row, in order.
    sent: Vec<Outgoing>,
    /// How many of them [`World::news`] showed already.
    seen: usize,
    /// Every incident change committed, in order.
    timeline: Vec<IncidentChange>,
    ids: i64,
}

/// 2026-11-29 (a Sunday) 02:00:00 UTC plus `s` seconds.
fn at(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 2, 0, 0).unwrap() + chrono::Duration::seconds(s)
}

fn route(severities: &[Severity], channels: &[&str], group_wait: u64) -> Route {
    Route {
        severities: severities.to_vec(),
        channels: channels.iter().map(|c| c.to_string()).collect(),
        matches: Default::default(),
        group_wait: Duration::from_secs(group_wait),
    }
}

/// Every notification to the one channel `hook`, at once.
fn to_hook() -> Rules {
    Rules {
        routes: vec![route(&[], &["hook"], 0)],
        ..Rules::default()
    }
}

fn repeat(severity: Severity, secs: u64) -> BTreeMap<Severity, Duration> {
    [(severity, Duration::from_secs(secs))].into()
}

impl World {
    fn new(rules: Rules, checks: &[&str]) -> World {
        World {
            policy: Policy::new(rules, at(0)),
            checks: checks
                .iter()
                .map(|name| Check {
                    name: name.to_string(),
                    labels: BTreeMap::new(),
                    depends_on: Vec::new(),
                    failures_before_alert: 1,
                    state: CheckState::default(),
                    open: None,
                })
                .collect(),
            sent: Vec::new(),
            seen: 0,
            timeline: Vec::new(),
            ids: 0,
        }
    }

    fn hold(&self, i: usize, severity: Severity, now: DateTime<Utc>) -> Option<String> {
        let check = &self.checks[i];
        let dependencies: Vec<Dependency<'_>> = check
            .depends_on
            .iter()
            .map(|&d| Dependency {
                name: &self.checks[d].name,
                state: &self.checks[d].state,
            })
            .collect();
        let subject = Subject {
            name: &check.name,
            labels: &check.labels,
            state: &check.state,
            dependencies: &dependencies,
        };
        self.policy.hold(&subject, severity, now)
    }

    /// A sample of check `i` at `s`: red with `severity`, or green with `None`.
    fn sample(&mut self, i: usize, severity: Option<Severity>, s: i64) {
        let now = at(s);
        let verdict = Verdict::of(severity, format!("sample at {s}"));
        let check = &mut self.checks[i];
        check
            .state
            .observe(&verdict, now, check.failures_before_alert, 1);
        let Some(decision) = incident::decide(&check.state, check.open.as_ref()) else {
            return;
        };
        let open = check.open.clone();
        let severity = changes::severity_of(&decision, open.as_ref());
        let hold = self.hold(i, severity, now);
        let name = self.checks[i].name.clone();
        let planned = changes::decided(&name, decision, open.as_ref(), hold, now);
        self.take(i, planned);
    }

    /// The clock's tick at `s`, as the engine's: holds ended, reminders, the digest.
    fn tick(&mut self, s: i64) {
        let now = at(s);
        self.policy.forget_ended(now);
        for i in 0..self.checks.len() {
            if let Some(open) = self.checks[i].open.clone()
                && changes::held_back(&open)
                && self.hold(i, open.severity, now).is_none()
            {
                self.take(i, changes::released(&open, now));
            }
        }
        for i in 0..self.checks.len() {
            if let Some(open) = self.checks[i].open.clone()
                && self.policy.reminder_due(&open, now)
                && self.hold(i, open.severity, now).is_none()
            {
                self.take(i, changes::reminded(&open, now));
            }
        }
        if self.policy.digest_due(now).is_some() {
            for i in 0..self.checks.len() {
                if let Some(open) = self.checks[i].open.clone()
                    && open.severity == Severity::Low
                {
                    self.take(i, changes::in_digest(&open, now));
                }
            }
        }
    }

    fn acknowledge(&mut self, i: usize, s: i64) {
        let open = self.checks[i].open.clone().expect("an open incident");
        self.take(i, changes::acknowledged(&open, Some("ann".into()), at(s)));
    }

    /// Commits a plan: the pretend store gives an opening its id and
    /// remembers who heard of each incident.
    fn take(&mut self, i: usize, planned: Planned) {
        let Planned {
            change,
            notice,
            mut next,
        } = planned;
        if let Some(next) = &mut next
            && next.id == 0
        {
            self.ids += 1;
            next.id = self.ids;
        }
        if let Some(mut notice) = notice {
            if notice.incident == 0 {
                notice.incident = self.ids;
            }
            if notice.tells_who_heard() {
                notice.heard = self.heard(notice.incident);
            }
            let check = &self.checks[i];
            let rows = self
                .policy
                .outgoing(&check.name, &check.labels, &notice, None);
            self.sent.extend(rows);
        }
        self.timeline.push(change);
        self.checks[i].open = next;
    }

    fn heard(&self, incident: i64) -> Vec<String> {
        let mut channels: Vec<String> = Vec::new();
        for row in self
            .sent
            .iter()
            .filter(|r| r.notification.incident == incident)
        {
            if !channels.contains(&row.channel) {
                channels.push(row.channel.clone());
            }
        }
        channels
    }

    /// What went out since the last look: (channel, check, kind, at).
    fn news(&mut self) -> Vec<(String, String, EventKind, DateTime<Utc>)> {
        let news = self.sent[self.seen..]
            .iter()
            .map(|r| {
                let n = &r.notification;
                (r.channel.clone(), n.check.clone(), n.state, n.at)
            })
            .collect();
        self.seen = self.sent.len();
        news
    }

    /// The batch times of what went out since the last look.
    fn batches(&self) -> Vec<Option<DateTime<Utc>>> {
        self.sent[self.seen..].iter().map(|r| r.batch_at).collect()
    }
}

fn one(
    channel: &str,
    check: &str,
    kind: EventKind,
    s: i64,
) -> (String, String, EventKind, DateTime<Utc>) {
    (channel.into(), check.into(), kind, at(s))
}

#[test]
fn an_unacknowledged_incident_repeats_each_window_until_acknowledged_then_never() {
    let rules = Rules {
        repeat: repeat(Severity::Critical, 60),
        ..to_hook()
    };
    let mut w = World::new(rules, &["web"]);
    w.sample(0, Some(Severity::Critical), 0);
    assert_eq!(w.news(), [one("hook", "web", EventKind::Opened, 0)]);
    w.sample(0, Some(Severity::Critical), 30);
    w.tick(59);
    assert_eq!(w.news(), [], "within the response window");
    w.tick(60);
    assert_eq!(w.news(), [one("hook", "web", EventKind::Reminder, 60)]);
    w.tick(119);
    w.tick(120);
    assert_eq!(w.news(), [one("hook", "web", EventKind::Reminder, 120)]);
    w.acknowledge(0, 130);
    assert_eq!(w.news(), [one("hook", "web", EventKind::Acknowledged, 130)]);
    for s in (180..=600).step_by(60) {
        w.tick(s);
    }
    assert_eq!(w.news(), [], "acknowledged: no more reminders");
    w.sample(0, None, 610);
    assert_eq!(w.news(), [one("hook", "web", EventKind::Resolved, 610)]);
    assert_eq!(w.checks[0].open, None);
    let kinds: Vec<_> = w.timeline.iter().map(|c| incident::event_of(c).0).collect();
    assert_eq!(
        kinds,
        ["opened", "reminder", "reminder", "acknowledged", "resolved"]
    );
}

#[test]
fn an_escalation_pages_its_route_and_whoever_heard_the_opening_hears_the_resolve() {
    let rules = Rules {
        routes: vec![
            route(&[Severity::Medium], &["chat"], 0),
            route(&[Severity::Critical], &["pager"], 0),
        ],
        ..Rules::default()
    };
    let mut w = World::new(rules, &["api"]);
    w.sample(0, Some(Severity::Medium), 0);
    assert_eq!(w.news(), [one("chat", "api", EventKind::Opened, 0)]);
    w.sample(0, Some(Severity::Medium), 5);
    assert_eq!(w.news(), [], "the same severity decides nothing");
    w.sample(0, Some(Severity::Critical), 10);
    assert_eq!(w.news(), [one("pager", "api", EventKind::Escalated, 10)]);
    w.sample(0, Some(Severity::Medium), 15);
    assert_eq!(w.news(), [], "an incident never lowers");
    w.sample(0, None, 20);
    assert_eq!(
        w.news(),
        [
            one("pager", "api", EventKind::Resolved, 20),
            one("chat", "api", EventKind::Resolved, 20),
        ],
        "resolved at critical: the pager by its route, the chat because it heard the opening"
    );
}

fn silence(check: &str, from: i64, to: i64) -> Silence {
    Silence {
        id: 1,
        check: Some(check.into()),
        labels: BTreeMap::new(),
        starts_at: at(from),
        ends_at: at(to),
        comment: String::new(),
        created_by: None,
    }
}

/// The timeline entry of the last change: (kind, detail).
fn last(w: &World) -> (&'static str, String) {
    incident::event_of(w.timeline.last().expect("a change"))
}

#[test]
fn a_silence_holds_the_opening_and_its_reminders_until_it_ends_then_pages_once() {
    let rules = Rules {
        repeat: repeat(Severity::Critical, 60),
        ..to_hook()
    };
    let mut w = World::new(rules, &["web"]);
    w.policy.add_silence(silence("web", -10, 300));
    w.sample(0, Some(Severity::Critical), 0);
    assert_eq!(last(&w).0, "opened", "recorded");
    let open = w.checks[0].open.clone().unwrap();
    assert!(!open.notified);
    assert_eq!(
        open.held_by.as_deref(),
        Some("silence 1 until 2026-11-29T02:05:00Z")
    );
    for s in [60, 120, 180, 299] {
        w.sample(0, Some(Severity::Critical), s);
        w.tick(s);
    }
    assert_eq!(w.news(), [], "held: no page, no reminder");
    w.tick(300);
    assert_eq!(w.news(), [one("hook", "web", EventKind::Opened, 300)]);
    assert_eq!(
        last(&w),
        (
            "notified",
            "held back while silence 1 until 2026-11-29T02:05:00Z".into()
        )
    );
    w.tick(301);
    assert_eq!(w.news(), [], "once");
    w.tick(360);
    assert_eq!(w.news(), [one("hook", "web", EventKind::Reminder, 360)]);
}

#[test]
fn ending_a_silence_early_releases_at_the_next_look() {
    let rules = to_hook();
    let mut w = World::new(rules, &["web"]);
    w.policy.add_silence(silence("web", -10, 3600));
    w.sample(0, Some(Severity::High), 0);
    w.tick(10);
    assert_eq!(w.news(), []);
    w.policy.end_silence(1);
    w.tick(11);
    assert_eq!(w.news(), [one("hook", "web", EventKind::Opened, 11)]);
}

#[test]
fn a_held_incident_that_resolves_unseen_tells_nobody() {
    let rules = to_hook();
    let mut w = World::new(rules, &["web"]);
    w.policy.add_silence(silence("web", -10, 3600));
    w.sample(0, Some(Severity::High), 0);
    w.sample(0, None, 5);
    assert_eq!(w.news(), []);
    assert_eq!(last(&w).0, "resolved");
    assert_eq!(w.checks[0].open, None);
}

#[test]
fn a_maintenance_window_holds_the_opening_until_it_closes() {
    let rules = Rules {
        // Sundays 02:00 for ten minutes; at(0) is a Sunday 02:00.
        maintenance: vec![Maintenance {
            schedule: "0 2 * * SUN".parse().unwrap(),
            duration: Duration::from_secs(600),
            matches: Default::default(),
            checks: vec!["web".into()],
            comment: String::new(),
        }],
        ..to_hook()
    };
    let mut w = World::new(rules, &["web", "db"]);
    w.sample(0, Some(Severity::Critical), 30);
    w.sample(1, Some(Severity::Critical), 30);
    assert_eq!(
        w.news(),
        [one("hook", "db", EventKind::Opened, 30)],
        "db is not in the window"
    );
    assert_eq!(
        w.checks[0].open.as_ref().unwrap().held_by.as_deref(),
        Some("maintenance window until 2026-11-29T02:10:00Z")
    );
    w.tick(599);
    assert_eq!(w.news(), []);
    w.tick(600);
    assert_eq!(w.news(), [one("hook", "web", EventKind::Opened, 600)]);
}

#[test]
fn a_failing_dependency_pages_once_and_a_dependent_pages_if_it_fails_on_its_own() {
    let rules = to_hook();
    let mut w = World::new(rules, &["db", "web", "api"]);
    for i in [1, 2] {
        w.checks[i].depends_on = vec![0];
    }
    w.sample(0, Some(Severity::Critical), 0);
    w.sample(1, Some(Severity::Critical), 1);
    w.sample(2, Some(Severity::Critical), 1);
    assert_eq!(w.news(), [one("hook", "db", EventKind::Opened, 0)]);
    assert_eq!(
        w.checks[1].open.as_ref().unwrap().held_by.as_deref(),
        Some("dependency db is failing")
    );
    w.sample(0, None, 10);
    w.tick(10);
    assert_eq!(
        w.news(),
        [one("hook", "db", EventKind::Resolved, 10)],
        "the dependents have not failed since db recovered"
    );
    // web still fails on its own; api recovers.
    w.sample(1, Some(Severity::Critical), 11);
    w.sample(2, None, 11);
    w.tick(12);
    assert_eq!(w.news(), [one("hook", "web", EventKind::Opened, 12)]);
    assert_eq!(
        last(&w),
        (
            "notified",
            "held back while dependency db is failing".into()
        )
    );
    assert_eq!(w.checks[2].open, None, "api resolved, unseen");
}

#[test]
fn low_incidents_wait_for_the_digest_and_go_out_together_in_one_batch() {
    let rules = Rules {
        repeat: repeat(Severity::Low, 60),
        // Daily at 03:00; at(0) is 02:00.
        digest: Some("0 3 * * *".parse().unwrap()),
        ..to_hook()
    };
    let mut w = World::new(rules, &["a", "b", "c"]);
    w.sample(0, Some(Severity::Low), 10);
    w.sample(1, Some(Severity::Low), 20);
    w.sample(2, Some(Severity::Critical), 30);
    assert_eq!(
        w.news(),
        [one("hook", "c", EventKind::Opened, 30)],
        "critical pages at once"
    );
    assert_eq!(
        w.checks[0].open.as_ref().unwrap().held_by.as_deref(),
        Some("low: waiting for the daily digest")
    );
    for s in (60..3600).step_by(60) {
        w.tick(s);
    }
    assert!(
        w.news().iter().all(|n| n.1 == "c"),
        "no low page, no low reminder before the digest"
    );
    w.tick(3600);
    let gather = Some(at(3602));
    assert_eq!(w.batches(), [gather, gather], "one batch");
    assert_eq!(
        w.news(),
        [
            one("hook", "a", EventKind::Opened, 3600),
            one("hook", "b", EventKind::Opened, 3600)
        ]
    );
    w.tick(3601);
    assert_eq!(w.news(), [], "once a day");
    // The next day the still-open ones are in it again, as reminders.
    w.tick(3600 + 86_400);
    let kinds: Vec<_> = w
        .news()
        .into_iter()
        .filter(|n| n.1 != "c")
        .map(|n| n.2)
        .collect();
    assert_eq!(kinds, [EventKind::Reminder, EventKind::Reminder]);
}

#[test]
fn a_low_incident_that_came_and_went_is_listed_resolved_in_the_digest() {
    let inc = incident::Incident {
        id: 9,
        check: "a".into(),
        severity: Severity::Low,
        color: Color::Yellow,
        message: "slow".into(),
        started_at: at(10),
        acknowledged_at: None,
        resolved_at: Some(at(70)),
        notified_at: None,
    };
    let (change, notice) = changes::resolved_in_digest(&inc, at(3600));
    assert!(matches!(change, IncidentChange::Notify { id: 9, .. }));
    assert_eq!(notice.kind, EventKind::Resolved);
    assert_eq!((notice.at, notice.batch_at), (at(70), Some(at(3602))));
}

#[test]
fn with_the_digest_off_a_low_incident_pages_at_once() {
    let rules = to_hook();
    let mut w = World::new(rules, &["a"]);
    w.sample(0, Some(Severity::Low), 10);
    assert_eq!(w.news(), [one("hook", "a", EventKind::Opened, 10)]);
}

#[test]
fn checks_failing_within_group_wait_share_one_batch_per_channel() {
    let rules = Rules {
        routes: vec![route(&[], &["hook", "mail"], 5), route(&[], &["pager"], 0)],
        ..Rules::default()
    };
    let names: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut w = World::new(rules, &names);
    for i in 0..10 {
        w.sample(i, Some(Severity::Critical), i as i64 / 3);
    }
    let mut windows: BTreeMap<String, Vec<Option<DateTime<Utc>>>> = BTreeMap::new();
    for row in &w.sent {
        windows
            .entry(row.channel.clone())
            .or_default()
            .push(row.batch_at);
    }
    assert_eq!(windows["hook"], vec![Some(at(5)); 10], "one window");
    assert_eq!(windows["mail"], vec![Some(at(5)); 10]);
    assert_eq!(windows["pager"], vec![None; 10], "no group_wait: at once");
    // After the window a new one opens (at 6, till 11); the reopening at 7 joins it.
    w.news();
    w.sample(0, None, 6);
    w.sample(0, Some(Severity::Critical), 7);
    let new_window = Some(at(11));
    assert_eq!(
        w.batches(),
        [new_window, new_window, None, new_window, new_window, None]
    );
}
