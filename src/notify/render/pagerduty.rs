//! PagerDuty Events API v2 events: the action per state, the dedup key per
//! incident, and the trigger's payload.

use serde_json::{Value, json};

use super::{one_line, rfc3339, truncate};
use crate::core::{EventKind, Notification, Severity};

/// Longest PagerDuty `payload.summary`, in characters (the Events API's cap).
const PAGERDUTY_SUMMARY_MAX: usize = 1024;

/// A PagerDuty Events API v2 event. `opened`, `escalated` and `reminder`
/// trigger, `acknowledged` acknowledges, `resolved` resolves; the dedup key
/// `keeper-<incident>` ties them to one PagerDuty incident. Only a trigger
/// carries a `payload` (the API requires it there and ignores it elsewhere).
pub fn pagerduty_event(n: &Notification, routing_key: &str) -> Value {
    let action = match n.state {
        EventKind::Opened | EventKind::Escalated | EventKind::Reminder => "trigger",
        EventKind::Acknowledged => "acknowledge",
        EventKind::Resolved => "resolve",
    };
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": format!("keeper-{}", n.incident),
        "client": "keeper",
    });
    if action == "trigger" {
        let mut details = json!({
            "message": n.message,
            "labels": n.labels,
            "state": n.state,
            "started_at": rfc3339(&n.started_at),
        });
        if let Some(url) = &n.url {
            details["incident_url"] = Value::String(url.clone());
        }
        event["payload"] = json!({
            "summary": pagerduty_summary(n),
            "source": n.check,
            "severity": pagerduty_severity(n.severity),
            "timestamp": rfc3339(&n.at),
            "custom_details": details,
        });
    }
    if let Some(url) = &n.url {
        event["client_url"] = Value::String(url.clone());
    }
    event
}

/// `[CRITICAL] web: GET …: 503`, at most 1024 characters.
fn pagerduty_summary(n: &Notification) -> String {
    let s = format!(
        "[{}] {}: {}",
        n.severity.as_str().to_ascii_uppercase(),
        n.check,
        one_line(&n.message)
    );
    truncate(&s, PAGERDUTY_SUMMARY_MAX)
}

/// PagerDuty's four severities.
pub fn pagerduty_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "info",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{EventKind, Severity};
    use crate::notify::render::fixture::n;
    use serde_json::json;

    #[test]
    fn pagerduty_actions_and_severities() {
        let cases = [
            (
                EventKind::Opened,
                Severity::Critical,
                "trigger",
                Some("critical"),
            ),
            (
                EventKind::Escalated,
                Severity::High,
                "trigger",
                Some("error"),
            ),
            (
                EventKind::Reminder,
                Severity::Medium,
                "trigger",
                Some("warning"),
            ),
            (EventKind::Opened, Severity::Low, "trigger", Some("info")),
            (
                EventKind::Acknowledged,
                Severity::Critical,
                "acknowledge",
                None,
            ),
            (EventKind::Resolved, Severity::Critical, "resolve", None),
        ];
        for (state, severity, action, pd_severity) in cases {
            let e = pagerduty_event(&n(state, severity, "down"), "rk");
            assert_eq!(e["event_action"], action, "{state}");
            assert_eq!(e["dedup_key"], "keeper-42");
            assert_eq!(e["routing_key"], "rk");
            assert_eq!(e["client"], "keeper");
            assert_eq!(e["client_url"], "http://keeper.example/incidents/42");
            assert_eq!(e["payload"]["severity"].as_str(), pd_severity, "{state}");
        }
    }

    #[test]
    fn pagerduty_trigger_payload() {
        let e = pagerduty_event(
            &n(EventKind::Opened, Severity::Critical, "down\nmore"),
            "rk",
        );
        assert_eq!(
            e["payload"],
            json!({"summary": "[CRITICAL] web: down", "source": "web", "severity": "critical",
                   "timestamp": "2026-11-27T08:00:30Z",
                   "custom_details": {"message": "down\nmore", "labels": {"app": "web"},
                       "state": "opened", "started_at": "2026-11-27T08:00:00Z",
                       "incident_url": "http://keeper.example/incidents/42"}})
        );
        let long = pagerduty_event(
            &n(EventKind::Opened, Severity::Low, &"x".repeat(2000)),
            "rk",
        );
        let summary = long["payload"]["summary"].as_str().unwrap_or_default();
        assert_eq!(summary.chars().count(), PAGERDUTY_SUMMARY_MAX);
        let mut no_url = n(EventKind::Resolved, Severity::Low, "ok");
        no_url.url = None;
        let e = pagerduty_event(&no_url, "rk");
        assert!(
            e.get("client_url").is_none() && e.get("payload").is_none(),
            "{e}"
        );
    }
}
