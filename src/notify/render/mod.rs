//! Pure rendering of a [`Notification`] for each channel: one file per
//! channel's payload (its shapes: reference/external-apis.md §5; the webhook
//! body: DESIGN.md §5), and here what they share: the headline, the first
//! line of a message, durations, labels, timestamps and cutting to a length.
//! No I/O and no clock: every function is table-tested beside it.

use std::time::Duration;

use crate::core::{EventKind, Notification};

mod alertmanager;
mod discord;
mod email;
mod ntfy;
mod pagerduty;
mod slack;
mod teams;
mod webhook;

pub use alertmanager::{ALERTMANAGER_HORIZON_HOURS, ALERTNAME, alertmanager_alerts};
pub use discord::{discord_color, discord_payload};
pub use email::{email_body, email_group_body, email_group_subject, email_subject};
pub use ntfy::{NtfyMessage, ntfy_message};
pub use pagerduty::{pagerduty_event, pagerduty_severity};
pub use slack::{slack_color, slack_group_payload, slack_payload};
pub use teams::teams_payload;
pub use webhook::webhook_body;

/// Longest message put in an email subject, in characters.
pub const SUBJECT_MESSAGE_MAX: usize = 120;

/// `[CRITICAL] web opened`.
fn headline(n: &Notification) -> String {
    format!(
        "[{}] {} {}",
        n.severity.as_str().to_ascii_uppercase(),
        n.check,
        n.state
    )
}

/// How long the incident lasted, on `resolved`: the stored duration, else `at - started_at`.
fn duration(n: &Notification) -> Option<String> {
    if n.state != EventKind::Resolved {
        return None;
    }
    let secs = n
        .duration_s
        .unwrap_or_else(|| (n.at - n.started_at).num_seconds())
        .max(0);
    let secs = u64::try_from(secs).unwrap_or(0);
    Some(humantime::format_duration(Duration::from_secs(secs)).to_string())
}

fn labels(n: &Notification) -> String {
    n.labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn rfc3339(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The first non-empty line, without control characters (a subject is one header line).
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// Cuts `s` to at most `max` characters, ending in `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod fixture {
    //! The notification every channel's tests render: incident 42 of `web`, with a label and a link.

    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};

    use crate::core::{Color, EventKind, Notification, Severity};

    pub(super) fn n(state: EventKind, severity: Severity, message: &str) -> Notification {
        Notification {
            incident: 42,
            check: "web".into(),
            state,
            severity,
            color: Color::Red,
            message: message.into(),
            labels: BTreeMap::from([("app".into(), "web".into())]),
            started_at: Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap(),
            at: Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 30).unwrap(),
            url: Some("http://keeper.example/incidents/42".into()),
            duration_s: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Severity;
    use crate::notify::render::fixture::n;

    #[test]
    fn groups_name_the_worst_severity_and_every_check() {
        let mut a = n(EventKind::Opened, Severity::High, "503");
        a.check = "api".into();
        let b = n(EventKind::Opened, Severity::Critical, "refused");
        let subject = email_group_subject(&[a.clone(), b.clone()]);
        assert_eq!(
            subject,
            "[CRITICAL] 2 notifications: api opened, web opened"
        );
        let body = email_group_body(&[a.clone(), b.clone()]);
        assert!(body.starts_with("2 notifications\n"), "{body}");
        assert!(
            body.contains("Check:    api") && body.contains("Check:    web"),
            "{body}"
        );
        let slack = slack_group_payload(&[a, b]);
        assert_eq!(slack["attachments"].as_array().unwrap().len(), 2);
        assert_eq!(slack["text"], "2 notifications: api opened, web opened");
    }

    /// An incident that opened soon after a deployment carries the note and
    /// the rollback hint in its message (engine::deploy): every channel shows
    /// them, and subjects and titles keep the failure itself.
    #[test]
    fn every_channel_shows_the_deploy_note_and_rollback_hint() {
        let note = "started 3 min after deploy v42 of web (by ci)";
        let hint = "to roll back: flyctl releases rollback --app web";
        let n = n(
            EventKind::Opened,
            Severity::Critical,
            &format!("GET /health: 503\n{note}\n{hint}"),
        );
        let json = |v: serde_json::Value| v.to_string();
        let webhook = String::from_utf8(webhook_body(&n).unwrap()).unwrap();
        let payloads = [
            ("email", email_body(&n)),
            ("slack", json(slack_payload(&n))),
            ("discord", json(discord_payload(&n))),
            ("teams", json(teams_payload(&n))),
            ("pagerduty", json(pagerduty_event(&n, "key"))),
            ("ntfy", ntfy_message(&n).body),
            ("alertmanager", json(alertmanager_alerts(&n))),
            ("webhook", webhook),
        ];
        for (channel, payload) in payloads {
            assert!(
                payload.contains(note) && payload.contains(hint),
                "{channel}: {payload}"
            );
        }
        assert_eq!(email_subject(&n), "[CRITICAL] web opened: GET /health: 503");
    }

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo", 4), "hél…");
        assert_eq!(truncate("🔴🔴🔴", 2), "🔴…");
        assert_eq!(truncate("", 3), "");
    }

    #[test]
    fn resolved_duration_falls_back_to_the_timestamps() {
        let resolved = n(EventKind::Resolved, Severity::Critical, "ok");
        assert_eq!(duration(&resolved).as_deref(), Some("30s"));
    }
}
