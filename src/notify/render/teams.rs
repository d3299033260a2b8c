//! The Teams Workflows message: one Adaptive Card with a colored heading.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{duration, headline, labels, rfc3339, truncate};
use crate::core::{EventKind, Notification, Severity};

/// Longest message put in a Teams card, in characters (the payload cap is about 28 KB).
const TEAMS_MESSAGE_MAX: usize = 4000;

/// A Teams Workflows message: one Adaptive Card whose heading is colored
/// `Good` once resolved, `Attention` for critical and high, else `Warning`.
pub fn teams_payload(n: &Notification) -> Value {
    let color = match (n.state, n.severity) {
        (EventKind::Resolved, _) => "Good",
        (EventKind::Acknowledged, _) => "Accent",
        (_, Severity::Critical | Severity::High) => "Attention",
        (_, Severity::Medium | Severity::Low) => "Warning",
    };
    let mut facts = format!("Started {}", rfc3339(&n.started_at));
    if let Some(d) = duration(n) {
        let _ = write!(facts, " · lasted {d}");
    }
    if !n.labels.is_empty() {
        let _ = write!(facts, " · {}", labels(n));
    }
    let mut body = vec![
        json!({"type": "TextBlock", "text": headline(n), "weight": "Bolder", "size": "Medium",
               "wrap": true, "style": "heading", "color": color}),
        json!({"type": "TextBlock", "text": truncate(&n.message, TEAMS_MESSAGE_MAX), "wrap": true}),
        json!({"type": "TextBlock", "text": facts, "wrap": true, "isSubtle": true, "size": "Small"}),
    ];
    if let Some(url) = &n.url {
        body.push(json!({"type": "TextBlock", "text": format!("[Incident #{}]({url})", n.incident), "wrap": true}));
    }
    adaptive_card(body)
}

/// A Teams Workflows message of one full-width Adaptive Card with `body`.
pub fn adaptive_card(body: Vec<Value>) -> Value {
    json!({"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive",
        "contentUrl": null,
        "content": {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.2",
            "body": body,
            "msteams": {"width": "full"},
        },
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{EventKind, Severity};
    use crate::notify::render::fixture::n;

    #[test]
    fn teams_card() {
        let cases = [
            (EventKind::Opened, Severity::Critical, "Attention"),
            (EventKind::Escalated, Severity::High, "Attention"),
            (EventKind::Reminder, Severity::Medium, "Warning"),
            (EventKind::Opened, Severity::Low, "Warning"),
            (EventKind::Acknowledged, Severity::High, "Accent"),
            (EventKind::Resolved, Severity::Critical, "Good"),
        ];
        for (state, severity, color) in cases {
            let p = teams_payload(&n(state, severity, "m"));
            let heading = &p["attachments"][0]["content"]["body"][0];
            assert_eq!(heading["color"], color, "{state} {severity}");
        }
        let p = teams_payload(&n(EventKind::Opened, Severity::Critical, "down"));
        assert_eq!(p["type"], "message");
        let a = &p["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(a["content"]["type"], "AdaptiveCard");
        let body = a["content"]["body"].as_array().cloned().unwrap_or_default();
        let texts: Vec<&str> = body.iter().filter_map(|b| b["text"].as_str()).collect();
        assert_eq!(
            texts,
            [
                "[CRITICAL] web opened",
                "down",
                "Started 2026-11-27T08:00:00Z · app=web",
                "[Incident #42](http://keeper.example/incidents/42)"
            ]
        );
        assert!(body.iter().all(|b| b["type"] == "TextBlock"));
    }
}
