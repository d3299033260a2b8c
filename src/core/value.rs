//! Typed config values that validate while they are read, so a bad value is
//! reported by the TOML reader with its line and column: durations, crontab
//! schedules, regexes, `host:port` pairs.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer};

/// Parses any `FromStr` value from a TOML string, keeping the value's span on error.
fn from_str<'de, D, T>(de: D, what: &str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    let raw = String::deserialize(de)?;
    raw.parse()
        .map_err(|e| de::Error::custom(format!("invalid {what} {raw:?}: {e}")))
}

/// A humantime duration: `30s`, `5m`, `1h30m`, `1d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
        Ok(HumanDuration(d))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        from_str(de, "duration")
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A crontab schedule, as people write it: five fields (or six with leading
/// seconds), weekday 1 = Monday, 0 or 7 = Sunday.
#[derive(Clone)]
pub struct Crontab {
    pub source: String,
    pub cron: std::sync::Arc<croner::Cron>,
}

impl fmt::Debug for Crontab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Crontab({:?})", self.source)
    }
}

impl PartialEq for Crontab {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl FromStr for Crontab {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(s)
            .map_err(|e| e.to_string())?;
        Ok(Crontab {
            source: s.to_string(),
            cron: std::sync::Arc::new(cron),
        })
    }
}

impl Crontab {
    /// The first firing strictly after `after`, in UTC.
    pub fn next_after(
        &self,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }
}

impl Crontab {
    /// The latest firing at or before `at`, in UTC.
    pub fn last_at_or_before(
        &self,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        self.cron.find_previous_occurrence(&at, true).ok()
    }
}

impl<'de> Deserialize<'de> for Crontab {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        from_str(de, "crontab schedule")
    }
}

/// A regular expression, compiled at load.
#[derive(Clone, Debug)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        from_str::<_, regex::Regex>(de, "regex").map(Pattern)
    }
}

/// `name:port`, as in `host = "example.com:443"` (IPv6 as `[::1]:443`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    /// The name or address, without brackets.
    pub host: String,
    pub port: u16,
}

impl FromStr for HostPort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| "expected name:port".to_string())?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("port {port:?} is not a number from 1 to 65535"))?;
        if port == 0 {
            return Err("port 0 is not a port".into());
        }
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err("expected name:port, the name is empty".into());
        }
        Ok(HostPort {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        from_str(de, "host")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Utc, Weekday};

    #[test]
    fn crontab_weekday_one_is_monday() {
        let c: Crontab = "0 9 * * 1".parse().unwrap();
        // 2026-11-27 is a Friday.
        let from = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        let next = c.next_after(from).unwrap();
        assert_eq!(next.weekday(), Weekday::Mon);
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap());
    }

    #[test]
    fn crontab_accepts_seconds_and_sunday_as_zero_or_seven() {
        let six: Crontab = "30 */5 * * * *".parse().unwrap();
        let from = Utc.with_ymd_and_hms(2026, 11, 27, 12, 1, 0).unwrap();
        assert_eq!(
            six.next_after(from).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 27, 12, 5, 30).unwrap()
        );
        for sunday in ["0 3 * * 0", "0 3 * * 7", "0 3 * * SUN"] {
            let c: Crontab = sunday.parse().unwrap();
            assert_eq!(
                c.next_after(from).unwrap().weekday(),
                Weekday::Sun,
                "{sunday}"
            );
        }
    }

    #[test]
    fn crontab_rejects_garbage() {
        assert!("0 9 * *".parse::<Crontab>().is_err());
        assert!("61 * * * *".parse::<Crontab>().is_err());
        assert!("every day".parse::<Crontab>().is_err());
    }

    #[test]
    fn host_port_forms() {
        let hp: HostPort = "example.com:443".parse().unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("example.com", 443));
        let v6: HostPort = "[::1]:8443".parse().unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8443));
        assert_eq!(v6.to_string(), "[::1]:8443");
        assert!("example.com".parse::<HostPort>().is_err());
        assert!("example.com:99999".parse::<HostPort>().is_err());
    }
}
