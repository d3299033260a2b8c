//! `keeper report …` (DESIGN.md §8): documents for people.
//! - `incident ID [--out DIR]`: fetches the incident report from a running
//!   keeper (`GET /api/v1/incidents/{id}/report`) and writes it as
//!   `INCIDENT_REPORT_YYYY-MM-DD-<id>.md` (the UTC day it started) into DIR.
//! - `health [--date D] [--out DIR]`: reads keeper's database directly
//!   (read-only, so it works while the daemon is down) and writes
//!   `HEALTH_REPORT_YYYY-MM-DD.md` ([`crate::report::health`]) into DIR.
//! - `cost`: what each Fly app keeper watches costs in a month and whether it
//!   is sized right ([`crate::report::cost`]), as Markdown (or `--json`) on
//!   stdout; exit 1 when an app could not be read (the rest is still printed).

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Subcommand;

use super::Exit;
use super::client::Api;
use crate::probe;
use crate::report::cost::{self, Month};
use crate::report::health;
use crate::report::incident::file_name;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum Report {
    /// HEALTH_REPORT_YYYY-MM-DD.md: overall status, each app's checks,
    /// certificates, database statements, heartbeats, logs and actions.
    Health(HealthArgs),
    /// INCIDENT_REPORT_YYYY-MM-DD-<id>.md: summary, impact, timeline,
    /// samples, deployments before it, MTTA/MTTR.
    Incident(IncidentArgs),
    /// Per Fly app: machines × size × price, volumes, the month's estimate
    /// and a right-sizing hint from the app's prometheus or host checks.
    Cost {
        /// The month, UTC (default: the current one).
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        month: Option<Month>,
        /// JSON instead of Markdown.
        #[arg(long)]
        json: bool,
    },
}

fn parse_month(s: &str) -> Result<Month, String> {
    s.parse()
}

pub async fn run(config: &Path, what: Report) -> anyhow::Result<Exit> {
    match what {
        Report::Health(args) => health(config, args).await,
        Report::Incident(args) => incident(config, args).await,
        Report::Cost { month, json } => cost(config, month, json).await,
    }
}

async fn cost(path: &Path, month: Option<Month>, json: bool) -> anyhow::Result<Exit> {
    let config = super::load(path)?;
    let now = chrono::Utc::now();
    let month = month.unwrap_or_else(|| Month::containing(now));
    let client =
        tokio::task::spawn_blocking(|| probe::api::client(&probe::tlsconf::Roots::system()))
            .await
            .context("loading the system's CA certificates")?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Only `host` checks' usage is read from keeper's database.
    let host_checks = config
        .checks
        .iter()
        .any(|c| matches!(c.probe, probe::Spec::Host(_)));
    let store = match host_checks {
        false => None,
        true => match Store::connect(&config.storage.url).await {
            Ok(store) => Some(store.reader()),
            Err(e) => {
                eprintln!("keeper: host checks' samples not read: {e}");
                None
            }
        },
    };
    let report = cost::report(&config, month, now, &client, store.as_ref()).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", cost::markdown(&report));
    }
    Ok(if report.has_errors() {
        Exit::Failed
    } else {
        Exit::Ok
    })
}

/// The options of `keeper report incident`.
#[derive(Debug, clap::Args)]
pub struct IncidentArgs {
    /// The incident's id.
    id: i64,
    /// The directory to write the report into (created if missing).
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// keeper's URL (default: from the config's server.listen).
    #[arg(long)]
    url: Option<String>,
    /// Print `{"incident", "started_at", "path"}` instead of the path.
    #[arg(long)]
    json: bool,
}

pub async fn incident(config: &Path, args: IncidentArgs) -> anyhow::Result<Exit> {
    let api = Api::new(config, args.url)?;
    let id = args.id;
    let view: serde_json::Value =
        serde_json::from_str(&api.get_text(&format!("/api/v1/incidents/{id}")).await?)
            .context("reading keeper's answer")?;
    let started_at: DateTime<Utc> = view["started_at"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("incident {id} as keeper shows it has no started_at: {view}"))?;
    let markdown = api
        .get_text(&format!("/api/v1/incidents/{id}/report"))
        .await?;
    tokio::fs::create_dir_all(&args.out)
        .await
        .with_context(|| format!("creating {}", args.out.display()))?;
    let path = args.out.join(file_name(id, started_at));
    tokio::fs::write(&path, markdown)
        .await
        .with_context(|| format!("writing {}", path.display()))?;
    if args.json {
        let written = serde_json::json!({
            "incident": id,
            "started_at": started_at,
            "path": path,
        });
        println!("{written}");
    } else {
        println!("{}", path.display());
    }
    Ok(Exit::Ok)
}

/// The options of `keeper report health`.
#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// The UTC day (default: today, the 24 hours up to now).
    #[arg(long, value_name = "YYYY-MM-DD")]
    date: Option<chrono::NaiveDate>,
    /// The directory to write the report into (created if missing).
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

pub async fn health(path: &Path, args: HealthArgs) -> anyhow::Result<Exit> {
    let config = super::load(path)?;
    let now = Utc::now();
    let date = args.date.unwrap_or_else(|| now.date_naive());
    let period =
        health::Period::of(date, now).with_context(|| format!("{date} has not begun yet (UTC)"))?;
    let url = &config.storage.url;
    let shown = crate::core::redact::dsn(url);
    if let Some(file) = sqlite_file(url)
        && !file.exists()
    {
        anyhow::bail!(
            "no keeper database at {} (storage.url {shown})",
            file.display()
        );
    }
    let store = Store::connect(url)
        .await
        .with_context(|| format!("opening keeper's database {shown}"))?
        .reader();
    let facts = health::gather(&store, &config.checks, period, now)
        .await
        .with_context(|| format!("reading keeper's database {shown}"))?;
    tokio::fs::create_dir_all(&args.out)
        .await
        .with_context(|| format!("creating {}", args.out.display()))?;
    let path = args.out.join(health::file_name(date));
    tokio::fs::write(&path, health::render(&facts))
        .await
        .with_context(|| format!("writing {}", path.display()))?;
    println!("{}", path.display());
    Ok(Exit::Ok)
}

/// The file a `sqlite:` URL names; `None` for memory databases and other backends.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:" && !url.contains("mode=memory"))
        .then(|| PathBuf::from(path))
}
