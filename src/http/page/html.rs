//! The status page as HTML: one self-contained document (inline CSS and SVG,
//! no scripts, no external assets), light and dark, narrow and wide. It
//! reloads itself every minute.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::{Day, Group, Hold, Overall, Page, Row, percent};
use crate::core::Color;
use crate::core::color::uptime_color;
use crate::core::text::escape_html as esc;

/// Seconds between the page's reloads.
const REFRESH_S: u32 = 60;

const STYLE: &str = r#"
:root{--bg:#f6f7f9;--card:#fff;--text:#1b1f24;--muted:#5b6470;--line:#e3e6ea;
--green:#2da44e;--yellow:#d4a72c;--red:#cf222e;--none:#c9ced6}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--card:#161b22;--text:#e6edf3;
--muted:#8d96a0;--line:#30363d;--none:#3a414a}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:980px;margin:0 auto;padding:16px}
h1{font-size:1.5rem;margin:8px 0 16px}
h2{font-size:1.1rem;margin:24px 0 8px}
.banner{padding:14px 18px;border-radius:8px;color:#fff;font-weight:600;font-size:1.1rem}
.banner.operational{background:var(--green)}.banner.degraded{background:var(--yellow)}.banner.outage{background:var(--red)}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;margin:10px 0;padding:4px 14px}
.check{padding:10px 0;border-top:1px solid var(--line)}
.check:first-of-type{border-top:0}
.head{display:flex;flex-wrap:wrap;align-items:center;gap:6px 12px}
.name{font-weight:600}
.dot{width:10px;height:10px;border-radius:50%;display:inline-block;flex:none}
.green{background:var(--green)}.yellow{background:var(--yellow)}.red{background:var(--red)}.pending,.none{background:var(--none)}
.muted,.message,.target{color:var(--muted);font-size:.9rem}
.message{flex-basis:100%;overflow-wrap:anywhere}
.up{margin-left:auto;font-variant-numeric:tabular-nums}
.up.green,.up.yellow,.up.red{background:none}.up.green{color:var(--green)}.up.yellow{color:var(--yellow)}.up.red{color:var(--red)}
.bar{display:flex;gap:1px;height:26px;margin-top:6px}
.day{flex:1;min-width:1px;border-radius:1px}
.legend{display:flex;justify-content:space-between;font-size:.75rem;color:var(--muted)}
.spark{display:block;margin-top:4px;color:var(--muted)}
.incident{border-left:4px solid var(--red);padding:8px 12px;background:var(--card)}
.incident.yellow{border-left-color:var(--yellow)}
.timeline{list-style:none;padding:0;margin:6px 0 0;font-size:.9rem}
.timeline li{padding:2px 0}
time{font-variant-numeric:tabular-nums;color:var(--muted)}
footer{margin:24px 0;color:var(--muted);font-size:.8rem}
@media (max-width:600px){main{padding:8px}.bar{height:20px}}
"#;

/// The whole document.
pub fn render(page: &Page) -> String {
    let mut out = String::with_capacity(16 * 1024 + page.groups.len() * 8 * 1024);
    let title = esc(&page.title);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_S}\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{title}</title><style>{STYLE}</style></head><body><main>\
         <h1>{title}</h1>"
    );
    banner(&mut out, page.overall);
    incidents(&mut out, page);
    holds(&mut out, "Maintenance", &page.maintenance);
    holds(&mut out, "Silenced", &page.silences);
    for group in &page.groups {
        self::group(&mut out, group);
    }
    let _ = writeln!(
        out,
        "<footer>Updated {} · refreshes every {REFRESH_S} s · keeper {}</footer></main></body></html>",
        stamp(page.at),
        env!("CARGO_PKG_VERSION")
    );
    out
}

fn banner(out: &mut String, overall: Overall) {
    let (class, text) = match overall {
        Overall::Operational => ("operational", "All systems operational"),
        Overall::Degraded => ("degraded", "Degraded performance"),
        Overall::Outage => ("outage", "Outage"),
    };
    let _ = write!(
        out,
        "<div class=\"banner {class}\" id=\"banner\">{text}</div>"
    );
}

fn incidents(out: &mut String, page: &Page) {
    if page.incidents.is_empty() {
        return;
    }
    out.push_str("<h2>Open incidents</h2>");
    for incident in &page.incidents {
        let acked = incident.acknowledged_at.is_some();
        let _ = write!(
            out,
            "<div class=\"card incident {}\" data-incident=\"{}\"><div class=\"head\">\
             <span class=\"name\">{}</span><span class=\"muted\">{} · since {}{}</span></div>\
             <div class=\"message\">{}</div><ul class=\"timeline\">",
            incident.color.as_str(),
            incident.id,
            esc(&incident.check),
            incident.severity.as_str(),
            stamp(incident.started_at),
            if acked { " · acknowledged" } else { "" },
            esc(&incident.message),
        );
        for event in &incident.events {
            let _ = write!(
                out,
                "<li><time>{}</time> {} — {}</li>",
                stamp(event.at),
                esc(&event.kind),
                esc(&event.detail)
            );
        }
        out.push_str("</ul></div>");
    }
}

fn holds(out: &mut String, heading: &str, holds: &[Hold]) {
    if holds.is_empty() {
        return;
    }
    let _ = write!(out, "<h2>{heading}</h2><div class=\"card\">");
    for hold in holds {
        let comment = if hold.comment.is_empty() {
            String::new()
        } else {
            format!(" — {}", esc(&hold.comment))
        };
        let _ = write!(
            out,
            "<div class=\"check hold\">{} until {}{comment}</div>",
            esc(&hold.what),
            stamp(hold.until)
        );
    }
    out.push_str("</div>");
}

fn group(out: &mut String, group: &Group) {
    let name = if group.name.is_empty() {
        "Other checks"
    } else {
        &group.name
    };
    let _ = write!(out, "<h2>{}</h2><div class=\"card group\">", esc(name));
    for row in &group.rows {
        self::row(out, row);
    }
    out.push_str("</div>");
}

fn row(out: &mut String, row: &Row) {
    let class = row.color.map_or("pending", Color::as_str);
    let _ = write!(
        out,
        "<div class=\"check\" data-check=\"{name}\" data-color=\"{class}\"><div class=\"head\">\
         <span class=\"dot {class}\" title=\"{class}\"></span><span class=\"name\">{name}</span>",
        name = esc(&row.name),
    );
    if let Some(description) = &row.description {
        let _ = write!(out, "<span class=\"muted\">{}</span>", esc(description));
    }
    if let Some(target) = &row.target {
        let _ = write!(out, "<span class=\"target\">{}</span>", esc(target));
    }
    match row.uptime_30d {
        Some(pct) => {
            let band = uptime_color(pct).as_str();
            let _ = write!(
                out,
                "<span class=\"up {band}\">{} % (30 d)</span>",
                percent(pct)
            );
        }
        None => out.push_str("<span class=\"up muted\">no data</span>"),
    }
    let message = if row.color.is_none() {
        "pending: not run yet"
    } else {
        &row.message
    };
    let _ = write!(out, "<div class=\"message\">{}", esc(message));
    // Passive kinds (heartbeats, logs) measure no latency: 0.
    if let Some(ms) = row.latency_ms.filter(|ms| *ms > 0.0) {
        let _ = write!(out, " · {ms:.0} ms");
    }
    out.push_str("</div></div>");
    bar(out, &row.days);
    sparkline(out, &row.latency);
    out.push_str("</div>");
}

/// One cell a day, colored by that day's uptime, with a tooltip.
fn bar(out: &mut String, days: &[Day]) {
    out.push_str("<div class=\"bar\">");
    for day in days {
        let (class, text) = match day.uptime_pct {
            Some(pct) => (uptime_color(pct).as_str(), format!("{} %", percent(pct))),
            None => ("none", "no data".to_string()),
        };
        let _ = write!(
            out,
            "<span class=\"day {class}\" title=\"{}: {text}\"></span>",
            day.date
        );
    }
    let _ = write!(
        out,
        "</div><div class=\"legend\"><span>{} days ago</span><span>today</span></div>",
        days.len()
    );
}

/// The p95 latency of each hour as an inline SVG line; hours without
/// samples break it.
fn sparkline(out: &mut String, hours: &[Option<f64>]) {
    const W: f64 = 240.0;
    const H: f64 = 28.0;
    let max = hours.iter().flatten().copied().fold(0.0_f64, f64::max);
    let _ = write!(
        out,
        "<svg class=\"spark\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" \
         aria-label=\"p95 latency over the last 24 hours\"><title>p95 latency, last 24 h: peak {max:.0} ms</title>"
    );
    let step = W / (hours.len().max(2) - 1) as f64;
    let mut line = String::new();
    let flush = |line: &mut String, out: &mut String| {
        if !line.is_empty() {
            let _ = write!(
                out,
                "<polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\" points=\"{}\"/>",
                line.trim_end()
            );
            line.clear();
        }
    };
    for (i, hour) in hours.iter().enumerate() {
        match hour {
            Some(ms) => {
                let y = if max > 0.0 {
                    H - 2.0 - (H - 4.0) * ms / max
                } else {
                    H - 2.0
                };
                let _ = write!(line, "{:.1},{:.1} ", i as f64 * step, y);
            }
            None => flush(&mut line, out),
        }
    }
    flush(&mut line, out);
    out.push_str("</svg>");
}

fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::page::Group;

    fn row(name: &str, color: Option<Color>, message: &str) -> Row {
        let start = chrono::NaiveDate::from_ymd_opt(2026, 9, 1).unwrap();
        Row {
            name: name.into(),
            description: None,
            target: None,
            color,
            message: message.into(),
            latency_ms: Some(12.0),
            uptime_30d: Some(99.5),
            days: (0..90)
                .map(|d| Day {
                    date: start + chrono::Days::new(d),
                    uptime_pct: (d % 10 != 0).then_some(100.0 - d as f64 / 10.0),
                })
                .collect(),
            latency: (0..24).map(|h| (h != 5).then_some(h as f64)).collect(),
        }
    }

    #[test]
    fn text_from_checks_is_escaped_and_pending_is_not_green() {
        let page = Page {
            title: "<Acme> & co".into(),
            at: Utc::now(),
            overall: Overall::Degraded,
            groups: vec![Group {
                name: "web".into(),
                rows: vec![
                    row("api<1>", Some(Color::Yellow), "<script>alert(1)</script>"),
                    row("new", None, "ignored"),
                ],
            }],
            incidents: vec![],
            maintenance: vec![],
            silences: vec![],
        };
        let html = render(&page);
        assert!(
            html.contains("<title>&lt;Acme&gt; &amp; co</title>"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("data-check=\"api&lt;1&gt;\" data-color=\"yellow\""));
        assert!(html.contains("data-check=\"new\" data-color=\"pending\""));
        assert!(html.contains("pending: not run yet"));
        assert!(html.contains("Degraded performance"));
        // 90 cells a bar; the sparkline broken where an hour has no samples.
        assert_eq!(html.matches("class=\"day ").count(), 180);
        assert_eq!(html.matches("<polyline").count(), 4);
        assert!(html.contains("title=\"2026-09-01: no data\""));
        assert!(html.contains("title=\"2026-09-02: 99.90 %\""));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external assets"
        );
    }
}
