//! `keeper report incident ID [--out DIR]`: fetches the incident report from
//! a running keeper (`GET /api/v1/incidents/{id}/report`) and writes it as
//! `INCIDENT_REPORT_YYYY-MM-DD-<id>.md` (the UTC day it started) into DIR.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::client::Api;
use crate::report::incident::file_name;

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
}

pub async fn incident(config: &Path, args: IncidentArgs) -> anyhow::Result<ExitCode> {
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
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}
