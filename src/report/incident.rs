//! The incident report, `INCIDENT_REPORT_YYYY-MM-DD-<id>.md` (the UTC day
//! the incident started): summary, impact, timeline, the samples around the
//! start, deployments in the two hours before, MTTA/MTTR, and empty "Root
//! cause" and "Prevention" sections for a person to fill in. [`gather`]
//! reads the [`Facts`] from the store; [`render`] writes them, pure.
//! Served by `GET /api/v1/incidents/{id}/report`; `keeper report incident`
//! writes it to a file.

use std::fmt::Write;

use chrono::{DateTime, Duration, Utc};

use super::md;
use crate::core::deployment::Deployment;
use crate::incident::{Incident, IncidentEvent, mtta_s, mttr_s};
use crate::store::{IncidentFilter, SampleRow, Store, StoreError};

/// Samples shown on each side of the start.
pub const AROUND: usize = 5;
/// How far before the start deployments are listed.
pub const DEPLOY_WINDOW: Duration = Duration::hours(2);
/// At most this many deployments are listed.
const DEPLOY_LIMIT: u32 = 50;
/// The newest incidents looked through for those overlapping this one.
const OTHERS_SCAN: u32 = 1000;
/// Samples read per window while looking back for [`AROUND`] before the start.
const SAMPLE_SCAN: u32 = 1000;

/// Everything the report says, read from the store.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    pub incident: Incident,
    /// Its timeline, oldest first.
    pub events: Vec<IncidentEvent>,
    /// The check's `app` label; without one, deployments of every app are listed.
    pub app: Option<String>,
    /// The check's last samples before the start, oldest first.
    pub before: Vec<SampleRow>,
    /// Its first samples at or after the start, oldest first.
    pub after: Vec<SampleRow>,
    /// Deployments in the two hours before the start, newest first.
    pub deployments: Vec<Deployment>,
    /// Other checks' incidents open at some time during this one.
    pub others: Vec<Related>,
    /// When the report was made: how long an open incident has lasted so far.
    pub now: DateTime<Utc>,
}

/// Another check's incident that overlapped this one.
#[derive(Clone, Debug, PartialEq)]
pub struct Related {
    pub incident: Incident,
    /// What held its notification back, as its timeline tells (`held back
    /// while dependency db is failing`); `None` when it does not say.
    pub held: Option<String>,
}

impl Related {
    /// Whether its notification was held back because `check` was failing
    /// (its `depends_on`): the hold's reason names the dependency.
    pub fn held_by(&self, check: &str) -> bool {
        self.held
            .as_deref()
            .is_some_and(|h| h.contains(&format!("dependency {check} ")))
    }
}

/// The report's file name: `INCIDENT_REPORT_YYYY-MM-DD-<id>.md`, the UTC day it started.
pub fn file_name(id: i64, started_at: DateTime<Utc>) -> String {
    format!("INCIDENT_REPORT_{}-{id}.md", started_at.format("%Y-%m-%d"))
}

/// Reads incident `id`'s facts: its timeline, the samples around its start,
/// the deployments before it (of the app `app_of` names for its check), and
/// the other incidents during it. `NotFound` for an unknown id.
pub async fn gather(
    store: &Store,
    id: i64,
    app_of: impl FnOnce(&str) -> Option<String>,
    now: DateTime<Utc>,
) -> Result<Facts, StoreError> {
    let incident = store.incident(id).await?;
    let events = store.incident_events(id).await?;
    let app = app_of(&incident.check);
    let started = incident.started_at;
    let deployments = store
        .deployments(
            app.as_deref(),
            started - DEPLOY_WINDOW,
            started,
            DEPLOY_LIMIT,
        )
        .await?;
    let (before, after) = samples_around(store, &incident.check, started).await?;
    let others = overlapping(store, &incident, now).await?;
    Ok(Facts {
        incident,
        events,
        app,
        before,
        after,
        deployments,
        others,
        now,
    })
}

/// The last [`AROUND`] samples of `check` before `started` and its first
/// [`AROUND`] from then. Looks back a minute, then ever further (up to a
/// day) until [`AROUND`] are found, so a dense check reads little and a
/// sparse one still shows some.
async fn samples_around(
    store: &Store,
    check: &str,
    started: DateTime<Utc>,
) -> Result<(Vec<SampleRow>, Vec<SampleRow>), StoreError> {
    let after = store.samples(check, started, AROUND as u32).await?;
    let mut before = Vec::new();
    for minutes in [1, 10, 60, 6 * 60, 24 * 60] {
        let rows = store
            .samples(check, started - Duration::minutes(minutes), SAMPLE_SCAN)
            .await?;
        let filled = rows.len() == SAMPLE_SCAN as usize;
        before = rows.into_iter().filter(|s| s.at < started).collect();
        if before.len() >= AROUND || filled {
            break;
        }
    }
    let extra = before.len().saturating_sub(AROUND);
    before.drain(..extra);
    Ok((before, after))
}

/// Other checks' incidents open at some time between `incident`'s start
/// and its end (or `now`), oldest first, each with what held it back.
/// Looks through the newest [`OTHERS_SCAN`] incidents.
async fn overlapping(
    store: &Store,
    incident: &Incident,
    now: DateTime<Utc>,
) -> Result<Vec<Related>, StoreError> {
    let end = incident.resolved_at.unwrap_or(now);
    let mut others: Vec<Incident> = store
        .incidents(IncidentFilter::All, OTHERS_SCAN)
        .await?
        .into_iter()
        .filter(|o| {
            o.id != incident.id
                && o.check != incident.check
                && o.started_at <= end
                && o.resolved_at.is_none_or(|r| r >= incident.started_at)
        })
        .collect();
    others.sort_by_key(|o| (o.started_at, o.id));
    let ids: Vec<i64> = others.iter().map(|o| o.id).collect();
    let mut events = store.events_of(&ids).await?;
    Ok(others
        .into_iter()
        .map(|o| {
            let held = events
                .remove(&o.id)
                .unwrap_or_default()
                .into_iter()
                .find(|e| e.kind == "notified" && e.detail.starts_with("held back"))
                .map(|e| e.detail);
            Related { incident: o, held }
        })
        .collect())
}

/// The report as Markdown.
pub fn render(f: &Facts) -> String {
    let i = &f.incident;
    let mut out = String::new();
    let _ = writeln!(out, "# Incident {}: {}\n", i.id, md(&i.check));
    let _ = writeln!(
        out,
        "Report made by keeper at {}. Times are UTC.\n",
        time(f.now)
    );
    summary(&mut out, f);
    impact(&mut out, f);
    timeline(&mut out, f);
    samples(&mut out, f);
    deployments(&mut out, f);
    response(&mut out, i);
    out.push_str("## Root cause\n\n<!-- What caused it, and how it was found. -->\n\n");
    out.push_str("## Prevention\n\n<!-- What will keep it from happening again: actions, owners, dates. -->\n");
    out
}

fn summary(out: &mut String, f: &Facts) {
    let i = &f.incident;
    out.push_str("## Summary\n\n");
    let app = f
        .app
        .as_ref()
        .map_or_else(String::new, |a| format!(" (app {})", md(a)));
    let _ = writeln!(out, "- Check: {}{app}", md(&i.check));
    let _ = writeln!(out, "- Severity: {} ({})", i.severity, i.color);
    let state = match i.resolved_at {
        Some(at) => format!("resolved at {}", time(at)),
        None => "open".to_string(),
    };
    let _ = writeln!(out, "- State: {state}");
    let _ = writeln!(out, "- Started: {}", time(i.started_at));
    let _ = writeln!(out, "- Message: {}", md(&i.message));
    let notified = match i.notified_at {
        Some(at) if at <= i.started_at => "when it opened".to_string(),
        Some(at) => format!("at {} (held back until then)", time(at)),
        None => "never (held back, or over before anyone needed to hear)".to_string(),
    };
    let _ = writeln!(out, "- Notified: {notified}\n");
}

fn impact(out: &mut String, f: &Facts) {
    let i = &f.incident;
    out.push_str("## Impact\n\n");
    let duration = match i.resolved_at {
        Some(end) => human(end - i.started_at),
        None => format!("{} so far (still open)", human(f.now - i.started_at)),
    };
    let _ = writeln!(out, "- Duration: {duration}");
    let mut affected: Vec<&str> = vec![&i.check];
    for o in &f.others {
        if !affected.contains(&o.incident.check.as_str()) {
            affected.push(&o.incident.check);
        }
    }
    let affected: Vec<String> = affected.iter().map(|c| md(c)).collect();
    let _ = writeln!(
        out,
        "- Checks affected: {} ({})",
        affected.len(),
        affected.join(", ")
    );
    let held: Vec<&Related> = f.others.iter().filter(|o| o.held_by(&i.check)).collect();
    if held.is_empty() {
        let _ = writeln!(out, "- Dependents held back: none");
    } else {
        let _ = writeln!(out, "- Dependents held back: {}", held.len());
        for o in held {
            let _ = writeln!(
                out,
                "  - {} (incident {}, started {}): {}",
                md(&o.incident.check),
                o.incident.id,
                time(o.incident.started_at),
                md(o.held.as_deref().unwrap_or_default())
            );
        }
    }
    if !f.others.is_empty() {
        out.push_str("\nIncidents of other checks during this one:\n\n");
        out.push_str("| incident | check | severity | started | resolved | notified |\n");
        out.push_str("| --- | --- | --- | --- | --- | --- |\n");
        for o in &f.others {
            let r = &o.incident;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                r.id,
                md(&r.check),
                r.severity,
                time(r.started_at),
                r.resolved_at.map_or_else(|| "open".into(), time),
                match (&o.held, r.notified_at) {
                    (Some(h), _) => md(h),
                    (None, Some(at)) => time(at),
                    (None, None) => "never".into(),
                }
            );
        }
    }
    out.push('\n');
}

fn timeline(out: &mut String, f: &Facts) {
    out.push_str("## Timeline\n\n");
    if f.events.is_empty() {
        out.push_str("No events recorded.\n\n");
        return;
    }
    out.push_str("| time | after | event | detail |\n| --- | --- | --- | --- |\n");
    for e in &f.events {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            time(e.at),
            human(e.at - f.incident.started_at),
            md(&e.kind),
            md(&e.detail)
        );
    }
    out.push('\n');
}

fn samples(out: &mut String, f: &Facts) {
    let _ = writeln!(
        out,
        "## Samples around the start\n\nThe last {AROUND} samples of {} before {} and the first {AROUND} from then.\n",
        md(&f.incident.check),
        time(f.incident.started_at)
    );
    if f.before.is_empty() && f.after.is_empty() {
        out.push_str("No samples stored around the start (past retention?).\n\n");
        return;
    }
    out.push_str("| time | when | up | color | status | latency | message |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
    let rows = f.before.iter().map(|s| (s, "before"));
    for (s, side) in rows.chain(f.after.iter().map(|s| (s, "after"))) {
        let _ = writeln!(
            out,
            "| {} | {side} | {} | {} | {} | {:.0} ms | {} |",
            s.at.format("%Y-%m-%d %H:%M:%S%.3f"),
            if s.up { "yes" } else { "no" },
            s.color,
            s.status_code.map_or_else(|| "-".into(), |c| c.to_string()),
            s.latency_ms,
            md(&s.message)
        );
    }
    out.push('\n');
}

fn deployments(out: &mut String, f: &Facts) {
    let which = f
        .app
        .as_ref()
        .map_or_else(|| "of any app".to_string(), |a| format!("of {}", md(a)));
    let _ = writeln!(
        out,
        "## Deployments before it\n\nDeployments {which} in the two hours before {}.\n",
        time(f.incident.started_at)
    );
    if f.deployments.is_empty() {
        out.push_str("None recorded.\n\n");
        return;
    }
    out.push_str("| time | before the start | app | version | by | description |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- |\n");
    for d in &f.deployments {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            time(d.at),
            human(f.incident.started_at - d.at),
            md(&d.app),
            md(&d.version),
            md(&d.by),
            md(&d.description)
        );
    }
    out.push('\n');
}

fn response(out: &mut String, i: &Incident) {
    out.push_str("## Response\n\n");
    let mtta = match (mtta_s(i), i.resolved_at) {
        (Some(s), _) => seconds(s),
        (None, Some(_)) => "never acknowledged".into(),
        (None, None) => "not acknowledged yet".into(),
    };
    let mttr = mttr_s(i).map_or_else(|| "not resolved yet".into(), seconds);
    let _ = writeln!(out, "- Time to acknowledge (MTTA): {mtta}");
    let _ = writeln!(out, "- Time to resolve (MTTR): {mttr}\n");
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn human(d: Duration) -> String {
    seconds(d.num_seconds())
}

fn seconds(s: i64) -> String {
    let s = u64::try_from(s).unwrap_or(0);
    if s == 0 {
        return "0s".into();
    }
    humantime::format_duration(std::time::Duration::from_secs(s)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Color, Severity};
    use crate::report::section;

    fn at(s: &str) -> DateTime<Utc> {
        format!("2026-11-30T{s}Z").parse().unwrap()
    }

    fn incident(id: i64, check: &str, started: &str, resolved: Option<&str>) -> Incident {
        Incident {
            id,
            check: check.into(),
            severity: Severity::Critical,
            color: Color::Red,
            message: "expected status 200, got 503".into(),
            started_at: at(started),
            acknowledged_at: None,
            resolved_at: resolved.map(at),
            notified_at: Some(at(started)),
        }
    }

    fn event(t: &str, kind: &str, detail: &str) -> IncidentEvent {
        IncidentEvent {
            at: at(t),
            kind: kind.into(),
            detail: detail.into(),
        }
    }

    fn sample(t: &str, up: bool) -> SampleRow {
        SampleRow {
            check: "db".into(),
            at: at(t),
            duration_ms: 3.0,
            up,
            color: if up { Color::Green } else { Color::Red },
            status_code: Some(if up { 200 } else { 503 }),
            latency_ms: 3.2,
            message: if up { "200 OK" } else { "got 503" }.into(),
            metrics: None,
            region: None,
        }
    }

    fn facts() -> Facts {
        let mut db = incident(7, "db", "05:00:00", Some("05:10:00"));
        db.acknowledged_at = Some(at("05:02:30"));
        let mut web = incident(8, "web", "05:00:05", Some("05:09:00"));
        web.notified_at = None;
        Facts {
            incident: db,
            events: vec![
                event("05:00:00", "opened", "expected status 200, got 503"),
                event("05:05:00", "reminder", ""),
                event("05:02:30", "acknowledged", "by bob"),
                event("05:10:00", "resolved", "200 OK | fine"),
            ],
            app: Some("shop".into()),
            before: vec![sample("04:59:50", true)],
            after: vec![sample("05:00:00", false), sample("05:00:10", false)],
            deployments: vec![Deployment {
                id: 1,
                app: "shop".into(),
                version: "v42".into(),
                description: "new *checkout*".into(),
                by: "ci".into(),
                at: at("04:57:00"),
            }],
            others: vec![
                Related {
                    incident: web,
                    held: Some("held back while dependency db is failing".into()),
                },
                Related {
                    incident: incident(9, "dbx", "05:01:00", None),
                    held: Some("held back while dependency dbx-primary is failing".into()),
                },
            ],
            now: at("06:00:00"),
        }
    }

    #[test]
    fn the_report_has_every_section_in_order() {
        let report = render(&facts());
        assert!(report.starts_with("# Incident 7: db\n"), "{report}");
        let headings: Vec<&str> = report.lines().filter(|l| l.starts_with("## ")).collect();
        assert_eq!(
            headings,
            [
                "## Summary",
                "## Impact",
                "## Timeline",
                "## Samples around the start",
                "## Deployments before it",
                "## Response",
                "## Root cause",
                "## Prevention"
            ]
        );
    }

    #[test]
    fn summary_impact_and_response_say_what_happened() {
        let report = render(&facts());
        let summary = section(&report, "Summary");
        assert!(summary.contains("- Check: db (app shop)\n"), "{summary}");
        assert!(
            summary.contains("- Severity: critical (red)\n"),
            "{summary}"
        );
        assert!(summary.contains("- State: resolved at 2026-11-30 05:10:00\n"));
        assert!(summary.contains("- Message: expected status 200, got 503\n"));
        let impact = section(&report, "Impact");
        assert!(impact.contains("- Duration: 10m\n"), "{impact}");
        assert!(
            impact.contains("- Checks affected: 3 (db, web, dbx)\n"),
            "{impact}"
        );
        // dbx was held by dbx-primary, not by db.
        assert!(impact.contains("- Dependents held back: 1\n"), "{impact}");
        assert!(impact.contains("  - web (incident 8, started 2026-11-30 05:00:05): held back while dependency db is failing\n"), "{impact}");
        let response = section(&report, "Response");
        assert!(response.contains("- Time to acknowledge (MTTA): 2m 30s\n"));
        assert!(response.contains("- Time to resolve (MTTR): 10m\n"));
    }

    #[test]
    fn timeline_samples_and_deployments_are_tables() {
        let report = render(&facts());
        let timeline = section(&report, "Timeline");
        assert!(timeline.contains("| 2026-11-30 05:02:30 | 2m 30s | acknowledged | by bob |"));
        assert!(timeline.contains("| 2026-11-30 05:05:00 | 5m | reminder |  |"));
        assert!(
            timeline.contains("| resolved | 200 OK \\| fine |"),
            "{timeline}"
        );
        let samples = section(&report, "Samples around the start");
        let rows: Vec<&str> = samples
            .lines()
            .filter(|l| l.starts_with("| 2026"))
            .collect();
        assert_eq!(rows.len(), 3, "{samples}");
        assert!(rows[0].contains("| before | yes | green | 200 | 3 ms | 200 OK |"));
        assert!(rows[1].starts_with("| 2026-11-30 05:00:00.000 | after | no | red | 503 |"));
        let deploys = section(&report, "Deployments before it");
        assert!(deploys.contains("Deployments of shop in the two hours before"));
        assert!(
            deploys.contains("| 2026-11-30 04:57:00 | 3m | shop | v42 | ci | new \\*checkout\\* |"),
            "{deploys}"
        );
    }

    #[test]
    fn root_cause_and_prevention_are_left_for_a_person() {
        let report = render(&facts());
        for heading in ["Root cause", "Prevention"] {
            let text = section(&report, heading);
            let written: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with("<!--"))
                .collect();
            assert!(written.is_empty(), "{heading}: {text}");
        }
    }

    #[test]
    fn an_open_incident_with_nothing_around_says_so() {
        let mut f = facts();
        f.incident.resolved_at = None;
        f.incident.acknowledged_at = None;
        f.incident.notified_at = None;
        f.app = None;
        (f.before, f.after, f.deployments, f.others) = (vec![], vec![], vec![], vec![]);
        let report = render(&f);
        assert!(report.contains("- State: open\n"));
        assert!(
            report.contains("- Duration: 1h so far (still open)\n"),
            "{report}"
        );
        assert!(report.contains("- Checks affected: 1 (db)\n"));
        assert!(report.contains("- Dependents held back: none\n"));
        assert!(report.contains("- Notified: never"));
        assert!(report.contains("No samples stored around the start"));
        assert!(report.contains("Deployments of any app in the two hours before"));
        assert!(report.contains("None recorded."));
        assert!(report.contains("(MTTA): not acknowledged yet\n"));
        assert!(report.contains("(MTTR): not resolved yet\n"));
    }

    #[test]
    fn the_file_is_named_for_the_utc_day_it_started() {
        let started = "2026-11-30T23:59:59-05:00".parse().unwrap();
        assert_eq!(file_name(12, started), "INCIDENT_REPORT_2026-12-01-12.md");
    }
}
