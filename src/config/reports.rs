//! `[reports]` (DESIGN.md §9): when keeper sends its reports through the
//! routed channels. `health = "0 8 * * *"` sends the day's health report
//! (`crate::report::health`) at that time, in the config's `timezone` (UTC by
//! default). An unknown key or a bad
//! crontab is an error at its line and column.

use serde::Deserialize;

use crate::core::value::Crontab;

/// The reports keeper sends, and when.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reports {
    /// When the daily health report goes out; `None`: never.
    pub health: Option<Crontab>,
}

/// `[reports]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReports {
    health: Option<Crontab>,
}

impl RawReports {
    pub fn resolve(self) -> Reports {
        Reports {
            health: self.health,
        }
    }
}
