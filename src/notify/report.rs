//! Reports sent through the channels (`[reports]`, DESIGN.md §9): not an
//! incident's change but a document. Email carries it whole, as text and
//! HTML; chat channels (slack, discord, teams, ntfy) a short summary with a
//! link; a webhook the summary, the link and the Markdown as JSON.
//! PagerDuty and Alertmanager take incidents only and are skipped. The
//! payloads are pure, tested here; each channel's file keeps its transport.

use serde_json::{Value, json};

use super::{Channel, SendError};

/// A report as the channels carry it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportMessage {
    /// What it is: `health_report`.
    pub kind: &'static str,
    /// The day it covers, `YYYY-MM-DD`.
    pub date: String,
    pub subject: String,
    /// The whole report, Markdown (the email's text part).
    pub markdown: String,
    /// The same as an HTML document (the email's HTML part).
    pub html: String,
    /// A few lines for chat channels.
    pub summary: String,
    /// Where people see more (the status page).
    pub link: Option<String>,
}

impl Channel {
    /// Whether the channel takes reports (PagerDuty and Alertmanager do not:
    /// they page on incidents).
    pub fn takes_reports(&self) -> bool {
        !matches!(self, Channel::PagerDuty(_) | Channel::Alertmanager(_))
    }

    /// Sends a report: the whole of it by email, a summary elsewhere. `key`
    /// is the same on every attempt (`Idempotency-Key`, `Message-ID`).
    pub async fn send_report(&self, m: &ReportMessage, key: &str) -> Result<(), SendError> {
        let encoded = |v: Value| {
            serde_json::to_vec(&v)
                .map_err(|e| SendError::permanent(format!("encoding the report: {e}")))
        };
        match self {
            Channel::Email(c) => c.send_report(m, key).await,
            Channel::Slack(c) => c.post_report(encoded(slack(m))?, key).await,
            Channel::Discord(c) => c.post_report(encoded(discord(m))?, key).await,
            Channel::Teams(c) => c.post_report(encoded(teams(m))?, key).await,
            Channel::Webhook(c) => c.post_report(encoded(webhook(m))?, key).await,
            Channel::Ntfy(c) => {
                c.post_report(&m.subject, m.link.as_deref(), &text(m), key)
                    .await
            }
            Channel::PagerDuty(_) | Channel::Alertmanager(_) => Err(SendError::permanent(
                "this channel takes incidents only, not reports",
            )),
        }
    }
}

/// The summary and the link on lines of their own.
fn text(m: &ReportMessage) -> String {
    match &m.link {
        Some(link) => format!("{}\n{link}", m.summary),
        None => m.summary.clone(),
    }
}

fn slack(m: &ReportMessage) -> Value {
    let link = m
        .link
        .as_ref()
        .map_or_else(String::new, |l| format!("\n<{l}|Status page>"));
    json!({"text": format!("*{}*\n{}{link}", m.subject, m.summary)})
}

fn discord(m: &ReportMessage) -> Value {
    json!({"content": format!("**{}**\n{}", m.subject, text(m))})
}

fn teams(m: &ReportMessage) -> Value {
    let mut body = vec![
        json!({"type": "TextBlock", "text": m.subject, "weight": "Bolder", "size": "Medium", "wrap": true}),
        json!({"type": "TextBlock", "text": m.summary, "wrap": true}),
    ];
    if let Some(link) = &m.link {
        body.push(
            json!({"type": "TextBlock", "text": format!("[Status page]({link})"), "wrap": true}),
        );
    }
    json!({"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive",
        "contentUrl": null,
        "content": {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.2",
            "body": body,
        },
    }]})
}

fn webhook(m: &ReportMessage) -> Value {
    json!({
        "kind": m.kind,
        "date": m.date,
        "subject": m.subject,
        "summary": m.summary,
        "url": m.link,
        "markdown": m.markdown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(link: Option<&str>) -> ReportMessage {
        ReportMessage {
            kind: "health_report",
            date: "2026-11-29".into(),
            subject: "Health report 2026-11-29: Degraded".into(),
            markdown: "# Health report\n".into(),
            html: "<h1>Health report</h1>".into(),
            summary: "7 checks: 6 green, 1 yellow. 2 actions.".into(),
            link: link.map(Into::into),
        }
    }

    #[test]
    fn chat_channels_get_the_summary_and_a_link() {
        let m = message(Some("https://status.example.com"));
        assert_eq!(
            slack(&m)["text"],
            "*Health report 2026-11-29: Degraded*\n7 checks: 6 green, 1 yellow. 2 actions.\n<https://status.example.com|Status page>"
        );
        assert_eq!(
            discord(&m)["content"],
            "**Health report 2026-11-29: Degraded**\n7 checks: 6 green, 1 yellow. 2 actions.\nhttps://status.example.com"
        );
        let card = &teams(&m)["attachments"][0]["content"]["body"];
        assert_eq!(card[2]["text"], "[Status page](https://status.example.com)");
        let hook = webhook(&m);
        assert_eq!(hook["kind"], "health_report");
        assert_eq!(hook["date"], "2026-11-29");
        assert_eq!(hook["url"], "https://status.example.com");
        assert_eq!(hook["markdown"], "# Health report\n");
        let bare = message(None);
        assert_eq!(text(&bare), "7 checks: 6 green, 1 yellow. 2 actions.");
        assert_eq!(
            teams(&bare)["attachments"][0]["content"]["body"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert!(webhook(&bare)["url"].is_null());
    }
}
