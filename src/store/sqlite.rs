//! The sqlite backend of the store.

use chrono::{DateTime, Utc};

use super::{
    Incident, IncidentChange, IncidentEvent, OutboxEntry, Outgoing, SampleRow, StoreError,
};

#[derive(Clone, Debug)]
pub struct SqliteStore {}

impl SqliteStore {
    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        let _ = url;
        todo!("helper")
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        todo!("helper")
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        todo!("helper")
    }

    pub async fn insert_samples(&self, rows: &[SampleRow]) -> Result<(), StoreError> {
        let _ = rows;
        todo!("helper")
    }

    pub async fn latest_samples(&self) -> Result<Vec<SampleRow>, StoreError> {
        todo!("helper")
    }

    pub async fn uptime_pct(
        &self,
        check: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<f64>, StoreError> {
        let _ = check;
        let _ = since;
        todo!("helper")
    }

    pub async fn record(
        &self,
        change: IncidentChange,
        outgoing: Vec<Outgoing>,
    ) -> Result<Incident, StoreError> {
        let _ = change;
        let _ = outgoing;
        todo!("helper")
    }

    pub async fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        todo!("helper")
    }

    pub async fn incident(&self, id: i64) -> Result<Incident, StoreError> {
        let _ = id;
        todo!("helper")
    }

    pub async fn incident_events(&self, id: i64) -> Result<Vec<IncidentEvent>, StoreError> {
        let _ = id;
        todo!("helper")
    }

    pub async fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let _ = now;
        let _ = limit;
        todo!("helper")
    }

    pub async fn notification_sent(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        let _ = id;
        let _ = at;
        todo!("helper")
    }

    pub async fn notification_retry(
        &self,
        id: i64,
        attempts: u32,
        next_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        let _ = id;
        let _ = attempts;
        let _ = next_at;
        let _ = error;
        todo!("helper")
    }

    pub async fn notification_failed(
        &self,
        id: i64,
        attempts: u32,
        error: &str,
    ) -> Result<(), StoreError> {
        let _ = id;
        let _ = attempts;
        let _ = error;
        todo!("helper")
    }
}
