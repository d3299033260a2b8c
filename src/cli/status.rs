//! `keeper status [--json]`: every check of a running keeper, like `flyctl
//! status`, in columns that fit the terminal. The exit code is a monitoring
//! plugin's: 0 green, 1 yellow, 2 red, 3 unknown — keeper unreachable or
//! answering an error, or a check not run yet (pending).

use std::fmt::Write;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::Exit;
use super::client::Api;
use super::term::{self, Paint};
use crate::core::Color;

/// The options of `keeper status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print keeper's JSON (`GET /api/v1/checks`) instead of the table.
    #[arg(long)]
    json: bool,
    /// keeper's URL (default: from the config's server.listen).
    #[arg(long)]
    url: Option<String>,
}

/// A check as `GET /api/v1/checks` shows it: what `status` prints.
#[derive(Debug, Deserialize)]
pub struct CheckRow {
    pub name: String,
    pub color: Color,
    #[serde(default)]
    pub message: String,
    pub last_run_at: Option<DateTime<Utc>>,
    pub latency_ms: Option<f64>,
    #[serde(default)]
    pub uptime_pct: UptimeRow<f64>,
    /// Each uptime colored by keeper's bands (absent from older keepers:
    /// then the uptime is not colored).
    #[serde(default)]
    pub uptime_color: UptimeRow<Color>,
}

/// A value per uptime window; `status` shows the last 24 hours.
#[derive(Debug, Deserialize)]
pub struct UptimeRow<T> {
    #[serde(rename = "24h")]
    pub h24: Option<T>,
}

impl<T> Default for UptimeRow<T> {
    fn default() -> Self {
        UptimeRow { h24: None }
    }
}

/// What a check shows: its color once it ran, pending before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    Pending,
    Ran(Color),
}

impl CheckRow {
    pub fn shown(&self) -> Shown {
        match self.last_run_at {
            None => Shown::Pending,
            Some(_) => Shown::Ran(self.color),
        }
    }
}

/// Runs `keeper status`: any failure is printed and exits [`Exit::Unknown`].
pub async fn run(config: &Path, args: Args) -> Exit {
    match fetch(config, args).await {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("keeper: {}", super::said_once(&e));
            Exit::Unknown
        }
    }
}

async fn fetch(config: &Path, args: Args) -> anyhow::Result<Exit> {
    let api = Api::new(config, args.url)?;
    let body = api.get_text("/api/v1/checks").await?;
    let checks: Vec<CheckRow> = serde_json::from_str(&body)
        .with_context(|| format!("reading keeper's answer from {}", api.base))?;
    if args.json {
        println!("{}", body.trim_end());
    } else {
        print!("{}", table(&checks, term::width(), Paint::for_stdout()));
    }
    Ok(exit_code(&checks))
}

/// The exit code for these checks: 2 when any is red, else 1 when any is
/// yellow, else 3 (unknown) when any has not run yet, else 0. A pending
/// check is not known to be green, so it does not pass as green; but a red
/// or yellow one is known bad whatever the pending ones turn out to be, so
/// those win. A keeper whose checks are all pending (just started) exits 3:
/// a script waiting for "all green" must not take "nothing known" for it.
pub fn exit_code(checks: &[CheckRow]) -> Exit {
    let shown: Vec<Shown> = checks.iter().map(CheckRow::shown).collect();
    if shown.contains(&Shown::Ran(Color::Red)) {
        Exit::Red
    } else if shown.contains(&Shown::Ran(Color::Yellow)) {
        Exit::Yellow
    } else if shown.contains(&Shown::Pending) {
        Exit::Unknown
    } else {
        Exit::Ok
    }
}

const STATE_W: usize = 7;
const LATENCY_W: usize = 8;
const UPTIME_W: usize = 7;
const NAME_MAX_W: usize = 24;

/// The table `status` prints: a header, a line per check fitting `width`
/// columns (the message is cut to fit), and a count by color.
pub fn table(checks: &[CheckRow], width: usize, paint: Paint) -> String {
    let mut out = String::new();
    if checks.is_empty() {
        out.push_str("no checks\n");
        return out;
    }
    let name_w = checks
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(5, NAME_MAX_W);
    let message_w = width
        .saturating_sub(name_w + STATE_W + LATENCY_W + UPTIME_W + 8)
        .max(10);
    let _ = writeln!(
        out,
        "{:name_w$}  {:STATE_W$}  {:>LATENCY_W$}  {:>UPTIME_W$}  MESSAGE",
        "CHECK", "STATE", "LATENCY", "UP 24H"
    );
    for c in checks {
        let (word, color) = match c.shown() {
            Shown::Pending => ("pending", term::DIM),
            Shown::Ran(color) => (color.as_str(), ansi(color)),
        };
        let latency = match (c.shown(), c.latency_ms) {
            (Shown::Ran(_), Some(ms)) => format!("{ms:.0} ms"),
            _ => "-".into(),
        };
        let uptime = c.uptime_pct.h24.map_or_else(|| "-".into(), percent);
        let band = c.uptime_color.h24.map_or(term::DIM, ansi);
        let message = match c.shown() {
            Shown::Pending if c.message.is_empty() => "not run yet",
            _ => &c.message,
        };
        let _ = writeln!(
            out,
            "{}  {}  {latency:>LATENCY_W$}  {}  {}",
            term::fit(&format!("{:name_w$}", c.name), name_w),
            paint.paint(&format!("{word:STATE_W$}"), color),
            paint.paint(&format!("{uptime:>UPTIME_W$}"), band),
            term::fit(message, message_w),
        );
    }
    out.push_str(&summary(checks));
    out
}

/// `4 checks: 2 green, 1 red, 1 pending`.
fn summary(checks: &[CheckRow]) -> String {
    let count = |s: Shown| checks.iter().filter(|c| c.shown() == s).count();
    let parts: Vec<String> = [
        ("green", count(Shown::Ran(Color::Green))),
        ("yellow", count(Shown::Ran(Color::Yellow))),
        ("red", count(Shown::Ran(Color::Red))),
        ("pending", count(Shown::Pending)),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(word, n)| format!("{n} {word}"))
    .collect();
    let noun = if checks.len() == 1 { "check" } else { "checks" };
    format!("{} {noun}: {}\n", checks.len(), parts.join(", "))
}

fn ansi(color: Color) -> &'static str {
    match color {
        Color::Green => term::GREEN,
        Color::Yellow => term::YELLOW,
        Color::Red => term::RED,
    }
}

/// `100%`, `99.95%`: two decimals below 100, so 99.995 % never reads 100.
fn percent(pct: f64) -> String {
    if pct >= 100.0 {
        "100%".into()
    } else {
        format!("{:.2}%", (pct * 100.0).floor() / 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, color: Color, ran: bool) -> CheckRow {
        CheckRow {
            name: name.into(),
            color,
            message: format!("{name} says {color}"),
            last_run_at: ran.then(Utc::now),
            latency_ms: ran.then_some(12.4),
            uptime_pct: UptimeRow {
                h24: ran.then_some(99.5),
            },
            uptime_color: UptimeRow {
                h24: ran.then_some(Color::Yellow),
            },
        }
    }

    #[test]
    fn the_worst_color_sets_the_exit_code_and_pending_is_unknown_not_green() {
        use Color::*;
        let code = |rows: &[(Color, bool)]| {
            let checks: Vec<CheckRow> = rows.iter().map(|&(c, ran)| row("x", c, ran)).collect();
            exit_code(&checks).code()
        };
        assert_eq!(code(&[]), 0);
        assert_eq!(code(&[(Green, true)]), 0);
        assert_eq!(code(&[(Green, true), (Yellow, true)]), 1);
        assert_eq!(code(&[(Red, true), (Yellow, true)]), 2);
        assert_eq!(code(&[(Green, false)]), 3, "pending only");
        assert_eq!(code(&[(Green, true), (Green, false)]), 3);
        assert_eq!(code(&[(Yellow, true), (Green, false)]), 1);
        assert_eq!(code(&[(Red, true), (Green, false)]), 2);
    }

    #[test]
    fn the_table_fits_80_columns_and_shows_pending() {
        let mut long = row("a-check-with-a-very-long-name-indeed", Color::Red, true);
        long.message = "x".repeat(200);
        let checks = vec![
            row("web", Color::Green, true),
            long,
            row("later", Color::Green, false),
        ];
        let out = table(&checks, 80, Paint(false));
        for line in out.lines() {
            assert!(line.chars().count() <= 80, "{line:?} is too wide");
        }
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("CHECK"), "{out}");
        assert!(lines[1].starts_with("web "), "{out}");
        assert!(lines[1].contains("green"), "{out}");
        assert!(lines[1].contains("12 ms"), "{out}");
        assert!(lines[1].contains("99.50%"), "{out}");
        assert!(
            lines[2].starts_with("a-check-with-a-very-lon…  red"),
            "{out}"
        );
        assert!(lines[2].ends_with('…'), "{out}");
        assert!(lines[3].starts_with("later  "), "{out}");
        assert_eq!(lines[3].split_whitespace().nth(1), Some("pending"), "{out}");
        assert_eq!(lines[4], "3 checks: 1 green, 1 red, 1 pending");
        assert!(!out.contains('\x1b'), "{out}");
    }

    #[test]
    fn painted_the_state_and_uptime_are_colored_and_still_aligned() {
        let checks = vec![row("web", Color::Red, true)];
        let out = table(&checks, 80, Paint(true));
        assert!(out.contains("\x1b[31mred    \x1b[0m"), "{out:?}");
        assert!(
            out.contains("\x1b[33m 99.50%\x1b[0m"),
            "keeper's band: {out:?}"
        );
    }

    #[test]
    fn uptime_never_rounds_up_to_100() {
        assert_eq!(percent(100.0), "100%");
        assert_eq!(percent(99.999), "99.99%");
        assert_eq!(percent(42.0), "42.00%");
    }
}
