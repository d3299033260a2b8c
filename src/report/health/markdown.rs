//! The health report as Markdown: a pure function of the [`Facts`].

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::actions::{Action, actions, value_text};
use super::{CERT_DAYS, CheckFacts, Facts, Reading, Source};
use crate::core::{Color, Metric, uptime_color};
use crate::incident::Incident;
use crate::report::md;

/// The report.
pub fn render(f: &Facts) -> String {
    let mut out = String::new();
    let p = &f.period;
    let _ = writeln!(out, "# Health report {}\n", p.date.format("%Y-%m-%d"));
    let span = if p.to_now {
        "the 24 hours up to now (the day is not over)"
    } else {
        "the whole day"
    };
    let _ = writeln!(
        out,
        "Made by keeper at {}. Covers {span}: {} to {}. Times are UTC.\n",
        time(f.made_at),
        time(p.since),
        time(p.until)
    );
    let actions = actions(f);
    overall(&mut out, f, &actions);
    for (app, checks) in f.apps() {
        app_section(&mut out, f, app, &checks);
    }
    certificates(&mut out, f);
    statements(&mut out, f);
    heartbeats(&mut out, f);
    logs(&mut out, f);
    actions_section(&mut out, &actions);
    out
}

/// `Operational`, `Degraded` or `Outage`, by the worst check now.
pub fn overall_word(f: &Facts) -> &'static str {
    match f.checks.iter().filter_map(CheckFacts::color).max() {
        Some(Color::Red) => "Outage",
        Some(Color::Yellow) => "Degraded",
        _ => "Operational",
    }
}

fn overall(out: &mut String, f: &Facts, actions: &[Action]) {
    out.push_str("## Overall status\n\n");
    let count = |c: Color| f.checks.iter().filter(|k| k.color() == Some(c)).count();
    let source = |s: Source| f.checks.iter().filter(|k| k.source == s).count();
    let rolled = match source(Source::Rollups) {
        0 => String::new(),
        n => format!(" ({n} from hourly rollups only: their samples are past retention)"),
    };
    let _ = writeln!(
        out,
        "**{}**: {} checks, {} green, {} yellow, {} red, {} without samples in the period{rolled}.\n",
        overall_word(f),
        f.checks.len(),
        count(Color::Green),
        count(Color::Yellow),
        count(Color::Red),
        source(Source::Nothing),
    );
    let opened = f
        .incidents
        .iter()
        .filter(|i| i.started_at >= f.period.since)
        .count();
    let resolved = f.incidents.iter().filter(|i| resolved_in(f, i)).count();
    let open = f
        .incidents
        .iter()
        .filter(|i| i.resolved_at.is_none())
        .count();
    let _ = writeln!(
        out,
        "- Incidents: {opened} opened, {resolved} resolved, {open} still open"
    );
    let _ = writeln!(out, "- Deployments: {}", f.deployments.len());
    let _ = writeln!(out, "- Actions: {}\n", actions.len());
}

fn resolved_in(f: &Facts, i: &Incident) -> bool {
    i.resolved_at
        .is_some_and(|r| r >= f.period.since && r < f.period.until)
}

fn app_section(out: &mut String, f: &Facts, app: &str, checks: &[&CheckFacts]) {
    let _ = writeln!(out, "## App {}\n", md(app));
    let status = checks.iter().filter_map(|c| c.color()).max();
    let _ = writeln!(
        out,
        "- Status: {}",
        status.map_or("no samples", Color::as_str)
    );
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    let incidents: Vec<&Incident> = f
        .incidents
        .iter()
        .filter(|i| names.contains(&i.check.as_str()))
        .collect();
    incidents_line(out, f, &incidents);
    let deploys: Vec<String> = f
        .deployments
        .iter()
        .filter(|d| d.app == app)
        .map(|d| {
            format!(
                "{} at {} by {}{}",
                md(&d.version),
                time(d.at),
                md(&d.by),
                if d.description.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", md(&d.description))
                }
            )
        })
        .collect();
    match deploys.is_empty() {
        true => out.push_str("- Deployments: none\n\n"),
        false => {
            let _ = writeln!(out, "- Deployments: {}\n", deploys.join("; "));
        }
    }
    out.push_str(
        "| check | kind | status | uptime | p95 latency | error rate | memory | CPU | disk |\n",
    );
    out.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for c in checks {
        let uptime = c.uptime().map_or_else(
            || "-".to_string(),
            |u| format!("{} ({})", value_text(Metric::UptimePct, u), uptime_color(u)),
        );
        let rolled = if c.source == Source::Rollups {
            " (worst hour, from rollups)"
        } else {
            ""
        };
        let p95 = c.p95_ms.map_or_else(
            || "-".to_string(),
            |v| format!("{}{rolled}", value_text(Metric::LatencyMs, v)),
        );
        let _ = writeln!(
            out,
            "| {} | {} | {} | {uptime} | {p95} | {} | {} | {} | {} |",
            md(&c.name),
            c.kind,
            status_of(c),
            reading(c, Metric::ErrorRatePct),
            reading(c, Metric::MemoryPct),
            reading(c, Metric::CpuPct),
            reading(c, Metric::DiskPct),
        );
    }
    out.push('\n');
}

fn incidents_line(out: &mut String, f: &Facts, incidents: &[&Incident]) {
    let opened = incidents
        .iter()
        .filter(|i| i.started_at >= f.period.since)
        .count();
    let resolved = incidents.iter().filter(|i| resolved_in(f, i)).count();
    let mean =
        |v: Vec<i64>| (!v.is_empty()).then(|| millis(v.iter().sum::<i64>() / v.len() as i64));
    let since_start = |at: Option<DateTime<Utc>>, i: &Incident| {
        at.map(|at| (at - i.started_at).num_milliseconds())
    };
    let mtta = mean(
        incidents
            .iter()
            .filter_map(|i| since_start(i.acknowledged_at, i))
            .collect(),
    );
    let mttr = mean(
        incidents
            .iter()
            .filter(|i| resolved_in(f, i))
            .filter_map(|i| since_start(i.resolved_at, i))
            .collect(),
    );
    let _ = writeln!(
        out,
        "- Incidents: {opened} opened, {resolved} resolved; MTTA {}; MTTR {}",
        mtta.unwrap_or_else(|| "-".into()),
        mttr.unwrap_or_else(|| "-".into())
    );
    for i in incidents {
        let state = i
            .resolved_at
            .map_or_else(|| "open".to_string(), |r| format!("resolved {}", time(r)));
        let _ = writeln!(
            out,
            "  - incident {} on {}: {} {}, started {}, {state}",
            i.id,
            md(&i.check),
            i.severity,
            md(&i.message),
            time(i.started_at)
        );
    }
}

/// The color of a check's newest sample, or why there is none.
fn status_of(c: &CheckFacts) -> &'static str {
    match (c.color(), c.source) {
        (Some(color), _) => color.as_str(),
        (None, Source::Rollups) => "past retention",
        (None, _) => "no samples",
    }
}

/// `60.0 % (peak 91.0 %)`, or `-` when the check does not measure it.
fn reading(c: &CheckFacts, metric: Metric) -> String {
    match c.metrics.get(&metric) {
        None => "-".into(),
        Some(Reading { latest, peak }) => format!(
            "{} (peak {})",
            value_text(metric, *latest),
            value_text(metric, *peak)
        ),
    }
}

fn certificates(out: &mut String, f: &Facts) {
    let _ = writeln!(out, "## Certificates expiring within {CERT_DAYS:.0} days\n");
    let soon: Vec<(&CheckFacts, f64)> = f
        .checks
        .iter()
        .filter_map(|c| Some((c, c.metrics.get(&Metric::CertDaysLeft)?.latest)))
        .filter(|(_, days)| *days <= CERT_DAYS)
        .collect();
    let measured = f
        .checks
        .iter()
        .filter(|c| c.metrics.contains_key(&Metric::CertDaysLeft))
        .count();
    if soon.is_empty() {
        let _ = writeln!(out, "None ({measured} certificates watched).\n");
        return;
    }
    out.push_str("| check | days left | band |\n| --- | --- | --- |\n");
    for (c, days) in soon {
        let band = c
            .thresholds
            .get(Metric::CertDaysLeft)
            .and_then(|l| l.evaluate(days))
            .map_or(Color::Green, |l| l.color);
        let _ = writeln!(out, "| {} | {days:.1} | {band} |", md(&c.name));
    }
    out.push('\n');
}

fn statements(out: &mut String, f: &Facts) {
    out.push_str("## Slowest database statements\n\n");
    let pg: Vec<&CheckFacts> = f.checks.iter().filter(|c| c.kind == "postgres").collect();
    if pg.is_empty() {
        out.push_str("No postgres checks.\n\n");
        return;
    }
    out.push_str(
        "The slowest statements by mean time, as the newest sample read them from \
         pg_stat_statements; `SELECT 1` is the round trip keeper times itself.\n\n",
    );
    out.push_str("| check | SELECT 1 | slowest statements |\n| --- | --- | --- |\n");
    for c in pg {
        let slowest = c.slowest.as_deref().map_or_else(
            || "not recorded (pg_stat_statements not installed or not readable)".into(),
            md,
        );
        let _ = writeln!(
            out,
            "| {} | {} | {slowest} |",
            md(&c.name),
            reading(c, Metric::QueryMs)
        );
    }
    out.push('\n');
}

fn heartbeats(out: &mut String, f: &Facts) {
    out.push_str("## Backups and heartbeats\n\n");
    let beats: Vec<&CheckFacts> = f.checks.iter().filter(|c| c.heartbeat.is_some()).collect();
    if beats.is_empty() {
        out.push_str("No heartbeat checks.\n\n");
        return;
    }
    out.push_str("| check | last success | state |\n| --- | --- | --- |\n");
    for c in beats {
        let Some(h) = &c.heartbeat else { continue };
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            md(&c.name),
            h.last_success.map_or_else(|| "never".into(), time),
            if h.overdue { "overdue" } else { "on time" }
        );
    }
    out.push('\n');
}

fn logs(out: &mut String, f: &Facts) {
    out.push_str("## Logs\n\n");
    let logs: Vec<&CheckFacts> = f.checks.iter().filter(|c| c.kind == "log").collect();
    if logs.is_empty() {
        out.push_str("No log checks.\n\n");
        return;
    }
    out.push_str("| check | error rate | critical lines |\n| --- | --- | --- |\n");
    for c in logs {
        let lines: Vec<String> = c
            .criticals
            .iter()
            .map(|l| format!("`{}`", code(l)))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            md(&c.name),
            reading(c, Metric::ErrorRatePct),
            if lines.is_empty() {
                "none".into()
            } else {
                lines.join("<br>")
            }
        );
    }
    out.push('\n');
}

fn actions_section(out: &mut String, actions: &[Action]) {
    out.push_str("## Actions\n\n");
    if actions.is_empty() {
        out.push_str("Nothing: every indicator is green.\n");
        return;
    }
    for a in actions {
        let _ = writeln!(out, "- **{}** {}: {}", a.color, md(&a.check), md(&a.what));
    }
}

pub(super) fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A duration for people: `0.4s` under ten seconds, else `2m 30s`.
fn millis(ms: i64) -> String {
    let ms = u64::try_from(ms).unwrap_or(0);
    if ms < 10_000 {
        return format!("{:.1}s", ms as f64 / 1000.0);
    }
    humantime::format_duration(std::time::Duration::from_secs(ms / 1000)).to_string()
}

/// Text inside a code span in a table cell: no backticks, pipes escaped.
fn code(text: &str) -> String {
    text.chars()
        .map(|c| if c == '`' || c.is_control() { '\'' } else { c })
        .collect::<String>()
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::health::Period;
    use crate::report::health::fixture::facts;
    use crate::report::section;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_report_has_every_section_in_order() {
        let report = render(&facts());
        assert!(
            report.starts_with("# Health report 2026-11-29\n"),
            "{report}"
        );
        assert!(
            report.contains("Covers the whole day: 2026-11-29 00:00:00 to 2026-11-30 00:00:00.")
        );
        let headings: Vec<&str> = report.lines().filter(|l| l.starts_with("## ")).collect();
        assert_eq!(
            headings,
            [
                "## Overall status",
                "## App shop",
                "## App data",
                "## App other",
                "## Certificates expiring within 30 days",
                "## Slowest database statements",
                "## Backups and heartbeats",
                "## Logs",
                "## Actions",
            ]
        );
    }

    #[test]
    fn overall_and_app_sections_sum_up_the_day() {
        let report = render(&facts());
        let overall = section(&report, "Overall status");
        assert!(
            overall.contains("**Outage**: 7 checks, 6 green, 0 yellow, 1 red, 0 without samples"),
            "{overall}"
        );
        assert!(overall.contains("- Incidents: 2 opened, 1 resolved, 1 still open\n"));
        assert!(overall.contains("- Deployments: 1\n- Actions: 9\n"));
        let shop = section(&report, "App shop");
        assert!(shop.contains("- Status: red\n"), "{shop}");
        assert!(
            shop.contains("- Incidents: 2 opened, 1 resolved; MTTA 2m; MTTR 10m\n"),
            "{shop}"
        );
        assert!(shop.contains("  - incident 4 on api: critical expected status 200, got 503, started 2026-11-29 22:00:00, open\n"));
        assert!(shop.contains("- Deployments: v42 at 2026-11-29 04:50:00 by ci (new checkout)\n"));
        assert!(
            shop.contains("| web | http | green | 100.00 % (green) | 620 ms | - | - | - | - |\n"),
            "{shop}"
        );
        assert!(shop.contains("| api | http | red | 90.00 % (red) | 40 ms |"));
        assert!(shop.contains("| api-host | host | green | 100.00 % (green) | 40 ms | - | 60.0 % (peak 91.0 %) | 20.0 % (peak 65.0 %) | 41.0 % (peak 41.5 %) |\n"), "{shop}");
        let data = section(&report, "App data");
        assert!(
            data.contains(
                "- Incidents: 0 opened, 0 resolved; MTTA -; MTTR -\n- Deployments: none\n"
            ),
            "{data}"
        );
    }

    #[test]
    fn certificates_statements_heartbeats_and_logs() {
        let report = render(&facts());
        let certs = section(&report, "Certificates expiring within 30 days");
        assert!(certs.contains("| web-cert | 12.0 | yellow |\n"), "{certs}");
        let sql = section(&report, "Slowest database statements");
        assert!(
            sql.contains("| db | 2 ms (peak 9 ms) | 120 ms × 30 \"SELECT \\* FROM orders\" |\n"),
            "{sql}"
        );
        let beats = section(&report, "Backups and heartbeats");
        assert!(
            beats.contains("| nightly-backup | 2026-11-28 02:00:00 | overdue |\n"),
            "{beats}"
        );
        let logs = section(&report, "Logs");
        assert!(logs.contains("| app-log | 0.05 % (peak 0.50 %) | `Out of memory: Killed process 12 (app\\|x)` |\n"), "{logs}");
        let actions = section(&report, "Actions");
        assert!(
            actions.contains("- **red** api: uptime 90.00 % is below the red bound 95.00 %\n"),
            "{actions}"
        );
        assert_eq!(actions.lines().filter(|l| l.starts_with("- **")).count(), 9);
    }

    #[test]
    fn durations_under_ten_seconds_keep_their_tenths() {
        assert_eq!(millis(400), "0.4s");
        assert_eq!(millis(9_949), "9.9s");
        assert_eq!(millis(150_000), "2m 30s");
        assert_eq!(millis(-5), "0.0s");
    }

    #[test]
    fn a_quiet_day_says_so_in_every_section() {
        let mut f = facts();
        f.checks.retain(|c| c.name == "web");
        f.checks[0].p95_ms = Some(30.0);
        f.incidents.clear();
        f.deployments.clear();
        f.period = Period::of(f.period.date, at("2026-11-29T08:00:00Z")).unwrap();
        let report = render(&f);
        assert!(report.contains("Covers the 24 hours up to now (the day is not over): 2026-11-28 08:00:00 to 2026-11-29 08:00:00."));
        assert!(report.contains("**Operational**"));
        assert!(report.contains("None (0 certificates watched)."));
        assert!(report.contains("No postgres checks."));
        assert!(report.contains("No heartbeat checks."));
        assert!(report.contains("No log checks."));
        assert!(report.ends_with("## Actions\n\nNothing: every indicator is green.\n"));
    }
}
