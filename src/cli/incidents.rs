//! `keeper incidents [--state open|resolved|all] [--json]`: a running
//! keeper's incidents with their timelines, newest first.

use std::fmt::Write;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::client::Api;
use super::term::{self, Paint};
use crate::core::{Color, Severity};

/// Which incidents to list.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum State {
    Open,
    Resolved,
    All,
}

/// The options of `keeper incidents`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which incidents: open, resolved or all.
    #[arg(long, value_enum, default_value = "open")]
    state: State,
    /// Print keeper's JSON (`GET /api/v1/incidents`) instead.
    #[arg(long)]
    json: bool,
    /// keeper's URL (default: from the config's server.listen).
    #[arg(long)]
    url: Option<String>,
}

/// An incident as `GET /api/v1/incidents` shows it.
#[derive(Debug, Deserialize)]
pub struct IncidentRow {
    pub id: i64,
    pub check: String,
    pub state: String,
    pub severity: Severity,
    pub color: Color,
    pub message: String,
    pub started_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub mtta_s: Option<i64>,
    pub mttr_s: Option<i64>,
    #[serde(default)]
    pub events: Vec<EventRow>,
}

#[derive(Debug, Deserialize)]
pub struct EventRow {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub detail: String,
}

pub async fn run(config: &Path, args: Args) -> anyhow::Result<super::Exit> {
    let api = Api::new(config, args.url)?;
    let state = match args.state {
        State::Open => "open",
        State::Resolved => "resolved",
        State::All => "all",
    };
    let body = api
        .get_text(&format!("/api/v1/incidents?state={state}"))
        .await?;
    let incidents: Vec<IncidentRow> = serde_json::from_str(&body)
        .with_context(|| format!("reading keeper's answer from {}", api.base))?;
    if args.json {
        println!("{}", body.trim_end());
    } else if incidents.is_empty() {
        let which = if state == "all" { "" } else { state };
        println!(
            "no {which}{}incidents",
            if which.is_empty() { "" } else { " " }
        );
    } else {
        print!("{}", list(&incidents, term::width(), Paint::for_stdout()));
    }
    Ok(super::Exit::Ok)
}

/// Every incident: a heading line, its message, how long to acknowledge and
/// resolve, and its timeline, each line fitting `width` columns.
pub fn list(incidents: &[IncidentRow], width: usize, paint: Paint) -> String {
    let mut out = String::new();
    for (n, i) in incidents.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let color = match (i.state.as_str(), i.color) {
            ("resolved", _) => term::GREEN,
            (_, Color::Yellow) => term::YELLOW,
            (_, Color::Green) => term::GREEN,
            (_, Color::Red) => term::RED,
        };
        let heading = format!(
            "#{} {} {} {}",
            i.id,
            i.check,
            i.severity,
            paint.paint(&i.state, color)
        );
        let _ = writeln!(out, "{heading}  started {}", term::time(i.started_at));
        let _ = writeln!(
            out,
            "    {}",
            term::fit(&i.message, width.saturating_sub(4))
        );
        let _ = writeln!(out, "    {}", timing(i));
        let detail_w = width.saturating_sub(4 + 20 + 2 + 12 + 2).max(10);
        for e in &i.events {
            let _ = writeln!(
                out,
                "    {}  {:12}  {}",
                term::time(e.at),
                term::fit(&e.kind, 12),
                term::fit(&e.detail, detail_w)
            );
        }
    }
    out
}

/// `acknowledged after 1m 5s (MTTA) · resolved after 10m 0s (MTTR)`.
fn timing(i: &IncidentRow) -> String {
    let ack = match i.mtta_s {
        Some(s) => format!("acknowledged after {} (MTTA)", term::seconds(s)),
        None if i.resolved_at.is_some() => "never acknowledged".into(),
        None => "not acknowledged".into(),
    };
    let resolved = match i.mttr_s {
        Some(s) => format!("resolved after {} (MTTR)", term::seconds(s)),
        None => {
            let open = (Utc::now() - i.started_at).num_seconds().max(0);
            format!("open for {}", term::seconds(open))
        }
    };
    format!("{ack} · {resolved}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incident_shows_its_heading_timing_and_timeline() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let incident = IncidentRow {
            id: 7,
            check: "web".into(),
            state: "resolved".into(),
            severity: Severity::Critical,
            color: Color::Red,
            message: "expected status 200, got 503".into(),
            started_at: at("2026-11-30T05:01:02Z"),
            resolved_at: Some(at("2026-11-30T05:11:02Z")),
            mtta_s: Some(65),
            mttr_s: Some(600),
            events: vec![
                EventRow {
                    at: at("2026-11-30T05:01:02Z"),
                    kind: "opened".into(),
                    detail: "expected status 200, got 503".into(),
                },
                EventRow {
                    at: at("2026-11-30T05:02:07Z"),
                    kind: "acknowledged".into(),
                    detail: format!("by {}", "b".repeat(100)),
                },
            ],
        };
        let out = list(&[incident], 80, Paint(false));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "#7 web critical resolved  started 2026-11-30 05:01:02Z"
        );
        assert_eq!(lines[1], "    expected status 200, got 503");
        assert_eq!(
            lines[2],
            "    acknowledged after 1m 5s (MTTA) · resolved after 10m 0s (MTTR)"
        );
        assert!(lines[3].starts_with("    2026-11-30 05:01:02Z  opened        expected"));
        assert!(lines[4].contains("acknowledged  by bbb"), "{out}");
        for line in &lines {
            assert!(line.chars().count() <= 80, "{line:?}");
        }
    }
}
