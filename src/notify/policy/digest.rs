//! The policy's own timetable: the daily digest of low incidents
//! (`[severities] low.digest`) and the resends to channels that forget an
//! incident unless told again (Alertmanager's `resend`). Pure: each is told
//! `now` and says what falls due.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::core::value::Crontab;

/// How long a digest's notifications gather before the outbox sends them as one.
pub const DIGEST_GATHER: chrono::Duration = chrono::Duration::seconds(2);

/// The daily digest: when it goes out next.
#[derive(Clone, Debug)]
pub struct Digest {
    schedule: Crontab,
    next: Option<DateTime<Utc>>,
}

impl Digest {
    /// The digest on `schedule`, the first one after `now`.
    pub fn new(schedule: Crontab, now: DateTime<Utc>) -> Digest {
        let next = schedule.next_after(now);
        Digest { schedule, next }
    }

    /// Whether a digest is due at `now`. When it is, the next one is set and
    /// the answer is since when low incidents that came and went unseen
    /// belong in this one (the previous digest, a day back at most).
    pub fn due(&mut self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.next.is_none_or(|at| now < at) {
            return None;
        }
        let since = self
            .schedule
            .last_at_or_before(now - chrono::Duration::seconds(1))
            .map_or(now, |previous| previous.min(now))
            .min(now - chrono::Duration::days(1));
        self.next = self.schedule.next_after(now);
        Some(since)
    }
}

/// One forgetful channel: how often it is told again, and when next.
#[derive(Clone, Debug)]
pub struct Resend {
    channel: String,
    every: Duration,
    next: DateTime<Utc>,
}

impl Resend {
    /// `channel` told again every `every`, first one `every` after `now`.
    pub fn new(channel: String, every: Duration, now: DateTime<Utc>) -> Resend {
        let next = now + chrono::Duration::from_std(every).unwrap_or_default();
        Resend {
            channel,
            every,
            next,
        }
    }
}

/// The channels whose resend is due at `now`; each is set to its next one.
pub fn due_resends(resends: &mut [Resend], now: DateTime<Utc>) -> Vec<String> {
    resends
        .iter_mut()
        .filter(|r| now >= r.next)
        .map(|r| {
            r.next = now + chrono::Duration::from_std(r.every).unwrap_or_default();
            r.channel.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_digest_falls_due_at_its_time_once_and_looks_back_a_day_at_least() {
        // Every day at 09:00.
        let at = |d, h, m| Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap();
        let mut digest = Digest::new("0 9 * * *".parse().unwrap(), at(29, 8, 0));
        assert_eq!(digest.due(at(29, 8, 59)), None);
        let since = digest.due(at(29, 9, 0)).expect("due at nine");
        assert_eq!(since, at(28, 9, 0), "the previous digest, a day back");
        assert_eq!(digest.due(at(29, 9, 0)), None, "once");
        assert_eq!(digest.due(at(30, 8, 59)), None);
        assert!(digest.due(at(30, 9, 0)).is_some(), "the next day");
    }

    #[test]
    fn a_frequent_digest_still_looks_back_a_day() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 29, 9, 0, 0).unwrap();
        let mut digest = Digest::new("*/10 * * * * *".parse().unwrap(), t0);
        assert_eq!(digest.due(t0 + chrono::Duration::seconds(9)), None);
        let now = t0 + chrono::Duration::seconds(10);
        assert_eq!(digest.due(now), Some(now - chrono::Duration::days(1)));
    }

    #[test]
    fn resends_fall_due_per_channel_every_interval() {
        let t0 = Utc::now();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let mut resends = [
            Resend::new("am".into(), Duration::from_secs(60), t0),
            Resend::new("am2".into(), Duration::from_secs(90), t0),
        ];
        assert!(due_resends(&mut resends, at(59)).is_empty());
        assert_eq!(due_resends(&mut resends, at(60)), ["am"]);
        assert_eq!(due_resends(&mut resends, at(90)), ["am2"]);
        assert!(due_resends(&mut resends, at(119)).is_empty());
        assert_eq!(due_resends(&mut resends, at(120)), ["am"]);
    }
}
