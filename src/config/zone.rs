//! `timezone = "Europe/Paris"`: the zone every crontab schedule of the file
//! is read in — checks' `schedule`, heartbeats' expected `schedule`,
//! `[[maintenance]]`, the low digest and `[reports]` — unless a schedule
//! names its own with `CRON_TZ=`. Default UTC. A schedule is read before the
//! zone is known, so the zone is given to each afterwards ([`apply`]).

use std::sync::Arc;

use toml::Spanned;

use super::error::Collector;
use super::{Config, Schedule};
use crate::core::value::parse_zone;
use crate::probe;

/// The top-level `timezone`, an IANA name; UTC when absent or wrong (the
/// error is reported at its line and column).
pub(super) fn read_timezone(raw: Option<Spanned<String>>, errors: &mut Collector) -> chrono_tz::Tz {
    let Some(raw) = raw else {
        return chrono_tz::UTC;
    };
    match parse_zone(raw.get_ref()) {
        Ok(zone) => zone,
        Err(message) => {
            errors.at(raw.span(), "timezone", message);
            chrono_tz::UTC
        }
    }
}

/// Gives `config.timezone` to every crontab in it that does not name its own.
pub(super) fn apply(config: &mut Config) {
    let zone = config.timezone;
    // Each check's config is still only the config's own (`make_mut` copies nothing).
    let checks = config.checks.iter_mut().map(Arc::make_mut);
    for check in checks.chain(config.disabled.iter_mut()) {
        if let Schedule::Cron(cron) = &mut check.schedule {
            cron.in_zone(zone);
        }
        if let probe::Spec::Heartbeat(heartbeat) = &mut check.probe
            && let Some(expected) = &mut heartbeat.schedule
        {
            expected.get_mut().in_zone(zone);
        }
    }
    for window in &mut config.maintenance {
        window.schedule.in_zone(zone);
    }
    if let Some(digest) = &mut config.severities.low_digest {
        digest.in_zone(zone);
    }
    if let Some(health) = &mut config.reports.health {
        health.in_zone(zone);
    }
}
