//! Silences: created and ended through the API, read by the notification policy.

use chrono::{DateTime, Utc};

use super::{Result, Row, decode_each};
use crate::incident::{NewSilence, Silence};
use crate::store::{Store, StoreError};

/// A silence's columns, as [`silence`] decodes them.
const COLUMNS: &str = "id, check_name, labels, starts_at, ends_at, comment, created_by";

impl Store {
    pub async fn create_silence(&self, new: &NewSilence) -> Result<Silence> {
        let labels = serde_json::to_string(&new.labels)
            .map_err(|e| StoreError::Corrupt(format!("encoding silence labels: {e}")))?;
        let sql = format!(
            "INSERT INTO silences (check_name, labels, starts_at, ends_at, comment, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        );
        let row = self
            .query(sqlx::AssertSqlSafe(sql))
            .bind(&new.check)
            .bind(labels)
            .time(new.starts_at)
            .time(new.ends_at)
            .bind(&new.comment)
            .bind(&new.created_by)
            .one("creating a silence")
            .await?;
        silence(&row)
    }

    /// Silences not yet ended at `now` (active or starting later), soonest end first.
    pub async fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>> {
        let sql = format!("SELECT {COLUMNS} FROM silences WHERE ends_at > $1 ORDER BY ends_at, id");
        let rows = self
            .query(sqlx::AssertSqlSafe(sql))
            .time(now)
            .rows("reading silences");
        Ok(decode_each("silences", "id", rows.await?, silence))
    }

    /// Ends a silence at `at` (if it ends later); `NotFound` if there is no such silence.
    pub async fn expire_silence(&self, id: i64, at: DateTime<Utc>) -> Result<Silence> {
        let sql = format!(
            "UPDATE silences SET ends_at = CASE WHEN ends_at > $2 THEN $2 ELSE ends_at END \
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        let expire = self.query(sqlx::AssertSqlSafe(sql)).bind(id).time(at);
        silence(
            &expire
                .row("ending a silence")
                .await?
                .ok_or(StoreError::NotFound(id))?,
        )
    }
}

fn silence(row: &Row) -> Result<Silence> {
    Ok(Silence {
        id: row.get("id")?,
        check: row.get("check_name")?,
        labels: row.text("silences.labels", |text| serde_json::from_str(text))?,
        starts_at: row.time("silences.starts_at")?,
        ends_at: row.time("silences.ends_at")?,
        comment: row.get("comment")?,
        created_by: row.get("created_by")?,
    })
}
