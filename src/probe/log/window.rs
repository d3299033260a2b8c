//! The sliding window of a log check: counters in time buckets (a ring),
//! never lines, so its memory is fixed when the check is built whatever the
//! volume. Pure: every call takes the time, so tests drive it.
//!
//! Buckets are 100 ms wide for windows up to 30 s and `window / 300` beyond
//! (1 s for the default 5m), so a window has at most 300 buckets. A sum
//! covers the buckets of the last `window`, the current one included.

use std::time::{Duration, Instant};

use super::rules::Tally;

/// The most buckets a window keeps.
pub const MAX_BUCKETS: u64 = 300;
/// The narrowest bucket.
const MIN_WIDTH: Duration = Duration::from_millis(100);

/// Counter positions within a bucket; named patterns follow.
const LINES: usize = 0;
const ERRORS: usize = 1;
const AUTH: usize = 2;
const CRITICALS: usize = 3;
const MALFORMED: usize = 4;
const FIXED: usize = 5;

/// What a window holds at one time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    pub lines: u64,
    pub errors: u64,
    pub auth_failures: u64,
    pub criticals: u64,
    pub malformed: u64,
    /// Per named pattern.
    pub patterns: Vec<u64>,
    /// The time the counts stand for, to turn them into rates: the window, or
    /// while the window has not been open that long, the time since it opened
    /// but at least a minute (so the first lines after a start are not a
    /// spike), or the whole window when it is shorter.
    pub covered: Duration,
}

#[derive(Debug)]
pub struct Window {
    len: Duration,
    width: Duration,
    start: Instant,
    /// Counters per bucket: `stride` of them each.
    counters: Box<[u64]>,
    /// The tick (time / width since `start`) each bucket holds; `u64::MAX`: none.
    ticks: Box<[u64]>,
    stride: usize,
}

impl Window {
    /// A window of `len` (at least 100 ms) opened at `start`, counting `patterns` named patterns.
    pub fn new(len: Duration, patterns: usize, start: Instant) -> Window {
        let len = len.max(MIN_WIDTH);
        let width = (len / MAX_BUCKETS as u32).max(MIN_WIDTH);
        let buckets = len
            .as_nanos()
            .div_ceil(width.as_nanos())
            .clamp(1, MAX_BUCKETS as u128) as usize;
        let stride = FIXED + patterns;
        Window {
            len,
            width,
            start,
            counters: vec![0; buckets * stride].into_boxed_slice(),
            ticks: vec![u64::MAX; buckets].into_boxed_slice(),
            stride,
        }
    }

    pub fn len(&self) -> Duration {
        self.len
    }

    /// Bytes of counters it keeps: fixed at creation.
    pub fn footprint(&self) -> usize {
        std::mem::size_of_val(&*self.counters) + std::mem::size_of_val(&*self.ticks)
    }

    fn tick(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.start);
        (since.as_nanos() / self.width.as_nanos()) as u64
    }

    /// Adds a batch counted at `now`.
    pub fn add(&mut self, now: Instant, tally: &Tally) {
        let tick = self.tick(now);
        let slot = (tick % self.ticks.len() as u64) as usize;
        let bucket = &mut self.counters[slot * self.stride..(slot + 1) * self.stride];
        if self.ticks[slot] != tick {
            // Older than the window (or newer, with a clock that stepped back): reuse.
            bucket.fill(0);
            self.ticks[slot] = tick;
        }
        bucket[LINES] += tally.lines;
        bucket[ERRORS] += tally.errors;
        bucket[AUTH] += tally.auth_failures;
        bucket[CRITICALS] += tally.criticals;
        bucket[MALFORMED] += tally.malformed;
        for (c, n) in bucket[FIXED..].iter_mut().zip(&tally.patterns) {
            *c += n;
        }
    }

    /// The counts of the last `len` before `now`.
    pub fn sum(&self, now: Instant) -> Counts {
        let now_tick = self.tick(now);
        let n = self.ticks.len() as u64;
        let mut total = vec![0u64; self.stride];
        for (slot, &tick) in self.ticks.iter().enumerate() {
            if tick == u64::MAX || tick > now_tick || now_tick - tick >= n {
                continue;
            }
            let bucket = &self.counters[slot * self.stride..(slot + 1) * self.stride];
            for (t, c) in total.iter_mut().zip(bucket) {
                *t += c;
            }
        }
        Counts {
            lines: total[LINES],
            errors: total[ERRORS],
            auth_failures: total[AUTH],
            criticals: total[CRITICALS],
            malformed: total[MALFORMED],
            patterns: total[FIXED..].to_vec(),
            covered: now
                .saturating_duration_since(self.start)
                .clamp(self.len.min(Duration::from_secs(60)), self.len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: u64, errors: u64) -> Tally {
        Tally {
            lines: n,
            errors,
            patterns: vec![0],
            ..Tally::default()
        }
    }

    #[test]
    fn bucket_widths_keep_at_most_300_buckets() {
        let t0 = Instant::now();
        let w = Window::new(Duration::from_secs(300), 0, t0);
        assert_eq!((w.width, w.ticks.len()), (Duration::from_secs(1), 300));
        let w = Window::new(Duration::from_secs(2), 0, t0);
        assert_eq!((w.width, w.ticks.len()), (Duration::from_millis(100), 20));
        let w = Window::new(Duration::from_secs(86_400), 0, t0);
        assert_eq!((w.width, w.ticks.len()), (Duration::from_secs(288), 300));
    }

    #[test]
    fn counts_slide_out_after_the_window() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(10), 1, t0);
        let mut burst = lines(100, 3);
        burst.patterns = vec![7];
        burst.auth_failures = 2;
        burst.criticals = 1;
        burst.malformed = 4;
        w.add(t0 + Duration::from_secs(1), &burst);
        w.add(t0 + Duration::from_secs(5), &lines(50, 0));
        let at6 = w.sum(t0 + Duration::from_secs(6));
        assert_eq!(
            at6,
            Counts {
                lines: 150,
                errors: 3,
                auth_failures: 2,
                criticals: 1,
                malformed: 4,
                patterns: vec![7],
                covered: Duration::from_secs(10),
            }
        );
        // The burst at 1 s has left by 11.1 s; the lines at 5 s have not.
        let at11 = w.sum(t0 + Duration::from_millis(11_100));
        assert_eq!(
            (at11.lines, at11.errors, at11.patterns.clone()),
            (50, 0, vec![0])
        );
        assert_eq!(at11.covered, Duration::from_secs(10));
        assert_eq!(w.sum(t0 + Duration::from_secs(16)).lines, 0);
    }

    #[test]
    fn a_reused_bucket_starts_from_zero() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(2), 0, t0);
        w.add(t0, &lines(10, 10));
        // 20 buckets of 100 ms: 2 s later the same bucket comes round again.
        w.add(t0 + Duration::from_secs(2), &lines(1, 0));
        let c = w.sum(t0 + Duration::from_secs(2));
        assert_eq!((c.lines, c.errors), (1, 0));
    }

    #[test]
    fn memory_does_not_grow_with_volume() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(300), 3, t0);
        let before = w.footprint();
        assert_eq!(before, 300 * (FIXED + 3) * 8 + 300 * 8);
        let one = Tally {
            lines: 1,
            errors: 1,
            patterns: vec![1, 0, 1],
            ..Tally::default()
        };
        // A million lines over 1,000 s: the ring goes round three times.
        for i in 0..1_000_000u64 {
            w.add(t0 + Duration::from_millis(i), &one);
        }
        assert_eq!(w.footprint(), before);
        let c = w.sum(t0 + Duration::from_millis(999_999));
        // The last 300 buckets of 1 s: 300,000 lines.
        assert_eq!(
            (c.lines, c.errors, c.patterns),
            (300_000, 300_000, vec![300_000, 0, 300_000])
        );
    }
}
