//! The generic webhook's body: the notification's own JSON (DESIGN.md §5).

use crate::core::Notification;

/// The webhook body: the notification's own JSON, exactly DESIGN.md §5.
pub fn webhook_body(n: &Notification) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{EventKind, Severity};
    use crate::notify::render::fixture::n;
    use serde_json::Value;
    use serde_json::json;

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
