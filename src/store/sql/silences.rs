//! Silences: created and ended through the API, read by the notification policy.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Doing, Row, decode_each};
use crate::incident::{NewSilence, Silence};
use crate::store::{Store, StoreError};

/// The columns [`silence`] decodes.
macro_rules! silence_columns {
    () => {
        "id, check_name, labels, starts_at, ends_at, comment, created_by"
    };
}

impl Store {
    pub async fn create_silence(&self, new: &NewSilence) -> Result<Silence, StoreError> {
        let labels = serde_json::to_string(&new.labels)
            .map_err(|e| StoreError::Corrupt(format!("encoding silence labels: {e}")))?;
        let sql = concat!(
            "INSERT INTO silences (check_name, labels, starts_at, ends_at, comment, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
            silence_columns!()
        );
        let row = self
            .query(sql)
            .bind(&new.check)
            .bind(labels)
            .time(new.starts_at)
            .time(new.ends_at)
            .bind(&new.comment)
            .bind(&new.created_by)
            .fetch_one()
            .await
            .doing("creating a silence")?;
        silence(&row)
    }

    /// Silences not yet ended at `now` (active or starting later), soonest end first.
    pub async fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError> {
        let sql = concat!(
            "SELECT ",
            silence_columns!(),
            " FROM silences WHERE ends_at > $1 ORDER BY ends_at, id"
        );
        let rows = self
            .query(sql)
            .time(now)
            .fetch_all()
            .await
            .doing("reading silences")?;
        Ok(decode_each("silences", rows, Row::id_key, silence))
    }

    /// Ends a silence at `at` (if it ends later); `NotFound` if there is no such silence.
    pub async fn expire_silence(&self, id: i64, at: DateTime<Utc>) -> Result<Silence, StoreError> {
        let sql = concat!(
            "UPDATE silences SET ends_at = CASE WHEN ends_at > $2 THEN $2 ELSE ends_at END \
             WHERE id = $1 RETURNING ",
            silence_columns!()
        );
        let row = self
            .query(sql)
            .bind(id)
            .time(at)
            .fetch_optional()
            .await
            .doing("ending a silence")?;
        silence(&row.ok_or(StoreError::NotFound(id))?)
    }
}

fn silence(row: &Row) -> Result<Silence, StoreError> {
    let labels: String = row.get("labels")?;
    let labels: BTreeMap<String, String> = serde_json::from_str(&labels)
        .map_err(|e| StoreError::Corrupt(format!("silences.labels: {e}")))?;
    Ok(Silence {
        id: row.get("id")?,
        check: row.get("check_name")?,
        labels,
        starts_at: row.time("silences.starts_at")?,
        ends_at: row.time("silences.ends_at")?,
        comment: row.get("comment")?,
        created_by: row.get("created_by")?,
    })
}
