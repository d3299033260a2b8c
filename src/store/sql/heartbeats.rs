//! Heartbeat checks' state, kept so a restart does not forget yesterday's ping.

use super::{Result, Row, decode_each};
use crate::core::heartbeat::HeartbeatRow;
use crate::store::Store;

/// `$c = the later of the stored and the given $c`, NULL older than any time
/// (what PostgreSQL's GREATEST does; SQLite has no GREATEST).
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
    pub async fn heartbeats(&self) -> Result<Vec<HeartbeatRow>> {
        let sql = "SELECT check_name, token, first_seen, last_success, last_start, last_fail, \
                   last_run_s FROM heartbeats";
        let rows = self.query(sql).rows("reading heartbeat states").await?;
        Ok(decode_each("heartbeats", "check_name", rows, heartbeat))
    }

    /// The stored state of heartbeat check `check`, if any (a ping another instance saved).
    pub async fn heartbeat_of(&self, check: &str) -> Result<Option<HeartbeatRow>> {
        let sql = "SELECT check_name, token, first_seen, last_success, last_start, last_fail, \
                   last_run_s FROM heartbeats WHERE check_name = $1";
        let row = self.query(sql).bind(check).row("reading a heartbeat state");
        row.await?.as_ref().map(heartbeat).transpose()
    }

    /// Stores a heartbeat's state in one upsert that never moves it backwards:
    /// each timestamp keeps the later of the stored and the given one (writes
    /// may land out of order, or come from several instances), `first_seen`
    /// the earlier, and a stored token is never replaced. Returns the token
    /// stored afterwards.
    pub async fn save_heartbeat(&self, row: &HeartbeatRow) -> Result<Option<String>> {
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
            .one("saving a heartbeat state")
            .await?;
        Ok(stored.get("token")?)
    }
}

fn heartbeat(row: &Row) -> Result<HeartbeatRow> {
    Ok(HeartbeatRow {
        check: row.get("check_name")?,
        token: row.get("token")?,
        first_seen: row.time("heartbeats.first_seen")?,
        last_success: row.time("heartbeats.last_success")?,
        last_start: row.time("heartbeats.last_start")?,
        last_fail: row.time("heartbeats.last_fail")?,
        last_run_s: row.get("last_run_s")?,
    })
}
