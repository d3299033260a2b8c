//! The words every other part of keeper speaks, and nothing else: check
//! names, [`Color`], [`Severity`], [`Metric`], [`Sample`] and its
//! [`Outcome`], typed config values and the [`SpecProblem`]s found in them,
//! the [`Notification`] and its outbox rows, which checks this instance owns, deployments, keeper's own health, uptime bands and latency
//! percentiles, and the text and secret rules. This is the leaf of the module graph: it imports
//! no other part of keeper (see docs/development.md's Layout and `tests/it/layers.rs`).

pub mod color;
pub mod deployment;
pub mod health;
pub mod heartbeat;
pub mod metric;
pub mod notification;
pub mod ownership;
pub mod percentile;
pub mod problem;
pub mod redact;
pub mod sample;
pub mod text;
pub mod value;

pub use color::{Color, Severity, uptime_color};
pub use metric::{Direction, Metric};
pub use notification::{EventKind, Notification, OutboxEntry, Outgoing};
pub use problem::SpecProblem;
pub use sample::{CertInfo, HttpInfo, Outcome, Phases, Sample, metrics_json};

/// A check's name as configured: cheap to clone, shared by every part that
/// speaks of the check.
pub type CheckName = std::sync::Arc<str>;
