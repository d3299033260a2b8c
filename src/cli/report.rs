//! `keeper report …` (DESIGN.md §8): documents for people. `cost`: what each
//! Fly app keeper watches costs in a month and whether it is sized right
//! ([`crate::report::cost`]), as Markdown (or `--json`) on stdout; exit 1
//! when an app could not be read (the rest is still printed).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::probe;
use crate::report::cost::{self, Month};
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum Report {
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

pub async fn run(config: &Path, what: Report) -> anyhow::Result<ExitCode> {
    match what {
        Report::Cost { month, json } => cost(config, month, json).await,
    }
}

async fn cost(path: &Path, month: Option<Month>, json: bool) -> anyhow::Result<ExitCode> {
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
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
