//! Notification policy, pure: which channels hear about an incident change.
//! Routes match by severity and labels; every matching route's channels get
//! the notification, each channel once.
//!
//! Not yet here (issue 3): repeats, acknowledgement, silences, maintenance,
//! depends_on suppression and `group_wait` folding.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{EventKind, Notification};
use crate::classify::{Color, Severity};
use crate::config::Route;
use crate::store::Outgoing;

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
        })
        .collect()
}

/// The link to an incident, when keeper knows its public URL.
pub fn incident_url(public_url: Option<&str>, id: i64) -> Option<String> {
    public_url.map(|base| format!("{base}/incidents/{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn route_for(severities: &[Severity], channels: &[&str], matches: &[(&str, &str)]) -> Route {
        Route {
            severities: severities.to_vec(),
            channels: channels.iter().map(|c| c.to_string()).collect(),
            matches: matches
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
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
}
