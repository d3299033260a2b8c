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
/// seconds), weekday 1 = Monday, 0 or 7 = Sunday, read in a time zone: the
/// config's `timezone` (UTC by default), or the schedule's own when it starts
/// with `CRON_TZ=<IANA name> ` (as cronie and Kubernetes write it). Daylight
/// saving is croner's: a time skipped by spring-forward runs at the first
/// instant after the gap, a time repeated in the fall runs once.
#[derive(Clone)]
pub struct Crontab {
    /// As written, `CRON_TZ=` prefix included.
    pub source: String,
    pub cron: std::sync::Arc<croner::Cron>,
    /// The zone its fields are read in.
    pub zone: chrono_tz::Tz,
    /// Whether the schedule names its own zone (`CRON_TZ=`): the config's
    /// `timezone` then does not apply to it.
    pub own_zone: bool,
}

impl fmt::Debug for Crontab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Crontab({:?} in {})", self.source, self.zone)
    }
}

impl PartialEq for Crontab {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.zone == other.zone
    }
}

/// An IANA time zone name (`Europe/Paris`, `UTC`), as the config names one.
pub fn parse_zone(name: &str) -> Result<chrono_tz::Tz, String> {
    name.parse::<chrono_tz::Tz>().map_err(|_| {
        format!(
            "unknown time zone {name:?} (expected an IANA name such as \"Europe/Paris\" or \"UTC\")"
        )
    })
}

impl FromStr for Crontab {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (zone, fields) = match s.trim_start().strip_prefix("CRON_TZ=") {
            Some(rest) => {
                let (name, fields) = rest
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| "CRON_TZ=<zone> must be followed by the schedule".to_string())?;
                (Some(parse_zone(name)?), fields)
            }
            None => (None, s),
        };
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(fields.trim())
            .map_err(|e| e.to_string())?;
        Ok(Crontab {
            source: s.to_string(),
            cron: std::sync::Arc::new(cron),
            zone: zone.unwrap_or(chrono_tz::UTC),
            own_zone: zone.is_some(),
        })
    }
}

impl fmt::Display for Crontab {
    /// `"0 9 * * 1"`, with ` Europe/Paris` when not read in UTC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)?;
        if self.zone != chrono_tz::UTC && !self.own_zone {
            write!(f, " {}", self.zone)?;
        }
        Ok(())
    }
}

impl Crontab {
    /// Reads the schedule in `zone` (the config's `timezone`), unless it names its own.
    pub fn in_zone(&mut self, zone: chrono_tz::Tz) {
        if !self.own_zone {
            self.zone = zone;
        }
    }

    /// The first firing strictly after `after`.
    pub fn next_after(
        &self,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let local = after.with_timezone(&self.zone);
        let next = self.cron.find_next_occurrence(&local, false).ok()?;
        Some(next.with_timezone(&chrono::Utc))
    }

    /// The latest firing at or before `at`.
    pub fn last_at_or_before(
        &self,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let local = at.with_timezone(&self.zone);
        let last = self.cron.find_previous_occurrence(&local, true).ok()?;
        Some(last.with_timezone(&chrono::Utc))
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
    fn crontab_in_a_zone_fires_at_that_zone_s_wall_clock_across_dst() {
        let mut c: Crontab = "0 9 * * 1".parse().unwrap();
        c.in_zone(parse_zone("Europe/Paris").unwrap());
        // Friday 2026-11-27: the next Monday 09:00 in Paris (UTC+1) is 08:00 UTC.
        let from = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        assert_eq!(
            c.next_after(from).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap()
        );
        // In summer (UTC+2) it is 07:00 UTC.
        let june = Utc.with_ymd_and_hms(2026, 6, 26, 12, 0, 0).unwrap();
        assert_eq!(
            c.next_after(june).unwrap(),
            Utc.with_ymd_and_hms(2026, 6, 29, 7, 0, 0).unwrap()
        );
        assert_eq!(
            c.last_at_or_before(from).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap()
        );
        // 02:30 does not exist on 2026-03-29 in Paris: it runs at the first
        // instant after the gap (03:00 CEST = 01:00 UTC).
        let mut gap: Crontab = "30 2 * * *".parse().unwrap();
        gap.in_zone(parse_zone("Europe/Paris").unwrap());
        let before = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
        assert_eq!(
            gap.next_after(before).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap()
        );
    }

    #[test]
    fn crontab_may_name_its_own_zone_which_the_config_s_does_not_override() {
        let mut c: Crontab = "CRON_TZ=America/New_York 0 9 * * *".parse().unwrap();
        c.in_zone(parse_zone("Europe/Paris").unwrap());
        assert_eq!(c.zone, chrono_tz::America::New_York);
        let from = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        assert_eq!(
            c.next_after(from).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 27, 14, 0, 0).unwrap()
        );
        let err = "CRON_TZ=Mars/Olympus 0 9 * * *"
            .parse::<Crontab>()
            .unwrap_err();
        assert!(err.contains("unknown time zone \"Mars/Olympus\""), "{err}");
        assert!("CRON_TZ=UTC".parse::<Crontab>().is_err());
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
