//! `[cost]`: the price table `keeper report cost` multiplies machine sizes
//! and volumes by, and the usage bands of its right-sizing hints. Every key
//! is optional; an unknown key, a negative price or bands the wrong way
//! round are errors at their line and column.
//!
//! The default prices are Fly.io's published list prices (USD, "per month"
//! meaning per 30 days = 2,592,000 s, billed per second), as shown on
//! fly.io/docs/about/pricing and in Fly's VM price list (fly.io/blog,
//! "New VMs: more RAM, extra CPU, and a dollar menu"), read in November 2026:
//! shared-cpu-1x 256MB $1.94/mo, 1GB $5.70, 2GB $10.70; performance-1x 2GB
//! $31.00, performance-2x 4GB $62.00; additional RAM $5/GB; volumes and the
//! root file system of stopped machines $0.15/GB. Those presets are a price
//! per vCPU plus $5 per GB of RAM: a shared vCPU $0.69, a performance vCPU
//! $21.00. Fly prices some regions higher (e.g. `sjc`): override to match.

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::error::Collector;

/// The price table and right-sizing bands, defaults filled in.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cost {
    /// USD per shared vCPU per 30 days.
    pub shared_cpu_month: f64,
    /// USD per performance (dedicated) vCPU per 30 days.
    pub performance_cpu_month: f64,
    /// USD per GB of RAM per 30 days (either CPU kind).
    pub memory_gb_month: f64,
    /// USD per provisioned GB of volume per 30 days (also the rootfs of a
    /// stopped machine).
    pub volume_gb_month: f64,
    /// GB of root file system a stopped machine is assumed to keep. Fly
    /// bills the *used* rootfs of a stopped machine, which the Machines API
    /// does not report: 0 (the default) leaves it out of the estimate.
    pub stopped_rootfs_gb: f64,
    /// Use under this (percent) suggests the next size down.
    pub scale_down_below_pct: f64,
    /// Use over this (percent) suggests the next size up.
    pub scale_up_above_pct: f64,
}

impl Default for Cost {
    fn default() -> Cost {
        Cost {
            shared_cpu_month: 0.69,
            performance_cpu_month: 21.00,
            memory_gb_month: 5.00,
            volume_gb_month: 0.15,
            stopped_rootfs_gb: 0.0,
            scale_down_below_pct: 30.0,
            scale_up_above_pct: 80.0,
        }
    }
}

/// `[cost]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCost {
    shared_cpu_month: Option<Spanned<f64>>,
    performance_cpu_month: Option<Spanned<f64>>,
    memory_gb_month: Option<Spanned<f64>>,
    volume_gb_month: Option<Spanned<f64>>,
    stopped_rootfs_gb: Option<Spanned<f64>>,
    scale_down_below_pct: Option<Spanned<f64>>,
    scale_up_above_pct: Option<Spanned<f64>>,
}

impl RawCost {
    /// The table with defaults for what is not written; problems go to `errors`.
    pub fn resolve(self, errors: &mut Collector) -> Cost {
        let d = Cost::default();
        let mut amount = |value: Option<Spanned<f64>>, key: &str, default: f64| {
            let Some(value) = value else {
                return default;
            };
            let v = *value.get_ref();
            if !v.is_finite() || v < 0.0 {
                errors.at(
                    value.span(),
                    &format!("cost.{key}"),
                    format!("must be a number 0 or above (got {v})"),
                );
                return default;
            }
            v
        };
        let mut cost = Cost {
            shared_cpu_month: amount(
                self.shared_cpu_month,
                "shared_cpu_month",
                d.shared_cpu_month,
            ),
            performance_cpu_month: amount(
                self.performance_cpu_month,
                "performance_cpu_month",
                d.performance_cpu_month,
            ),
            memory_gb_month: amount(self.memory_gb_month, "memory_gb_month", d.memory_gb_month),
            volume_gb_month: amount(self.volume_gb_month, "volume_gb_month", d.volume_gb_month),
            stopped_rootfs_gb: amount(
                self.stopped_rootfs_gb,
                "stopped_rootfs_gb",
                d.stopped_rootfs_gb,
            ),
            scale_down_below_pct: d.scale_down_below_pct,
            scale_up_above_pct: d.scale_up_above_pct,
        };
        let span = |v: &Option<Spanned<f64>>| v.as_ref().map(Spanned::span);
        let band_span = span(&self.scale_down_below_pct).or(span(&self.scale_up_above_pct));
        cost.scale_down_below_pct = amount(
            self.scale_down_below_pct,
            "scale_down_below_pct",
            d.scale_down_below_pct,
        );
        cost.scale_up_above_pct = amount(
            self.scale_up_above_pct,
            "scale_up_above_pct",
            d.scale_up_above_pct,
        );
        if cost.scale_down_below_pct >= cost.scale_up_above_pct {
            errors.at(
                band_span.unwrap_or(0..0),
                "cost.scale_down_below_pct",
                format!(
                    "must be below scale_up_above_pct ({})",
                    cost.scale_up_above_pct
                ),
            );
        }
        cost
    }
}
