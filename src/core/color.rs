//! How healthy a sample or check is ([`Color`]) and how urgent its trouble
//! is ([`Severity`]), as DESIGN.md §3–§4 name them; and the color of an
//! uptime percentage ([`uptime_color`]), wherever uptime is shown.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Health of a sample or a check. Ordered so that the worst is the maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Green,
    Yellow,
    Red,
}

impl Color {
    pub fn as_str(self) -> &'static str {
        match self {
            Color::Green => "green",
            Color::Yellow => "yellow",
            Color::Red => "red",
        }
    }

    /// The value of `keeper_check_status`: 0 green, 1 yellow, 2 red.
    pub fn as_metric(self) -> i64 {
        self as i64
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Color {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "green" => Ok(Color::Green),
            "yellow" => Ok(Color::Yellow),
            "red" => Ok(Color::Red),
            other => Err(format!(
                "unknown color {other:?} (expected green, yellow or red)"
            )),
        }
    }
}

/// Uptime at or above this is green.
pub const UPTIME_GREEN: f64 = 99.0;
/// Uptime at or above this (and below [`UPTIME_GREEN`]) is yellow; below, red.
pub const UPTIME_YELLOW: f64 = 95.0;

/// The color of an uptime percentage (the seed's bands): green at 99 % or
/// more, yellow from 95 % up to 99 %, red below 95 % (and for NaN).
pub fn uptime_color(pct: f64) -> Color {
    if pct >= UPTIME_GREEN {
        Color::Green
    } else if pct >= UPTIME_YELLOW {
        Color::Yellow
    } else {
        Color::Red
    }
}

/// How urgent a non-green check is (DESIGN.md §4). Ordered: the worst is the maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {other:?} (expected low, medium, high or critical)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_bands_meet_at_99_and_95() {
        assert_eq!(uptime_color(100.0), Color::Green);
        assert_eq!(uptime_color(99.0), Color::Green);
        assert_eq!(uptime_color(98.999), Color::Yellow);
        assert_eq!(uptime_color(95.0), Color::Yellow);
        assert_eq!(uptime_color(94.999), Color::Red);
        assert_eq!(uptime_color(0.0), Color::Red);
        assert_eq!(uptime_color(f64::NAN), Color::Red);
    }
}
