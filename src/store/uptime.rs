//! Uptime per check over 24 h, 7 d, 30 d and 90 d without reading samples on
//! each request: ok/total counters per hour (the last 25 hours) and per day
//! (the last 91 days) of every check, kept in memory. Seeded once at start
//! from the hourly rollups and the raw samples not rolled up yet (the current
//! hour), a few rows per check and day ([`super::Store::seed_uptime`]), then
//! fed by the sample writer with each batch it stores, so the counts are
//! those of the stored samples. `GET /api/v1/checks` costs O(checks), whatever
//! the number of samples.
//!
//! A window's oldest bucket usually lies only partly inside it; it counts in
//! proportion to the part inside (samples assumed spread evenly over it).
//! Rollups are kept 400 days, so no window is cut by raw samples' retention.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::SampleRow;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// Hourly buckets kept: a day and the hour the 24 h window starts in.
const HOURS: usize = 25;
/// Daily buckets kept: 90 days and the day the 90 d window starts in.
const DAYS: usize = 91;

/// The last `N` periods (hours or days) of one check: the newest period's
/// `(total, up)` samples exactly, and each of the periods before it in 4
/// bytes (a 1,000-check book is 0.5 MB, not 0.9).
///
/// A past period's two counts are 16-bit numbers, scaled down by `2^shift`,
/// one `shift` for the ring. They are exact (shift 0) while no past period
/// of the ring holds more than 65,535 samples; a day of a check every
/// second holds 86,400, and the ring then halves its past periods (shift
/// 1), each count within 2^(shift - 1) samples of the truth. A ring that
/// empties starts exact again.
#[derive(Clone, Debug)]
struct Ring<const N: usize> {
    /// Periods since the epoch of the newest bucket; `i32::MIN` while empty.
    /// (i32 holds hours until the year 246,000.)
    newest: i32,
    /// Past counts are `count >> shift`, rounded.
    shift: u32,
    /// The newest period's `(total, up)`.
    current: (u32, u32),
    /// Past period `p`'s counts sit at `p mod N`, packed ([`pack`]), for the
    /// `N - 1` periods before `newest` (whose own slot is unused).
    past: [u32; N],
}

/// A past period's scaled `(total, up)` in one word: total high, up low.
fn pack(total: u64, up: u64) -> u32 {
    debug_assert!(total <= 0xFFFF && up <= total);
    ((total as u32) << 16) | up as u32
}

fn unpack(word: u32) -> (u64, u64) {
    (u64::from(word >> 16), u64::from(word & 0xFFFF))
}

/// `count / 2^shift`, to the nearest.
fn scale_down(count: u64, shift: u32) -> u64 {
    if shift == 0 {
        count
    } else {
        (count + (1 << (shift - 1))) >> shift
    }
}

impl<const N: usize> Ring<N> {
    fn new() -> Self {
        Ring {
            newest: i32::MIN,
            shift: 0,
            current: (0, 0),
            past: [0; N],
        }
    }

    /// Where period `slot`'s counts sit.
    fn index(slot: i64) -> usize {
        slot.rem_euclid(N as i64) as usize
    }

    fn add(&mut self, slot: i64, total: u32, up: u32) {
        let Ok(slot) = i32::try_from(slot) else {
            return;
        };
        if slot > self.newest {
            // The newest period becomes past; the periods between are past
            // too, and start again empty.
            let gap = i64::from(slot) - i64::from(self.newest);
            if gap >= N as i64 {
                self.past = [0; N];
                self.shift = 0;
            } else {
                let (t, u) = self.current;
                self.add_past(i64::from(self.newest), u64::from(t), u64::from(u));
                for later in i64::from(self.newest) + 1..=i64::from(slot) {
                    self.past[Self::index(later)] = 0;
                }
            }
            self.newest = slot;
            self.current = (0, 0);
        } else if i64::from(slot) <= i64::from(self.newest) - N as i64 {
            return; // Older than the ring holds: not counted.
        }
        if slot == self.newest {
            let (t, u) = &mut self.current;
            *t = t.saturating_add(total);
            *u = u.saturating_add(up);
        } else {
            self.add_past(i64::from(slot), u64::from(total), u64::from(up));
        }
    }

    /// Adds to past period `slot`'s counts, halving every past period's
    /// first while the sum would not fit in 16 bits.
    fn add_past(&mut self, slot: i64, total: u64, up: u64) {
        let i = Self::index(slot);
        let (t, u) = self.counts_at(i);
        let (t, u) = (t + total, u + up);
        while scale_down(t, self.shift) > 0xFFFF {
            self.shift += 1;
            for word in &mut self.past {
                let (t, u) = unpack(*word);
                *word = pack(scale_down(t, 1), scale_down(u, 1));
            }
        }
        self.past[i] = pack(scale_down(t, self.shift), scale_down(u, self.shift));
    }

    /// A past period's `(total, up)` at index `i`, scaled back up.
    fn counts_at(&self, i: usize) -> (u64, u64) {
        let (t, u) = unpack(self.past[i]);
        (t << self.shift, u << self.shift)
    }

    /// (up, total) from `since_ms` to now, periods of `period_ms`; the first
    /// period counts for the fraction of it after `since_ms`.
    fn sum(&self, since_ms: i64, now_ms: i64, period_ms: i64) -> (f64, f64) {
        let newest = i64::from(self.newest);
        let first = since_ms.div_euclid(period_ms);
        let last = now_ms.div_euclid(period_ms).min(newest);
        let first_weight = 1.0 - since_ms.rem_euclid(period_ms) as f64 / period_ms as f64;
        let (mut up, mut total) = (0.0, 0.0);
        for slot in first.max(newest - N as i64 + 1)..=last {
            let (t, u) = if slot == newest {
                (u64::from(self.current.0), u64::from(self.current.1))
            } else {
                self.counts_at(Self::index(slot))
            };
            let w = if slot == first { first_weight } else { 1.0 };
            up += w * u as f64;
            total += w * t as f64;
        }
        (up, total)
    }
}

#[derive(Clone, Debug)]
struct Counts {
    hours: Ring<HOURS>,
    days: Ring<DAYS>,
}

impl Counts {
    fn add(&mut self, hour: i64, total: u32, up: u32) {
        self.hours.add(hour, total, up);
        self.days.add(hour.div_euclid(24), total, up);
    }

    /// Percentage up since `since_ms`: from the hours within a day, else from
    /// the days. `None` without samples.
    fn pct(&self, since_ms: i64, now_ms: i64) -> Option<f64> {
        let (up, total) = if now_ms - since_ms <= DAY_MS {
            self.hours.sum(since_ms, now_ms, HOUR_MS)
        } else {
            self.days.sum(since_ms, now_ms, DAY_MS)
        };
        (total > 0.0).then(|| (100.0 * up / total).clamp(0.0, 100.0))
    }
}

/// One check's uptime over the four windows the API shows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Windows {
    pub h24: Option<f64>,
    pub d7: Option<f64>,
    pub d30: Option<f64>,
    pub d90: Option<f64>,
}

/// The counters of every check. Cheap to clone; clones share them.
#[derive(Clone, Debug, Default)]
pub struct UptimeBook {
    /// Boxed: the table (sized to a power of two above the check count)
    /// holds a pointer per slot rather than the 0.5 kB counters.
    inner: Arc<Mutex<HashMap<Arc<str>, Box<Counts>>>>,
}

impl UptimeBook {
    /// An empty book.
    pub fn new() -> UptimeBook {
        UptimeBook::default()
    }

    /// Where seeding starts: the oldest sample any window can count.
    pub fn seed_since(now: DateTime<Utc>) -> DateTime<Utc> {
        now - chrono::Duration::milliseconds(DAYS as i64 * DAY_MS)
    }

    /// Adds counts of `check` in the hour `hour` (hours since the epoch).
    pub fn add_hour(&self, check: &str, hour: i64, total: u64, up: u64) {
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        let mut book = self.lock();
        match book.get_mut(check) {
            Some(c) => c.add(hour, clamp(total), clamp(up)),
            None => {
                let mut c = Box::new(Counts {
                    hours: Ring::new(),
                    days: Ring::new(),
                });
                c.add(hour, clamp(total), clamp(up));
                book.insert(Arc::from(check), c);
            }
        }
    }

    /// Counts a batch of stored samples.
    pub fn record(&self, rows: &[SampleRow]) {
        let mut book = self.lock();
        for row in rows {
            let hour = row.at.timestamp_millis().div_euclid(HOUR_MS);
            let up = u32::from(row.up);
            match book.get_mut(&row.check) {
                Some(c) => c.add(hour, 1, up),
                None => {
                    let mut c = Box::new(Counts {
                        hours: Ring::new(),
                        days: Ring::new(),
                    });
                    c.add(hour, 1, up);
                    book.insert(row.check.clone(), c);
                }
            }
        }
    }

    /// `check`'s uptime at `now`; all `None` when it has no samples.
    pub fn windows(&self, check: &str, now: DateTime<Utc>) -> Windows {
        let book = self.lock();
        let Some(c) = book.get(check) else {
            return Windows::default();
        };
        self.windows_of(c, now)
    }

    /// Every check's uptime at `now`, one lock for all.
    pub fn all(&self, now: DateTime<Utc>) -> HashMap<String, Windows> {
        let book = self.lock();
        book.iter()
            .map(|(name, c)| (name.to_string(), self.windows_of(c, now)))
            .collect()
    }

    fn windows_of(&self, c: &Counts, now: DateTime<Utc>) -> Windows {
        let now_ms = now.timestamp_millis();
        let since = |days: i64| now_ms - days * DAY_MS;
        Windows {
            h24: c.pct(since(1), now_ms),
            d7: c.pct(since(7), now_ms),
            d30: c.pct(since(30), now_ms),
            d90: c.pct(since(90), now_ms),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Box<Counts>>> {
        // Counters are plain numbers: a panic elsewhere cannot leave them half-changed.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Color;

    fn sample(check: &str, at_ms: i64, up: bool) -> SampleRow {
        SampleRow {
            check: Arc::from(check),
            at: DateTime::from_timestamp_millis(at_ms).expect("time"),
            duration_ms: 1.0,
            up,
            color: if up { Color::Green } else { Color::Red },
            status_code: None,
            latency_ms: 1.0,
            message: String::new(),
            metrics: None,
            region: None,
        }
    }

    const T0: i64 = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS + 12 * HOUR_MS;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).expect("time")
    }

    #[test]
    fn counts_whole_periods_exactly() {
        let book = UptimeBook::new();
        let rows: Vec<_> = (0..10)
            .map(|i| sample("web", T0 - 10 * 60_000 + i * 60_000, i != 3))
            .collect();
        book.record(&rows);
        let w = book.windows("web", at(T0));
        assert_eq!(w.h24, Some(90.0));
        assert_eq!(w.d7, Some(90.0));
        assert_eq!(w.d30, Some(90.0));
        assert_eq!(w.d90, Some(90.0));
        assert_eq!(book.windows("other", at(T0)), Windows::default());
    }

    #[test]
    fn old_samples_leave_the_short_window() {
        let book = UptimeBook::new();
        // Two days ago: all down. Now: all up.
        book.add_hour("web", (T0 - 2 * DAY_MS) / HOUR_MS, 10, 0);
        book.add_hour("web", T0 / HOUR_MS, 10, 10);
        let w = book.windows("web", at(T0 + 1));
        assert_eq!(w.h24, Some(100.0));
        assert_eq!(w.d7, Some(50.0));
        // Forty days on, only the 90 d window counts them.
        let w = book.windows("web", at(T0 + 40 * DAY_MS));
        assert_eq!((w.h24, w.d7, w.d30, w.d90), (None, None, None, Some(50.0)));
        // Past ninety days nothing counts.
        let w = book.windows("web", at(T0 + 100 * DAY_MS));
        assert_eq!(w, Windows::default());
    }

    #[test]
    fn the_oldest_hour_counts_in_proportion() {
        let book = UptimeBook::new();
        let hour = T0 / HOUR_MS;
        book.add_hour("web", hour - 24, 10, 0);
        book.add_hour("web", hour, 10, 10);
        // Half the oldest hour lies inside the window: 5 down, 10 up.
        let w = book.windows("web", at(T0 + HOUR_MS / 2));
        let pct = w.h24.expect("uptime");
        assert!((pct - 100.0 * 10.0 / 15.0).abs() < 1e-9, "{pct}");
    }

    #[test]
    fn periods_arrive_in_any_order_and_fall_off_the_ring() {
        let mut hours: Ring<HOURS> = Ring::new();
        let hour = T0 / HOUR_MS;
        hours.add(hour, 4, 4);
        hours.add(hour - 3, 4, 0); // older, still inside the ring
        hours.add(hour - 30, 4, 0); // older than the ring holds
        let sum = |r: &Ring<HOURS>, now_hour: i64| {
            r.sum((now_hour - 24) * HOUR_MS, now_hour * HOUR_MS, HOUR_MS)
        };
        assert_eq!(sum(&hours, hour), (4.0, 8.0));
        // Twenty hours on, the bucket of `hour - 3` is reused for `hour + 22`.
        hours.add(hour + 22, 2, 2);
        assert_eq!(sum(&hours, hour + 22), (6.0, 6.0));
        // A period far past every bucket empties them all.
        hours.add(hour + 100, 1, 0);
        assert_eq!(sum(&hours, hour + 100), (0.0, 1.0));
    }

    #[test]
    fn days_of_more_than_65535_samples_count_to_within_a_sample() {
        // A check every second: 86,400 samples a day, three of them down.
        let mut days: Ring<DAYS> = Ring::new();
        let day = T0 / DAY_MS;
        for past in (1..=5).rev() {
            days.add(day - past, 86_400, 86_397);
        }
        days.add(day, 7, 7);
        assert_eq!(days.shift, 1, "86,400 does not fit in 16 bits");
        let (up, total) = days.sum((day - 5) * DAY_MS, T0, DAY_MS);
        // Each past day within 2^(shift - 1) = 1 sample of the truth.
        let (true_up, true_total) = (5.0 * 86_397.0 + 7.0, 5.0 * 86_400.0 + 7.0);
        assert!((up - true_up).abs() <= 5.0, "{up} vs {true_up}");
        assert!((total - true_total).abs() <= 5.0, "{total} vs {true_total}");
        assert!(up < total, "the down samples still count");
        // The newest day is exact; a late sample of a past day counts too.
        assert_eq!(days.sum(day * DAY_MS, T0, DAY_MS), (7.0, 7.0));
        days.add(day - 1, 2, 0);
        let (_, total_after) = days.sum((day - 5) * DAY_MS, T0, DAY_MS);
        assert!((total_after - total - 2.0).abs() <= 1.0, "{total_after}");
        // Once every counted day has left the ring, it is exact again.
        days.add(day + DAYS as i64, 3, 1);
        assert_eq!(days.shift, 0);
        days.add(day + DAYS as i64 + 1, 1, 1);
        let now = (day + DAYS as i64 + 1) * DAY_MS;
        assert_eq!(days.sum(now - 2 * DAY_MS, now, DAY_MS), (2.0, 4.0));
    }

    #[test]
    fn a_checks_counters_fit_in_half_a_kilobyte() {
        // 10,000 checks' book: 5 MB (it was 9.4 at 12 bytes, then 8, a period).
        assert!(std::mem::size_of::<Counts>() <= 512);
    }

    #[test]
    fn ninety_days_back_counts_in_the_90d_window_only() {
        let book = UptimeBook::new();
        // 60 days ago: one day all down; today: all up.
        book.add_hour("web", (T0 - 60 * DAY_MS) / HOUR_MS, 30, 0);
        book.add_hour("web", T0 / HOUR_MS, 10, 10);
        let w = book.windows("web", at(T0 + 1));
        assert_eq!(
            (w.h24, w.d7, w.d30),
            (Some(100.0), Some(100.0), Some(100.0))
        );
        assert_eq!(w.d90, Some(25.0));
    }
}
