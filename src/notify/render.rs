//! Pure rendering of a [`Notification`] for each channel: the email subject
//! and plain-text body, the Slack payload, and the webhook body (DESIGN.md §5).
//! No I/O and no clock: every function here is table-tested below.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::{EventKind, Notification};
use crate::classify::Severity;

/// Longest message put in an email subject, in characters.
pub const SUBJECT_MESSAGE_MAX: usize = 120;
/// Longest Slack attachment title, in characters (Slack's and Alertmanager's cap).
const SLACK_TITLE_MAX: usize = 1024;
/// Longest message put in a Slack text, in characters.
const SLACK_MESSAGE_MAX: usize = 3000;

/// `[CRITICAL] web opened: GET https://…: 503 Service Unavailable`.
///
/// The message's first line only, control characters removed, cut at
/// [`SUBJECT_MESSAGE_MAX`] characters.
pub fn email_subject(n: &Notification) -> String {
    format!(
        "{}: {}",
        headline(n),
        truncate(&one_line(&n.message), SUBJECT_MESSAGE_MAX)
    )
}

/// The plain-text email body: every field of the notification, one per line.
pub fn email_body(n: &Notification) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", headline(n));
    let _ = writeln!(out, "Check:    {}", n.check);
    let _ = writeln!(out, "State:    {}", n.state);
    let _ = writeln!(out, "Severity: {}", n.severity);
    let _ = writeln!(out, "Color:    {}", n.color);
    let _ = writeln!(out, "Started:  {}", rfc3339(&n.started_at));
    let _ = writeln!(out, "At:       {}", rfc3339(&n.at));
    if let Some(d) = duration(n) {
        let _ = writeln!(out, "Duration: {d}");
    }
    if !n.labels.is_empty() {
        let _ = writeln!(out, "Labels:   {}", labels(n));
    }
    let _ = writeln!(out, "Incident: #{}", n.incident);
    if let Some(url) = &n.url {
        let _ = writeln!(out, "Link:     {url}");
    }
    let _ = writeln!(out, "\n{}", n.message);
    out
}

/// The Slack incoming-webhook payload: a `text` fallback and one attachment
/// colored by severity (green once resolved).
pub fn slack_payload(n: &Notification) -> Value {
    let text = format!(
        "{} {}: {}",
        emoji(n),
        slack_escape(&headline(n)),
        slack_escape(&truncate(&one_line(&n.message), SUBJECT_MESSAGE_MAX))
    );
    let mut fields = vec![
        json!({"title": "Severity", "value": n.severity.as_str(), "short": true}),
        json!({"title": "Started", "value": rfc3339(&n.started_at), "short": true}),
    ];
    if let Some(d) = duration(n) {
        fields.push(json!({"title": "Duration", "value": d, "short": true}));
    }
    if !n.labels.is_empty() {
        fields.push(json!({"title": "Labels", "value": slack_escape(&labels(n)), "short": false}));
    }
    let mut attachment = json!({
        "color": slack_color(n),
        "title": truncate(&format!("{} {}", n.check, n.state), SLACK_TITLE_MAX),
        "text": slack_escape(&truncate(&n.message, SLACK_MESSAGE_MAX)),
        "fallback": text,
        "fields": fields,
        "ts": n.at.timestamp(),
    });
    if let (Some(url), Some(obj)) = (&n.url, attachment.as_object_mut()) {
        obj.insert("title_link".into(), Value::String(url.clone()));
    }
    json!({"text": text, "attachments": [attachment]})
}

/// The webhook body: the notification's own JSON, exactly DESIGN.md §5.
pub fn webhook_body(n: &Notification) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(n)
}

/// A Slack attachment color: `good` once resolved, else by severity.
pub fn slack_color(n: &Notification) -> &'static str {
    if n.state == EventKind::Resolved {
        return "good";
    }
    match n.severity {
        Severity::Critical | Severity::High => "danger",
        Severity::Medium => "warning",
        Severity::Low => "#439fe0",
    }
}

/// `[CRITICAL] web opened`.
fn headline(n: &Notification) -> String {
    format!(
        "[{}] {} {}",
        n.severity.as_str().to_ascii_uppercase(),
        n.check,
        n.state
    )
}

fn emoji(n: &Notification) -> &'static str {
    match (n.state, n.severity) {
        (EventKind::Resolved, _) => "✅",
        (EventKind::Acknowledged, _) => "👀",
        (_, Severity::Critical) => "🔴",
        (_, Severity::High) => "🟠",
        (_, Severity::Medium) => "🟡",
        (_, Severity::Low) => "🔵",
    }
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

/// Slack's three control characters (api.slack.com, "Escaping text").
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::classify::Color;

    fn n(state: EventKind, severity: Severity, message: &str) -> Notification {
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

    #[test]
    fn subjects() {
        let long = "x".repeat(500);
        let cases = [
            (
                n(EventKind::Opened, Severity::Critical, "GET /health: 503"),
                "[CRITICAL] web opened: GET /health: 503".to_string(),
            ),
            (
                n(EventKind::Resolved, Severity::High, "ok again"),
                "[HIGH] web resolved: ok again".to_string(),
            ),
            (
                n(
                    EventKind::Reminder,
                    Severity::Low,
                    "\n  first\nsecond\tline",
                ),
                "[LOW] web reminder: first".to_string(),
            ),
            (
                n(EventKind::Escalated, Severity::Medium, "a\rb\u{7}c"),
                "[MEDIUM] web escalated: abc".to_string(),
            ),
            (
                n(EventKind::Opened, Severity::Critical, &long),
                format!(
                    "[CRITICAL] web opened: {}…",
                    "x".repeat(SUBJECT_MESSAGE_MAX - 1)
                ),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(email_subject(&input), want, "{:?}", input.message);
        }
    }

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo", 4), "hél…");
        assert_eq!(truncate("🔴🔴🔴", 2), "🔴…");
        assert_eq!(truncate("", 3), "");
    }

    #[test]
    fn email_body_names_every_field() {
        let mut resolved = n(EventKind::Resolved, Severity::Critical, "GET /health: 200");
        resolved.duration_s = Some(3725);
        let body = email_body(&resolved);
        for want in [
            "[CRITICAL] web resolved",
            "Check:    web",
            "State:    resolved",
            "Severity: critical",
            "Color:    red",
            "Started:  2026-11-27T08:00:00Z",
            "At:       2026-11-27T08:00:30Z",
            "Duration: 1h 2m 5s",
            "Labels:   app=web",
            "Incident: #42",
            "Link:     http://keeper.example/incidents/42",
            "GET /health: 200",
        ] {
            assert!(body.contains(want), "missing {want:?} in:\n{body}");
        }

        let mut opened = n(EventKind::Opened, Severity::Critical, "down");
        opened.url = None;
        opened.labels.clear();
        let body = email_body(&opened);
        for absent in ["Duration:", "Link:", "Labels:"] {
            assert!(!body.contains(absent), "unexpected {absent:?} in:\n{body}");
        }
    }

    #[test]
    fn resolved_duration_falls_back_to_the_timestamps() {
        let resolved = n(EventKind::Resolved, Severity::Critical, "ok");
        assert_eq!(duration(&resolved).as_deref(), Some("30s"));
    }

    #[test]
    fn slack_colors() {
        let cases = [
            (EventKind::Opened, Severity::Critical, "danger", "🔴"),
            (EventKind::Escalated, Severity::High, "danger", "🟠"),
            (EventKind::Reminder, Severity::Medium, "warning", "🟡"),
            (EventKind::Opened, Severity::Low, "#439fe0", "🔵"),
            (EventKind::Resolved, Severity::Critical, "good", "✅"),
            (EventKind::Acknowledged, Severity::High, "danger", "👀"),
        ];
        for (state, severity, color, emoji) in cases {
            let p = slack_payload(&n(state, severity, "m"));
            assert_eq!(p["attachments"][0]["color"], color, "{state} {severity}");
            let text = p["text"].as_str().unwrap_or_default();
            assert!(text.starts_with(emoji), "{text}");
        }
    }

    #[test]
    fn slack_payload_shape() {
        let p = slack_payload(&n(EventKind::Opened, Severity::Critical, "a <b> & c"));
        assert_eq!(p["text"], "🔴 [CRITICAL] web opened: a &lt;b&gt; &amp; c");
        let a = &p["attachments"][0];
        assert_eq!(a["title"], "web opened");
        assert_eq!(a["title_link"], "http://keeper.example/incidents/42");
        assert_eq!(a["text"], "a &lt;b&gt; &amp; c");
        assert_eq!(a["ts"], 1_795_766_430);
        assert_eq!(a["fields"][0]["value"], "critical");
        assert_eq!(a["fields"][2]["value"], "app=web");
    }

    #[test]
    fn webhook_body_is_the_design_json() {
        let body = webhook_body(&n(EventKind::Opened, Severity::Critical, "down")).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"incident": 42, "check": "web", "state": "opened", "severity": "critical",
                   "color": "red", "message": "down", "labels": {"app": "web"},
                   "started_at": "2026-11-27T08:00:00Z", "at": "2026-11-27T08:00:30Z",
                   "url": "http://keeper.example/incidents/42"})
        );
    }
}
