//! The scheduled health report (`[reports] health = "0 8 * * *"`): at each
//! firing, the report of the day so far (the 24 hours up to then) is read
//! from the store and sent to every channel any route names (whatever its
//! severities or label match: the report is about every check). Email
//! gets it whole, as text and HTML; chat channels a summary with a link to
//! the status page; PagerDuty and Alertmanager are skipped (incidents only).
//!
//! A failure (the database away, a channel refusing) is logged and tried
//! again with backoff, up to [`ATTEMPTS`] times, the channels that took it
//! not again; it never stops keeper. The task ends on shutdown.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::core::ownership::{Duty, Ownership};

use super::actions::actions;
use super::markdown::overall_word;
use super::{Facts, Period, gather, html, render};
use crate::config::CheckConfig;
use crate::core::Color;
use crate::core::value::Crontab;
use crate::notify::Channel;
use crate::notify::report::ReportMessage;
use crate::store::Store;

/// How many times one firing's report is tried.
pub const ATTEMPTS: u32 = 6;
/// The wait before the first retry; it doubles each time.
const FIRST_RETRY: Duration = Duration::from_secs(15);
/// Actions named in a chat summary.
const SUMMARY_ACTIONS: usize = 5;

/// What the task needs, read from the config once.
pub struct Daily {
    pub schedule: Crontab,
    pub checks: Vec<Arc<CheckConfig>>,
    /// The channels the routes name, in order, each once.
    pub channels: Vec<String>,
    /// Link for chat summaries: `server.public_url`, else the listen address.
    pub link: String,
    /// Among several instances, the one holding [`Duty::Reports`] sends.
    pub ownership: Ownership,
}

/// Every channel any route names, in order, each once.
pub fn routed_channels(routes: &[crate::notify::policy::Route]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in routes.iter().flat_map(|r| &r.channels) {
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

/// Sends the report at every firing of the schedule until `shutdown`.
pub async fn run(
    daily: Daily,
    store: Store,
    channels: Arc<BTreeMap<String, Channel>>,
    shutdown: CancellationToken,
) {
    loop {
        let now = Utc::now();
        let Some(next) = daily.schedule.next_after(now) else {
            tracing::warn!(schedule = %daily.schedule.source, "reports.health never fires again");
            return;
        };
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if !daily.ownership.does(Duty::Reports) {
            tracing::debug!("the health report is another instance's to send");
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = send_with_retries(&daily, &store, &channels, next) => {}
        }
    }
}

/// One firing: read and send, retrying what failed.
async fn send_with_retries(
    daily: &Daily,
    store: &Store,
    channels: &BTreeMap<String, Channel>,
    fired: DateTime<Utc>,
) {
    let mut pending: Vec<&str> = daily
        .channels
        .iter()
        .filter(|n| match channels.get(n.as_str()) {
            Some(c) => c.takes_reports(),
            None => false,
        })
        .map(String::as_str)
        .collect();
    let mut backoff = FIRST_RETRY;
    for attempt in 1..=ATTEMPTS {
        match send_once(daily, store, channels, &pending, fired).await {
            Ok(failed) if failed.is_empty() => {
                tracing::info!(date = %fired.date_naive(), channels = daily.channels.len(), "health report sent");
                return;
            }
            Ok(failed) => pending = failed,
            Err(e) => {
                tracing::warn!(error = %e, attempt, "health report: reading the database failed")
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    tracing::error!(channels = ?pending, attempts = ATTEMPTS, "health report not sent; giving up until the next one");
}

/// Reads the report and sends it to `pending`; returns the channels that failed.
async fn send_once<'a>(
    daily: &Daily,
    store: &Store,
    channels: &BTreeMap<String, Channel>,
    pending: &[&'a str],
    fired: DateTime<Utc>,
) -> Result<Vec<&'a str>, crate::store::StoreError> {
    let now = Utc::now();
    let Some(period) = Period::of(fired.date_naive(), now) else {
        return Ok(Vec::new());
    };
    let facts = gather(store, &daily.checks, period, now).await?;
    let m = message(&facts, Some(&daily.link));
    let mut failed = Vec::new();
    for &name in pending {
        let Some(channel) = channels.get(name) else {
            continue;
        };
        let key = format!("health-report-{}-{name}", m.date);
        if let Err(e) = channel.send_report(&m, &key).await {
            tracing::warn!(channel = name, error = %e, "health report not delivered");
            if !e.permanent {
                failed.push(name);
            }
        }
    }
    Ok(failed)
}

/// The report as the channels carry it.
pub fn message(f: &Facts, link: Option<&str>) -> ReportMessage {
    let markdown = render(f);
    let date = f.period.date.format("%Y-%m-%d").to_string();
    let subject = format!("Health report {date}: {}", overall_word(f));
    let html = html::document(&subject, &markdown);
    ReportMessage {
        kind: "health_report",
        date,
        subject,
        markdown,
        html,
        summary: summary(f),
        link: link.map(Into::into),
    }
}

/// A few lines: the checks by color, the incidents, the first actions.
pub fn summary(f: &Facts) -> String {
    let count = |c: Color| f.checks.iter().filter(|k| k.color() == Some(c)).count();
    let mut out = format!(
        "{} checks: {} green, {} yellow, {} red.",
        f.checks.len(),
        count(Color::Green),
        count(Color::Yellow),
        count(Color::Red)
    );
    let opened = f
        .incidents
        .iter()
        .filter(|i| i.started_at >= f.period.since)
        .count();
    let open = f
        .incidents
        .iter()
        .filter(|i| i.resolved_at.is_none())
        .count();
    let _ = write!(out, " Incidents: {opened} opened, {open} open.");
    let actions = actions(f);
    match actions.len() {
        0 => out.push_str(" No actions."),
        n => {
            let _ = write!(out, " {n} actions:");
            for a in actions.iter().take(SUMMARY_ACTIONS) {
                let _ = write!(out, "\n- {} {}: {}", a.color, a.check, a.what);
            }
            if n > SUMMARY_ACTIONS {
                let _ = write!(out, "\n- … and {} more", n - SUMMARY_ACTIONS);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::health::fixture::facts;

    #[test]
    fn the_message_carries_the_report_whole_and_in_short() {
        let f = facts();
        let m = message(&f, Some("https://status.example.com"));
        assert_eq!(m.subject, "Health report 2026-11-29: Outage");
        assert_eq!(m.date, "2026-11-29");
        assert_eq!(m.markdown, render(&f));
        assert!(m.html.contains("<h2>Actions</h2>"), "{}", m.html);
        assert_eq!(m.link.as_deref(), Some("https://status.example.com"));
        let lines: Vec<&str> = m.summary.lines().collect();
        assert_eq!(
            lines[0],
            "7 checks: 6 green, 0 yellow, 1 red. Incidents: 2 opened, 1 open. 9 actions:"
        );
        assert_eq!(
            lines[1],
            "- red api: status is red now: expected status 200, got 503"
        );
        assert_eq!(lines.len(), 7);
        assert_eq!(lines[6], "- … and 4 more");
    }

    #[test]
    fn every_routed_channel_once() {
        let route = |channels: &[&str]| crate::notify::policy::Route {
            severities: vec![],
            channels: channels.iter().map(|c| c.to_string()).collect(),
            matches: Default::default(),
            group_wait: Duration::ZERO,
        };
        let routes = [route(&["mail", "slack"]), route(&["slack", "hook"])];
        assert_eq!(routed_channels(&routes), ["mail", "slack", "hook"]);
    }
}
