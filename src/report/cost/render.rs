//! The cost report as Markdown: the prices and assumptions, a table of
//! machines and one of volumes per app with its estimate and its
//! right-sizing line, then a table of the apps with the total.

use std::fmt::Write;

use super::{AppCost, CostReport, Sizing, Suggestion, Use, Verdict};

/// `$12.34`, `-$2.58`.
fn usd(v: f64) -> String {
    let v = v + 0.0; // no `-0.00`
    if v < 0.0 {
        format!("-${:.2}", -v)
    } else {
        format!("${v:.2}")
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// The whole report.
pub fn markdown(r: &CostReport) -> String {
    let mut out = String::new();
    let p = &r.prices;
    let _ = writeln!(
        out,
        "# Fly.io cost, {} ({} days)\n",
        r.month,
        number(r.days)
    );
    let _ = writeln!(
        out,
        "Prices (USD per 30 days, billed per second): shared vCPU {}, performance vCPU {}, \
         RAM {} per GB, volumes {} per GB.",
        usd(p.shared_cpu_month),
        usd(p.performance_cpu_month),
        usd(p.memory_gb_month),
        usd(p.volume_gb_month)
    );
    let stopped = if p.stopped_rootfs_gb > 0.0 {
        format!(
            "only its root file system ({} GB assumed, at the volume price)",
            number(p.stopped_rootfs_gb)
        )
    } else {
        "nothing here: Fly bills its used root file system, which the Machines API does not \
         report (set `cost.stopped_rootfs_gb` to count it)"
            .to_string()
    };
    let _ = writeln!(
        out,
        "Estimate: the machines and volumes there are now, each in its current state for the \
         whole month; a stopped machine costs {stopped}.\n"
    );
    for app in &r.apps {
        app_section(&mut out, app);
    }
    let _ = writeln!(out, "## Total\n");
    let _ = writeln!(out, "| App | Machines | Volumes | Estimate |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for app in &r.apps {
        let estimate = match app.error {
            Some(_) => "unknown".to_string(),
            None => usd(app.total_usd),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {estimate} |",
            app.app,
            app.machines.len(),
            app.volumes.len()
        );
    }
    let machines: usize = r.apps.iter().map(|a| a.machines.len()).sum();
    let volumes: usize = r.apps.iter().map(|a| a.volumes.len()).sum();
    let _ = writeln!(
        out,
        "| **Total** | {machines} | {volumes} | **{}** |",
        usd(r.total_usd)
    );
    if r.apps.is_empty() {
        let _ = writeln!(out, "\nNo `fly` checks in the config: no apps to cost.");
    }
    out
}

fn app_section(out: &mut String, app: &AppCost) {
    let _ = writeln!(out, "## {} (check `{}`)\n", app.app, app.check);
    if let Some(error) = &app.error {
        let _ = writeln!(out, "Could not read the app: {error}\n");
        return;
    }
    if app.machines.is_empty() {
        let _ = writeln!(out, "No machines.\n");
    } else {
        let _ = writeln!(out, "| Machine | Region | State | Size | Billed | Month |");
        let _ = writeln!(out, "|---|---|---|---|---|---:|");
        for m in &app.machines {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                m.id,
                m.region,
                m.state,
                m.size,
                m.billed,
                usd(m.usd)
            );
        }
        out.push('\n');
    }
    if !app.volumes.is_empty() {
        let _ = writeln!(out, "| Volume | Name | Region | Size | Month |");
        let _ = writeln!(out, "|---|---|---|---:|---:|");
        for v in &app.volumes {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} GB | {} |",
                v.id,
                v.name,
                v.region,
                number(v.size_gb),
                usd(v.usd)
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "Estimate for the month: **{}**\n", usd(app.total_usd));
    let _ = writeln!(out, "Right-sizing: {}\n", sizing_line(&app.sizing));
}

fn usage(name: &str, u: Option<Use>) -> String {
    match u {
        Some(u) => format!(
            "{name} average {:.1} %, peak {:.1} %",
            u.average_pct, u.peak_pct
        ),
        None => format!("{name} not measured"),
    }
}

fn suggestion(s: &Suggestion) -> String {
    match (s.to, s.change_usd) {
        (Some(to), Some(change)) => {
            format!("{} → {to} ({} per machine)", s.from, usd(change))
        }
        _ => format!("{} is already the end of Fly's range", s.from),
    }
}

/// `down: memory average 12.0 %, peak 24.9 %; CPU not measured (prometheus
/// check "mem"); shared-cpu-1x 1GB → shared-cpu-1x 512MB (-$2.58 per machine)`.
pub fn sizing_line(s: &Sizing) -> String {
    match s {
        Sizing::NoUsageData => {
            "no usage data (no prometheus check of memory_pct or cpu_pct, or host check, \
             labelled with this app)"
                .into()
        }
        Sizing::NoSamples { sources } => {
            format!(
                "no usage data (nothing measured this month by {})",
                sources.join(", ")
            )
        }
        Sizing::Unavailable { reason } => format!("no usage data ({reason})"),
        Sizing::Measured {
            sources,
            memory,
            cpu,
            verdict,
            suggestions,
        } => {
            let word = match verdict {
                Verdict::Down => "**down**",
                Verdict::Up => "**up**",
                Verdict::SizedRight => "sized right",
            };
            let mut line = format!(
                "{word}: {}; {} ({})",
                usage("memory", *memory),
                usage("CPU", *cpu),
                sources.join(", ")
            );
            let said: Vec<String> = suggestions.iter().map(suggestion).collect();
            if !said.is_empty() {
                line.push_str("; ");
                line.push_str(&said.join("; "));
            }
            line
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_with_two_decimals_and_a_sign() {
        assert_eq!(usd(2.5), "$2.50");
        assert_eq!(usd(-2.583), "-$2.58");
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(usd(-0.0), "$0.00");
        assert_eq!(number(30.0), "30");
        assert_eq!(number(1.5), "1.5");
    }
}
