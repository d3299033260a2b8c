//! Silences: for a while, notifications about matching checks are held back
//! (created by people through the API or the CLI, kept by the store, obeyed
//! by the notification policy).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// A silence: notifications for matching checks are held back until `ends_at`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Silence {
    pub id: i64,
    /// The check it silences; `None` with labels.
    pub check: Option<String>,
    /// Labels a check must all carry to be silenced.
    pub labels: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub comment: String,
    pub created_by: Option<String>,
}

/// A silence to create.
#[derive(Clone, Debug, PartialEq)]
pub struct NewSilence {
    pub check: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub comment: String,
    pub created_by: Option<String>,
}
