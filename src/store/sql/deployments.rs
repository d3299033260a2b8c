//! Deployments: recorded through the API, the CLI or the fly check; read by
//! the API, the engine (incidents that open after one) and reports.

use chrono::{DateTime, Utc};

use super::{Result, Row};
use crate::core::deployment::{Deployment, NewDeployment};
use crate::store::Store;

/// A deployment's columns, as [`deployment`] decodes them.
const COLUMNS: &str = "id, app, version, description, deployed_by, at";

impl Store {
    pub async fn record_deployment(&self, new: &NewDeployment) -> Result<Deployment> {
        let sql = format!(
            "INSERT INTO deployments (app, version, description, deployed_by, at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        );
        let row = self
            .query(sqlx::AssertSqlSafe(sql))
            .bind(&new.app)
            .bind(&new.version)
            .bind(&new.description)
            .bind(&new.by)
            .time(new.at)
            .one("recording a deployment")
            .await?;
        deployment(&row)
    }

    /// Deployment `id` (one another instance recorded).
    pub async fn deployment(&self, id: i64) -> Result<Option<Deployment>> {
        let sql = format!("SELECT {COLUMNS} FROM deployments WHERE id = $1");
        let row = self.query(sqlx::AssertSqlSafe(sql)).bind(id);
        row.row("reading a deployment")
            .await?
            .as_ref()
            .map(deployment)
            .transpose()
    }

    /// Deployments from `since` to `until` (both included), of `app` or of
    /// every app, newest first, at most `limit`.
    pub async fn deployments(
        &self,
        app: Option<&str>,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Deployment>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM deployments \
             WHERE ($1 IS NULL OR app = $1) AND at >= $2 AND at <= $3 \
             ORDER BY at DESC, id DESC LIMIT $4"
        );
        self.query(sqlx::AssertSqlSafe(sql))
            .bind(app)
            .time(since)
            .time(until)
            .bind(i64::from(limit))
            .all(deployment, "reading deployments")
            .await
    }
}

fn deployment(row: &Row) -> Result<Deployment> {
    Ok(Deployment {
        id: row.get("id")?,
        app: row.get("app")?,
        version: row.get("version")?,
        description: row.get("description")?,
        by: row.get("deployed_by")?,
        at: row.time("deployments.at")?,
    })
}
