//! The `tcp` probe: connect (timed), optionally send a string and expect one back.

use serde::Deserialize;

use super::{BuildError, Sample};
use crate::config::value::HostPort;

/// `[checks.NAME]` keys of kind `tcp`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub host: HostPort,
    pub send: Option<String>,
    pub expect: Option<String>,
}

impl Spec {
    pub fn target(&self) -> String {
        self.host.to_string()
    }

    pub fn build(&self) -> Result<Probe, BuildError> {
        todo!("helper")
    }
}

#[derive(Debug)]
pub struct Probe {}

impl Probe {
    pub async fn run(&self, deadline: tokio::time::Instant) -> Sample {
        let _ = deadline;
        todo!("helper")
    }
}
