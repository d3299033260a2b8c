//! The email channel's text: the subject line and plain-text body of one
//! notification, and of a group sent as one message.

use std::fmt::Write as _;

use super::{SUBJECT_MESSAGE_MAX, duration, headline, labels, one_line, rfc3339, truncate};
use crate::core::{Notification, Severity};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{EventKind, Severity};
    use crate::notify::render::fixture::n;

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
}
