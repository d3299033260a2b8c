//! Pure rendering of a [`Notification`] for each channel: the email subject
//! and plain-text body, the webhook body (DESIGN.md §5), and the payloads of
//! Slack, Discord, Teams, PagerDuty, ntfy and Alertmanager (their shapes:
//! reference/external-apis.md §5). No I/O and no clock: every function here
//! is table-tested below.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use crate::core::Severity;
use crate::core::{EventKind, Notification};

/// Longest message put in an email subject, in characters.
pub const SUBJECT_MESSAGE_MAX: usize = 120;
/// Longest Slack attachment title, in characters (Slack's and Alertmanager's cap).
const SLACK_TITLE_MAX: usize = 1024;
/// Longest message put in a Slack text, in characters.
const SLACK_MESSAGE_MAX: usize = 3000;
/// Discord's embed title and description caps, in characters.
const DISCORD_TITLE_MAX: usize = 256;
const DISCORD_DESCRIPTION_MAX: usize = 4096;
/// Longest PagerDuty `payload.summary`, in characters (the Events API's cap).
const PAGERDUTY_SUMMARY_MAX: usize = 1024;
/// Longest message put in a Teams card, in characters (the payload cap is about 28 KB).
const TEAMS_MESSAGE_MAX: usize = 4000;
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

/// Slack's limit on attachments in one message.
const SLACK_ATTACHMENTS_MAX: usize = 100;

/// `[CRITICAL] 3 notifications: web opened, api opened, db escalated`: the
/// worst severity, the count, and the checks with their states.
pub fn email_group_subject(ns: &[Notification]) -> String {
    let worst = ns.iter().map(|n| n.severity).max().unwrap_or(Severity::Low);
    let what: Vec<String> = ns
        .iter()
        .map(|n| format!("{} {}", n.check, n.state))
        .collect();
    format!(
        "[{}] {} notifications: {}",
        worst.as_str().to_uppercase(),
        ns.len(),
        truncate(&what.join(", "), SUBJECT_MESSAGE_MAX)
    )
}

/// One email body listing every notification of a group, each as [`email_body`] renders it.
pub fn email_group_body(ns: &[Notification]) -> String {
    let mut out = format!("{} notifications\n", ns.len());
    for n in ns {
        let _ = write!(
            out,
            "\n----------------------------------------\n\n{}",
            email_body(n)
        );
    }
    out
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

/// The webhook body: the notification's own JSON, exactly DESIGN.md §5.
pub fn webhook_body(n: &Notification) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(n)
}

/// A Discord webhook message: one embed with an integer `0xRRGGBB` color
/// ([`discord_color`]), the headline as title, the message as description.
pub fn discord_payload(n: &Notification) -> Value {
    let mut embed = json!({
        "title": truncate(&headline(n), DISCORD_TITLE_MAX),
        "description": truncate(&n.message, DISCORD_DESCRIPTION_MAX),
        "color": discord_color(n),
        "timestamp": rfc3339(&n.at),
    });
    if let Some(url) = &n.url {
        embed["url"] = Value::String(url.clone());
    }
    json!({"username": "keeper", "embeds": [embed]})
}

/// Discord embed colors: green resolved, grey acknowledged, else by severity
/// (Alertmanager's red 0x992D22 for critical).
pub fn discord_color(n: &Notification) -> u32 {
    match (n.state, n.severity) {
        (EventKind::Resolved, _) => 0x2E_CC_71,
        (EventKind::Acknowledged, _) => 0x95_A5_A6,
        (_, Severity::Critical) => 0x99_2D_22,
        (_, Severity::High) => 0xE6_7E_22,
        (_, Severity::Medium) => 0xF1_C4_0F,
        (_, Severity::Low) => 0x34_98_DB,
    }
}

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

/// An ntfy publish: the message as plain-text body, the rest as headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NtfyMessage {
    /// `[CRITICAL] web opened`.
    pub title: String,
    /// 1-5: critical 5 (urgent), high 4, medium 3, low 2; resolved and acknowledged 3.
    pub priority: u8,
    /// Emoji short codes, comma-separated.
    pub tags: &'static str,
    /// The incident link, when known.
    pub click: Option<String>,
    pub body: String,
}

pub fn ntfy_message(n: &Notification) -> NtfyMessage {
    let (priority, tags) = match (n.state, n.severity) {
        (EventKind::Resolved, _) => (3, "white_check_mark"),
        (EventKind::Acknowledged, _) => (3, "eyes"),
        (_, Severity::Critical) => (5, "rotating_light"),
        (_, Severity::High) => (4, "warning"),
        (_, Severity::Medium) => (3, "warning"),
        (_, Severity::Low) => (2, "information_source"),
    };
    NtfyMessage {
        title: one_line(&headline(n)),
        priority,
        tags,
        click: n.url.clone(),
        body: n.message.clone(),
    }
}

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
    use crate::core::Color;

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

    #[test]
    fn discord_colors_are_integers() {
        let cases = [
            (EventKind::Opened, Severity::Critical, 0x99_2D_22),
            (EventKind::Escalated, Severity::High, 0xE6_7E_22),
            (EventKind::Reminder, Severity::Medium, 0xF1_C4_0F),
            (EventKind::Opened, Severity::Low, 0x34_98_DB),
            (EventKind::Acknowledged, Severity::Critical, 0x95_A5_A6),
            (EventKind::Resolved, Severity::Critical, 0x2E_CC_71),
        ];
        for (state, severity, color) in cases {
            let p = discord_payload(&n(state, severity, "m"));
            assert_eq!(p["embeds"][0]["color"], color, "{state} {severity}");
        }
        let p = discord_payload(&n(EventKind::Opened, Severity::Critical, "down"));
        assert_eq!(
            p,
            json!({"username": "keeper", "embeds": [{"title": "[CRITICAL] web opened",
                "description": "down", "color": 10_038_562, "timestamp": "2026-11-27T08:00:30Z",
                "url": "http://keeper.example/incidents/42"}]})
        );
    }

    #[test]
    fn ntfy_priorities_and_tags() {
        let cases = [
            (EventKind::Opened, Severity::Critical, 5, "rotating_light"),
            (EventKind::Escalated, Severity::High, 4, "warning"),
            (EventKind::Reminder, Severity::Medium, 3, "warning"),
            (EventKind::Opened, Severity::Low, 2, "information_source"),
            (EventKind::Acknowledged, Severity::Critical, 3, "eyes"),
            (
                EventKind::Resolved,
                Severity::Critical,
                3,
                "white_check_mark",
            ),
        ];
        for (state, severity, priority, tags) in cases {
            let m = ntfy_message(&n(state, severity, "m"));
            assert_eq!((m.priority, m.tags), (priority, tags), "{state} {severity}");
        }
        let m = ntfy_message(&n(EventKind::Opened, Severity::Critical, "down"));
        assert_eq!(m.title, "[CRITICAL] web opened");
        assert_eq!(m.body, "down");
        assert_eq!(
            m.click.as_deref(),
            Some("http://keeper.example/incidents/42")
        );
    }

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
