//! Where notifications go: routes match an event by severity and labels
//! (Alertmanager's matchers, [`super::matchers`]),
//! every matching route's channels hear it, each channel once ([`route`],
//! [`route_with`] adding whoever heard of the incident before), and a
//! channel with a `group_wait` gathers a storm into one message ([`Windows`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Matchers;
use crate::core::{Color, EventKind, Notification, Outgoing, Severity};

/// `[[routes]]`: which notifications go to which channels.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// Empty: every severity.
    pub severities: Vec<Severity>,
    pub channels: Vec<String>,
    /// Label matchers a check must satisfy, all of them.
    pub matches: Matchers,
    pub group_wait: Duration,
}

impl Route {
    pub fn matches(&self, severity: Severity, labels: &BTreeMap<String, String>) -> bool {
        (self.severities.is_empty() || self.severities.contains(&severity))
            && self.matches.matches(labels)
    }
}

/// The facts of an incident change a notification is made from.
#[derive(Clone, Debug)]
pub struct Event<'a> {
    pub check: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub kind: EventKind,
    /// 0 for a new incident: the store fills in the id it gets.
    pub incident: i64,
    pub severity: Severity,
    pub color: Color,
    pub message: &'a str,
    pub started_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// One outbox row per channel of every route matching the event.
pub fn route(routes: &[Route], event: &Event<'_>) -> Vec<Outgoing> {
    route_with(routes, event, &[])
}

/// [`route`], plus the channels in `heard` (those an incident's earlier
/// notifications went to): whoever heard it open hears it acknowledged and
/// resolved, even when the incident's severity has since left their route.
pub fn route_with(routes: &[Route], event: &Event<'_>, heard: &[String]) -> Vec<Outgoing> {
    let mut channels: Vec<&str> = Vec::new();
    for r in routes
        .iter()
        .filter(|r| r.matches(event.severity, event.labels))
    {
        for ch in &r.channels {
            if !channels.contains(&ch.as_str()) {
                channels.push(ch);
            }
        }
    }
    for ch in heard {
        if !channels.contains(&ch.as_str()) {
            channels.push(ch);
        }
    }
    let notification = Notification {
        incident: event.incident,
        check: event.check.to_string(),
        state: event.kind,
        severity: event.severity,
        color: event.color,
        message: event.message.to_string(),
        labels: event.labels.clone(),
        started_at: event.started_at,
        at: event.at,
        // Filled in by the outbox when sent: a new incident has no id yet.
        url: None,
        duration_s: (event.kind == EventKind::Resolved)
            .then(|| (event.at - event.started_at).num_seconds()),
    };
    channels
        .into_iter()
        .map(|channel| Outgoing {
            channel: channel.to_string(),
            notification: notification.clone(),
            batch_at: None,
        })
        .collect()
}

/// How long notifications for `channel` are gathered before they go out as
/// one message: the longest `group_wait` of the routes that send this event there.
pub fn group_wait(routes: &[Route], event: &Event<'_>, channel: &str) -> Duration {
    routes
        .iter()
        .filter(|r| {
            r.matches(event.severity, event.labels) && r.channels.iter().any(|c| c == channel)
        })
        .map(|r| r.group_wait)
        .max()
        .unwrap_or_default()
}

/// The open grouping windows per channel: the first notification for a
/// channel opens one, later ones within it join it.
#[derive(Debug, Default)]
pub struct Windows(HashMap<String, DateTime<Utc>>);

impl Windows {
    /// When the batch `channel`'s notification at `now` joins goes out.
    pub fn batch_at(&mut self, channel: &str, wait: Duration, now: DateTime<Utc>) -> DateTime<Utc> {
        match self.0.get(channel) {
            Some(end) if *end > now => *end,
            _ => {
                let end = now + chrono::Duration::from_std(wait).unwrap_or_default();
                self.0.insert(channel.to_string(), end);
                end
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_for(severities: &[Severity], channels: &[&str], matches: &[(&str, &str)]) -> Route {
        Route {
            severities: severities.to_vec(),
            channels: channels.iter().map(|c| c.to_string()).collect(),
            matches: Matchers::equal(matches),
            group_wait: Duration::ZERO,
        }
    }

    #[test]
    fn routes_match_severity_and_labels_and_dedupe_channels() {
        let routes = vec![
            route_for(
                &[Severity::Critical, Severity::High],
                &["email", "slack"],
                &[("team", "ops")],
            ),
            route_for(&[Severity::Critical], &["slack", "pager"], &[]),
            route_for(&[Severity::Low], &["digest"], &[]),
        ];
        let labels: BTreeMap<String, String> = [("team".to_string(), "ops".to_string())].into();
        let now = Utc::now();
        let event = Event {
            check: "web",
            labels: &labels,
            kind: EventKind::Opened,
            incident: 0,
            severity: Severity::Critical,
            color: Color::Red,
            message: "503",
            started_at: now,
            at: now,
        };
        let out = route(&routes, &event);
        let channels: Vec<_> = out.iter().map(|o| o.channel.as_str()).collect();
        assert_eq!(channels, ["email", "slack", "pager"]);
        assert_eq!(out[0].notification.duration_s, None);

        let other_team = BTreeMap::new();
        let out = route(
            &routes,
            &Event {
                labels: &other_team,
                ..event.clone()
            },
        );
        let channels: Vec<_> = out.iter().map(|o| o.channel.as_str()).collect();
        assert_eq!(channels, ["slack", "pager"]);

        let resolved = Event {
            kind: EventKind::Resolved,
            at: now + chrono::Duration::seconds(90),
            ..event
        };
        assert_eq!(
            route(&routes, &resolved)[0].notification.duration_s,
            Some(90)
        );
    }

    #[test]
    fn a_grouping_window_gathers_until_it_ends_then_a_new_one_opens() {
        let t0 = Utc::now();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let wait = Duration::from_secs(5);
        let mut windows = Windows::default();
        assert_eq!(windows.batch_at("hook", wait, at(0)), at(5));
        assert_eq!(windows.batch_at("hook", wait, at(4)), at(5), "joins");
        assert_eq!(windows.batch_at("mail", wait, at(4)), at(9), "per channel");
        assert_eq!(windows.batch_at("hook", wait, at(5)), at(10), "ended");
    }
}
