//! Slack's incoming-webhook payloads (reference/external-apis.md §5): one
//! attachment per notification colored by severity, and a group as one message.

use serde_json::{Value, json};

use super::{SUBJECT_MESSAGE_MAX, duration, headline, labels, one_line, rfc3339, truncate};
use crate::core::{EventKind, Notification, Severity};

/// Longest Slack attachment title, in characters (Slack's and Alertmanager's cap).
const SLACK_TITLE_MAX: usize = 1024;
/// Longest message put in a Slack text, in characters.
const SLACK_MESSAGE_MAX: usize = 3000;

/// Slack's limit on attachments in one message.
const SLACK_ATTACHMENTS_MAX: usize = 100;

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

/// One Slack message for a group: a text listing them, an attachment each.
pub fn slack_group_payload(ns: &[Notification]) -> Value {
    let what: Vec<String> = ns
        .iter()
        .map(|n| format!("{} {}", n.check, n.state))
        .collect();
    let text = format!(
        "{} notifications: {}",
        ns.len(),
        slack_escape(&truncate(&what.join(", "), SLACK_MESSAGE_MAX))
    );
    let attachments: Vec<Value> = ns
        .iter()
        .take(SLACK_ATTACHMENTS_MAX)
        .filter_map(|n| slack_payload(n)["attachments"].get(0).cloned())
        .collect();
    json!({"text": text, "attachments": attachments})
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

/// Slack's three control characters (api.slack.com, "Escaping text").
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{EventKind, Severity};
    use crate::notify::render::fixture::n;

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
}
