//! An ntfy publish: title, priority, tags and link as headers, the message as body.

use super::{headline, one_line};
use crate::core::{EventKind, Notification, Severity};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{EventKind, Severity};
    use crate::notify::render::fixture::n;

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
}
