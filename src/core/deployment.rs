//! A deployment of an app ([`Deployment`]): recorded through the API, the
//! CLI or by the `fly` check when a machine's image or release changes; read
//! by the engine (incidents that open soon after one say so) and by reports.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A deployment to record.
#[derive(Clone, Debug, PartialEq)]
pub struct NewDeployment {
    /// The app deployed: what checks name in their `app` label.
    pub app: String,
    /// The version deployed (a tag, a release number, an image digest).
    pub version: String,
    pub description: String,
    /// Who or what deployed it (`ci`, a person, `fly`).
    pub by: String,
    pub at: DateTime<Utc>,
}

/// A recorded deployment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Deployment {
    pub id: i64,
    pub app: String,
    pub version: String,
    pub description: String,
    pub by: String,
    pub at: DateTime<Utc>,
}
