//! The arithmetic of the cost report, pure: what a machine size costs under
//! the `[cost]` table, over a month of a given length, and which size is
//! the next one down or up (Fly's ladder: shared-cpu-1x…8x with 256 MB to
//! 2 GB of RAM per vCPU, performance-1x…16x with 2 to 8 GB per vCPU, RAM in
//! steps of 256 MB).

use std::fmt;

use serde::Serialize;

use crate::config::Cost;

/// Fly's "per month": 30 days.
pub const PRICE_MONTH_S: f64 = 30.0 * 86_400.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuKind {
    Shared,
    Performance,
}

impl CpuKind {
    pub fn parse(s: &str) -> Option<CpuKind> {
        match s {
            "shared" => Some(CpuKind::Shared),
            "performance" => Some(CpuKind::Performance),
            _ => None,
        }
    }

    /// The vCPU counts Fly offers.
    fn cpus(self) -> &'static [u32] {
        match self {
            CpuKind::Shared => &[1, 2, 4, 8],
            CpuKind::Performance => &[1, 2, 4, 8, 16],
        }
    }

    /// RAM per vCPU, least and most, in MB.
    fn memory_per_cpu(self) -> (u32, u32) {
        match self {
            CpuKind::Shared => (256, 2048),
            CpuKind::Performance => (2048, 8192),
        }
    }
}

/// A machine's size (`config.guest`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Guest {
    pub cpu_kind: CpuKind,
    pub cpus: u32,
    pub memory_mb: u32,
}

impl fmt::Display for Guest {
    /// `shared-cpu-1x 1GB`, `performance-2x 4GB`, `shared-cpu-1x 256MB`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.cpu_kind {
            CpuKind::Shared => "shared-cpu",
            CpuKind::Performance => "performance",
        };
        write!(f, "{kind}-{}x ", self.cpus)?;
        if self.memory_mb.is_multiple_of(1024) {
            write!(f, "{}GB", self.memory_mb / 1024)
        } else {
            write!(f, "{}MB", self.memory_mb)
        }
    }
}

/// Which way a size should go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Down,
    Up,
}

impl Guest {
    /// USD per 30 days while it runs: its vCPUs plus its RAM.
    pub fn price_month(&self, prices: &Cost) -> f64 {
        let cpu = match self.cpu_kind {
            CpuKind::Shared => prices.shared_cpu_month,
            CpuKind::Performance => prices.performance_cpu_month,
        };
        f64::from(self.cpus) * cpu + f64::from(self.memory_mb) / 1024.0 * prices.memory_gb_month
    }

    /// The next size `direction`, changing RAM when `memory` and vCPUs when
    /// `cpu` (RAM halves or doubles, to a multiple of 256 MB; vCPUs step
    /// along Fly's ladder), kept within what the vCPU count allows (more RAM
    /// than it allows takes more vCPUs). `None` when there is no such size:
    /// already the smallest or the largest.
    pub fn next(&self, direction: Direction, memory: bool, cpu: bool) -> Option<Guest> {
        let ladder = self.cpu_kind.cpus();
        let (least, most) = self.cpu_kind.memory_per_cpu();
        let at = ladder.iter().position(|&c| c >= self.cpus)?;
        let mut cpus = self.cpus;
        let mut memory_mb = self.memory_mb;
        match direction {
            Direction::Up => {
                if cpu {
                    cpus = *ladder.get(at + 1)?;
                }
                if memory {
                    memory_mb = memory_mb.checked_mul(2)?;
                }
                memory_mb = memory_mb.max(least * cpus);
                if memory_mb > most * cpus {
                    cpus = *ladder.iter().find(|&&c| most * c >= memory_mb)?;
                }
            }
            Direction::Down => {
                if cpu && at > 0 {
                    cpus = ladder[at - 1];
                }
                if memory {
                    memory_mb = (memory_mb / 2).div_ceil(256) * 256;
                }
                memory_mb = memory_mb.max(least * cpus);
                if memory_mb > most * cpus {
                    // Fewer vCPUs cannot hold the RAM: keep them.
                    cpus = self.cpus;
                }
            }
        }
        let next = Guest {
            cpu_kind: self.cpu_kind,
            cpus,
            memory_mb,
        };
        (next != *self).then_some(next)
    }
}

/// `per_30_days` over a month of `month_s` seconds (Fly bills per second).
pub fn over(per_30_days: f64, month_s: f64) -> f64 {
    per_30_days * month_s / PRICE_MONTH_S
}

/// Cents, rounded half away from zero: what is shown and added up. Never
/// `-0.0` (the sum of nothing), which would print as `$-0.00`.
pub fn cents(usd: f64) -> f64 {
    (usd * 100.0).round() / 100.0 + 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(cpus: u32, memory_mb: u32) -> Guest {
        Guest {
            cpu_kind: CpuKind::Shared,
            cpus,
            memory_mb,
        }
    }

    fn performance(cpus: u32, memory_mb: u32) -> Guest {
        Guest {
            cpu_kind: CpuKind::Performance,
            cpus,
            memory_mb,
        }
    }

    #[test]
    fn default_prices_give_flys_published_presets() {
        let p = Cost::default();
        let month = |g: Guest| cents(g.price_month(&p));
        assert_eq!(month(shared(1, 256)), 1.94);
        assert_eq!(month(shared(1, 512)), 3.19);
        assert_eq!(month(shared(1, 1024)), 5.69);
        assert_eq!(month(shared(1, 2048)), 10.69);
        assert_eq!(month(performance(1, 2048)), 31.00);
        assert_eq!(month(performance(2, 4096)), 62.00);
        assert_eq!(month(performance(1, 8192)), 61.00);
        assert_eq!(month(performance(8, 16384)), 248.00);
    }

    #[test]
    fn a_month_is_billed_by_its_seconds() {
        assert_eq!(over(31.0, PRICE_MONTH_S), 31.0);
        let nothing: f64 = std::iter::empty::<f64>().sum();
        assert!(cents(nothing).is_sign_positive());
        assert_eq!(cents(over(31.0, 31.0 * 86_400.0)), 32.03);
        assert_eq!(cents(over(31.0, 28.0 * 86_400.0)), 28.93);
        let p = Cost {
            memory_gb_month: 6.0,
            shared_cpu_month: 1.0,
            ..Cost::default()
        };
        assert_eq!(shared(2, 1536).price_month(&p), 2.0 + 9.0);
    }

    #[test]
    fn sizes_read_like_flyctl() {
        assert_eq!(shared(1, 256).to_string(), "shared-cpu-1x 256MB");
        assert_eq!(shared(2, 1024).to_string(), "shared-cpu-2x 1GB");
        assert_eq!(performance(4, 8192).to_string(), "performance-4x 8GB");
        assert_eq!(shared(1, 1280).to_string(), "shared-cpu-1x 1280MB");
    }

    #[test]
    fn next_size_down_halves_what_is_underused() {
        use Direction::Down;
        assert_eq!(
            shared(1, 1024).next(Down, true, false),
            Some(shared(1, 512))
        );
        assert_eq!(shared(1, 768).next(Down, true, false), Some(shared(1, 512)));
        assert_eq!(shared(1, 256).next(Down, true, true), None);
        assert_eq!(shared(2, 1024).next(Down, true, true), Some(shared(1, 512)));
        // 4 GB needs 2 shared vCPUs: nothing to take away.
        assert_eq!(shared(2, 4096).next(Down, false, true), None);
        assert_eq!(
            performance(2, 4096).next(Down, false, true),
            Some(performance(1, 4096))
        );
        assert_eq!(performance(1, 2048).next(Down, true, false), None);
    }

    #[test]
    fn next_size_up_doubles_what_is_overused() {
        use Direction::Up;
        assert_eq!(shared(1, 512).next(Up, true, false), Some(shared(1, 1024)));
        // More RAM than one shared vCPU holds takes two.
        assert_eq!(shared(1, 2048).next(Up, true, false), Some(shared(2, 4096)));
        assert_eq!(shared(1, 256).next(Up, false, true), Some(shared(2, 512)));
        assert_eq!(
            performance(1, 2048).next(Up, true, true),
            Some(performance(2, 4096))
        );
        assert_eq!(shared(8, 16384).next(Up, true, false), None);
        assert_eq!(performance(16, 131072).next(Up, false, true), None);
    }
}
