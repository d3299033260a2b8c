//! The measured quantities thresholds apply to ([`Metric`]) and which way
//! each gets worse. Their default bands live with the rules, in `classify`.

use std::fmt;
use std::str::FromStr;

/// A measured quantity that thresholds apply to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    UptimePct,
    LatencyMs,
    ErrorRatePct,
    MemoryPct,
    CpuPct,
    QueryMs,
    DiskPct,
    CertDaysLeft,
    /// Database connections in use, as a percentage of `max_connections`.
    ConnectionsPct,
    /// A value with no meaning of its own (a PromQL result): no default
    /// levels, the check's `thresholds = { value = … }` give its bands.
    Value,
    /// HTTP 401 and 403 responses per minute in a log stream (credential stuffing).
    AuthFailuresPerMin,
}

/// Which way a metric gets worse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Higher is worse (latency, error rate).
    Above,
    /// Lower is worse (uptime, certificate days left).
    Below,
}

impl Metric {
    pub const ALL: [Metric; 11] = [
        Metric::UptimePct,
        Metric::LatencyMs,
        Metric::ErrorRatePct,
        Metric::MemoryPct,
        Metric::CpuPct,
        Metric::QueryMs,
        Metric::DiskPct,
        Metric::CertDaysLeft,
        Metric::ConnectionsPct,
        Metric::Value,
        Metric::AuthFailuresPerMin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::UptimePct => "uptime_pct",
            Metric::LatencyMs => "latency_ms",
            Metric::ErrorRatePct => "error_rate_pct",
            Metric::MemoryPct => "memory_pct",
            Metric::CpuPct => "cpu_pct",
            Metric::QueryMs => "query_ms",
            Metric::DiskPct => "disk_pct",
            Metric::CertDaysLeft => "cert_days_left",
            Metric::ConnectionsPct => "connections_pct",
            Metric::Value => "value",
            Metric::AuthFailuresPerMin => "auth_failures_per_min",
        }
    }

    pub fn direction(self) -> Direction {
        match self {
            Metric::UptimePct | Metric::CertDaysLeft => Direction::Below,
            _ => Direction::Above,
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Metric::ALL.iter().map(|m| m.as_str()).collect();
                format!("unknown metric {s:?} (known: {})", known.join(", "))
            })
    }
}
