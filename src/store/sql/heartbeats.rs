//! Heartbeat checks' state, kept so a restart does not forget yesterday's ping.

use super::{Doing, Row, decode_each};
use crate::store::{HeartbeatRow, Store, StoreError};

/// `column = the later of the stored and the given value`, NULL counting as
/// older than any time (GREATEST on PostgreSQL; SQLite has none).
macro_rules! later {
    ($c:literal) => {
        concat!(
            $c,
            " = CASE WHEN excluded.",
            $c,
            " IS NULL OR heartbeats.",
            $c,
            " >= excluded.",
            $c,
            " THEN heartbeats.",
            $c,
            " ELSE excluded.",
            $c,
            " END"
        )
    };
}

impl Store {
    /// Every stored heartbeat state (to restore them at start).
    pub async fn heartbeats(&self) -> Result<Vec<HeartbeatRow>, StoreError> {
        let rows = self
            .query(
                "SELECT check_name, token, first_seen, last_success, last_start, last_fail, \
                 last_run_s FROM heartbeats",
            )
            .fetch_all()
            .await
            .doing("reading heartbeat states")?;
        Ok(decode_each("heartbeats", rows, Row::check_key, heartbeat))
    }

    /// Stores a heartbeat's state in one upsert that never moves it backwards:
    /// each timestamp keeps the later of the stored and the given one (writes
    /// may land out of order, or come from several instances), `first_seen`
    /// the earlier, and a stored token is never replaced. Returns the token
    /// stored afterwards.
    pub async fn save_heartbeat(&self, row: &HeartbeatRow) -> Result<Option<String>, StoreError> {
        let sql = concat!(
            "INSERT INTO heartbeats \
             (check_name, token, first_seen, last_success, last_start, last_fail, last_run_s) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (check_name) DO UPDATE SET \
             token = COALESCE(heartbeats.token, excluded.token), \
             first_seen = CASE WHEN excluded.first_seen < heartbeats.first_seen \
                 THEN excluded.first_seen ELSE heartbeats.first_seen END, \
             last_run_s = CASE WHEN excluded.last_success >= \
                 COALESCE(heartbeats.last_success, excluded.last_success) \
                 THEN excluded.last_run_s ELSE heartbeats.last_run_s END, ",
            later!("last_success"),
            ", ",
            later!("last_start"),
            ", ",
            later!("last_fail"),
            " RETURNING token"
        );
        let stored = self
            .query(sql)
            .bind(&row.check)
            .bind(&row.token)
            .time(row.first_seen)
            .time(row.last_success)
            .time(row.last_start)
            .time(row.last_fail)
            .bind(row.last_run_s)
            .fetch_one()
            .await
            .doing("saving a heartbeat state")?;
        Ok(stored.get("token")?)
    }
}

fn heartbeat(row: &Row) -> Result<HeartbeatRow, StoreError> {
    Ok(HeartbeatRow {
        check: row.get("check_name")?,
        token: row.get("token")?,
        first_seen: row.time("heartbeats.first_seen")?,
        last_success: row.opt_time("heartbeats.last_success")?,
        last_start: row.opt_time("heartbeats.last_start")?,
        last_fail: row.opt_time("heartbeats.last_fail")?,
        last_run_s: row.get("last_run_s")?,
    })
}
