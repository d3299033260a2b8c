//! Notification policy, a value with pure methods ([`Policy`]): which
//! channels hear about an incident change ([`routes`]), whether a check's
//! notifications are held back right now ([`holds`]: a dependency failing, a
//! silence, a maintenance window, the low digest), when reminders, the
//! digest and resends fall due ([`digest`]), and what each incident change
//! is ([`changes`]). Every method is told `now`; none reads the clock or
//! does I/O — the engine asks, then commits what it is told.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub mod changes;
pub mod digest;
pub mod holds;
pub mod matchers;
pub mod routes;
#[cfg(test)]
mod steps;

pub use changes::{Notice, Planned};
pub use digest::{Digest, Resend};
pub use holds::{Dependency, Maintenance, hold, silences_check};
pub use matchers::{Matcher, Matchers, Op};
pub use routes::{Event, Route, Windows, group_wait, route, route_with};

use crate::core::value::Crontab;
use crate::core::{Outgoing, Severity};
use crate::incident::{self, OpenIncident, Silence};
use crate::state::CheckState;

/// What the policy is built from (the config's routes, severities,
/// maintenance windows and forgetful channels).
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub routes: Vec<Route>,
    /// Response window per severity: an unacknowledged open incident is sent again after it.
    pub repeat: BTreeMap<Severity, Duration>,
    pub maintenance: Vec<Maintenance>,
    /// `[severities] low.digest`: low incidents wait for it instead of paging one by one.
    pub digest: Option<Crontab>,
    /// Channels that forget an incident unless told again, and how often.
    pub resend: Vec<(String, Duration)>,
}

/// The notification policy and the state it keeps between decisions.
#[derive(Debug)]
pub struct Policy {
    routes: Vec<Route>,
    repeat: BTreeMap<Severity, Duration>,
    /// Silences not yet ended, as the store has them.
    silences: Vec<Silence>,
    maintenance: Vec<Maintenance>,
    /// Grouping windows per channel (a route's `group_wait`).
    windows: Windows,
    digest: Option<Digest>,
    resend: Vec<Resend>,
}

/// A check as the policy sees it when deciding whether to hold it back.
pub struct Subject<'a> {
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub state: &'a CheckState,
    pub dependencies: &'a [Dependency<'a>],
}

impl Policy {
    /// The policy of `rules`, its timetable starting at `now`.
    pub fn new(rules: Rules, now: DateTime<Utc>) -> Policy {
        Policy {
            routes: rules.routes,
            repeat: rules.repeat,
            silences: Vec::new(),
            maintenance: rules.maintenance,
            windows: Windows::default(),
            digest: rules.digest.map(|d| Digest::new(d, now)),
            resend: rules
                .resend
                .into_iter()
                .map(|(channel, every)| Resend::new(channel, every, now))
                .collect(),
        }
    }

    /// Takes `newer`'s rules (a reloaded config), keeping the silences and
    /// the grouping windows already open.
    pub fn adopt(&mut self, newer: Policy) {
        let silences = std::mem::take(&mut self.silences);
        let windows = std::mem::take(&mut self.windows);
        *self = Policy {
            silences,
            windows,
            ..newer
        };
    }

    /// The silences not yet ended, as the store has them.
    pub fn set_silences(&mut self, silences: Vec<Silence>) {
        self.silences = silences;
    }

    pub fn add_silence(&mut self, silence: Silence) {
        self.silences.push(silence);
    }

    pub fn end_silence(&mut self, id: i64) {
        self.silences.retain(|s| s.id != id);
    }

    /// Forgets the silences ended by `now`.
    pub fn forget_ended(&mut self, now: DateTime<Utc>) {
        self.silences.retain(|s| s.ends_at > now);
    }

    /// Why the subject's notifications about an incident of `severity` are
    /// held back at `now`, if they are: low incidents wait for the daily
    /// digest, then dependencies, silences and maintenance ([`hold`]).
    pub fn hold(
        &self,
        subject: &Subject<'_>,
        severity: Severity,
        now: DateTime<Utc>,
    ) -> Option<String> {
        if severity == Severity::Low && self.digest.is_some() {
            return Some("low: waiting for the daily digest".into());
        }
        hold(
            subject.name,
            subject.labels,
            subject.state,
            subject.dependencies,
            &self.silences,
            &self.maintenance,
            now,
        )
    }

    /// Whether any route sends notifications of `severity` about a check with `labels` anywhere.
    pub fn routed(&self, severity: Severity, labels: &BTreeMap<String, String>) -> bool {
        self.routes.iter().any(|r| r.matches(severity, labels))
    }

    /// Whether `open` is due to be sent again at `now`: its severity's
    /// response window passed since people last heard, unacknowledged.
    pub fn reminder_due(&self, open: &OpenIncident, now: DateTime<Utc>) -> bool {
        self.repeat
            .get(&open.severity)
            .is_some_and(|window| incident::reminder_due(open, *window, now))
    }

    /// One row per channel that hears `notice` about check `check`: the
    /// routes' and those that heard of the incident before, each once, each
    /// going out at once; never `avoid` (the channel a `keeper:channel:NAME`
    /// check says is failing).
    pub fn recipients(
        &self,
        check: &str,
        labels: &BTreeMap<String, String>,
        notice: &Notice,
        avoid: Option<&str>,
    ) -> Vec<Outgoing> {
        let event = notice.event(check, labels);
        let mut rows = route_with(&self.routes, &event, &notice.heard);
        if let Some(avoid) = avoid {
            rows.retain(|row| row.channel != avoid);
        }
        rows
    }

    /// The outbox rows of `notice` about check `check`: [`Policy::recipients`],
    /// each in the notice's batch, or joining its channel's grouping window
    /// when a route gives it a `group_wait`.
    pub fn outgoing(
        &mut self,
        check: &str,
        labels: &BTreeMap<String, String>,
        notice: &Notice,
        avoid: Option<&str>,
    ) -> Vec<Outgoing> {
        let mut rows = self.recipients(check, labels, notice, avoid);
        let event = notice.event(check, labels);
        for row in &mut rows {
            let wait = group_wait(&self.routes, &event, &row.channel);
            row.batch_at = match notice.batch_at {
                Some(at) => Some(at),
                None if wait.is_zero() => None,
                None => Some(self.windows.batch_at(&row.channel, wait, event.at)),
            };
        }
        rows
    }

    /// Whether the daily digest is due at `now`; when it is, since when low
    /// incidents that came and went unseen belong in it (see [`Digest::due`]).
    pub fn digest_due(&mut self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.digest.as_mut()?.due(now)
    }

    /// The forgetful channels to tell again at `now` about the open incidents they heard of.
    pub fn resends_due(&mut self, now: DateTime<Utc>) -> Vec<String> {
        digest::due_resends(&mut self.resend, now)
    }
}

/// The link to an incident, when keeper knows its public URL.
pub fn incident_url(public_url: Option<&str>, id: i64) -> Option<String> {
    public_url.map(|base| format!("{base}/incidents/{id}"))
}
