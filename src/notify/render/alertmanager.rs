//! Alertmanager's `POST /api/v2/alerts` body: alerts labelled by check,
//! severity and incident, ending ahead while firing and now once resolved.

use serde_json::{Value, json};

use super::rfc3339;
use crate::core::{EventKind, Notification, Severity};

/// The `alertname` label of every alert keeper posts to Alertmanager.
pub const ALERTNAME: &str = "KeeperCheckFailing";
/// How far ahead of `at` a firing alert's `endsAt` is set, in hours.
///
/// Alertmanager resolves an alert by itself at `endsAt` unless the client
/// re-sends it. keeper sends on every event and re-sends each open incident
/// every `resend` (1h by default), each push moving `endsAt` on; a day leaves
/// room for a keeper restarting or a resend lost. A lost resolve cannot
/// happen (the outbox retries it), so a long horizon costs little.
pub const ALERTMANAGER_HORIZON_HOURS: i64 = 24;

/// The `POST /api/v2/alerts` body for Alertmanager: an array of alerts whose
/// labels are the check's (names made Prometheus-safe) plus `alertname`
/// ([`ALERTNAME`]), `check`, `severity` and `incident`.
///
/// A firing state ends [`ALERTMANAGER_HORIZON_HOURS`] after `at`; `resolved`
/// ends at `at`. Labels are Alertmanager's identity and `severity` is among
/// them, so an escalation also ends the alert at every other severity, and a
/// resolve ends all four: the one that fired may have been any.
pub fn alertmanager_alerts(n: &Notification) -> Value {
    let firing_end = n.at + chrono::Duration::hours(ALERTMANAGER_HORIZON_HOURS);
    let alert = |severity: Severity, ends: chrono::DateTime<chrono::Utc>| {
        let mut labels: serde_json::Map<String, Value> = n
            .labels
            .iter()
            .map(|(k, v)| (label_name(k), Value::String(v.clone())))
            .collect();
        for (k, v) in [
            ("alertname", ALERTNAME.to_string()),
            ("check", n.check.clone()),
            ("severity", severity.as_str().to_string()),
            ("incident", n.incident.to_string()),
        ] {
            labels.insert(k.to_string(), Value::String(v));
        }
        let mut a = json!({
            "labels": labels,
            "annotations": {
                "summary": format!("{} {}", n.check, n.state),
                "description": n.message,
            },
            "startsAt": rfc3339(&n.started_at),
            "endsAt": rfc3339(&ends),
        });
        if let Some(url) = &n.url {
            a["generatorURL"] = Value::String(url.clone());
        }
        a
    };
    let alerts: Vec<Value> = match n.state {
        EventKind::Resolved => Severity::ALL.iter().map(|&s| alert(s, n.at)).collect(),
        EventKind::Escalated => Severity::ALL
            .iter()
            .map(|&s| alert(s, if s == n.severity { firing_end } else { n.at }))
            .collect(),
        EventKind::Opened | EventKind::Reminder | EventKind::Acknowledged => {
            vec![alert(n.severity, firing_end)]
        }
    };
    Value::Array(alerts)
}

/// A Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`): other characters
/// become `_`, and a leading digit gets a `_` in front.
fn label_name(k: &str) -> String {
    let mut out: String = k
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{EventKind, Severity};
    use crate::notify::render::fixture::n;
    use serde_json::json;

    #[test]
    fn alertmanager_alerts_by_state() {
        let mut opened = n(EventKind::Opened, Severity::High, "down");
        opened.labels.insert("team.name".into(), "ops".into());
        opened.labels.insert("severity".into(), "not-mine".into());
        let v = alertmanager_alerts(&opened);
        assert_eq!(
            v,
            json!([{"labels": {"alertname": "KeeperCheckFailing", "check": "web",
                    "severity": "high", "incident": "42", "app": "web", "team_name": "ops"},
                   "annotations": {"summary": "web opened", "description": "down"},
                   "startsAt": "2026-11-27T08:00:00Z", "endsAt": "2026-11-28T08:00:30Z",
                   "generatorURL": "http://keeper.example/incidents/42"}])
        );

        let ends = |v: &Value| -> Vec<(String, String)> {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    let sev = a["labels"]["severity"].as_str().unwrap_or_default();
                    let end = a["endsAt"].as_str().unwrap_or_default();
                    (sev.to_string(), end.to_string())
                })
                .collect()
        };
        let (now, later) = ("2026-11-27T08:00:30Z", "2026-11-28T08:00:30Z");
        let own = |s: &str, e: &str| (s.to_string(), e.to_string());
        let escalated = alertmanager_alerts(&n(EventKind::Escalated, Severity::Critical, "m"));
        assert_eq!(
            ends(&escalated),
            [
                own("low", now),
                own("medium", now),
                own("high", now),
                own("critical", later)
            ]
        );
        let resolved = alertmanager_alerts(&n(EventKind::Resolved, Severity::Critical, "m"));
        assert_eq!(
            ends(&resolved),
            [
                own("low", now),
                own("medium", now),
                own("high", now),
                own("critical", now)
            ]
        );
    }

    #[test]
    fn label_names_are_prometheus_safe() {
        let cases = [
            ("app", "app"),
            ("team.name", "team_name"),
            ("9x", "_9x"),
            ("", "_"),
            ("é", "_"),
        ];
        for (input, want) in cases {
            assert_eq!(label_name(input), want, "{input:?}");
        }
    }
}
