//! Discord's webhook message: one embed colored by state and severity.

use serde_json::{Value, json};

use super::{headline, rfc3339, truncate};
use crate::core::{EventKind, Notification, Severity};

/// Discord's embed title and description caps, in characters.
const DISCORD_TITLE_MAX: usize = 256;
const DISCORD_DESCRIPTION_MAX: usize = 4096;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{EventKind, Severity};
    use crate::notify::render::fixture::n;
    use serde_json::json;

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
}
