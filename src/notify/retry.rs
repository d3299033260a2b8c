//! The retry rule of delivery (DESIGN.md §4): after a failed attempt, what
//! becomes of a notification — due again after an exponential, jittered
//! backoff, or failed: at once when the receiver refused it for good, or once
//! it is older than `delivery.max_age`. Pure functions; the outbox worker
//! ([`super::outbox`]) applies them.

use std::time::Duration;

use super::SendError;

/// The longest a receiver's `Retry-After` may hold a notification back.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);

/// What becomes of a row after an attempt.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Disposition {
    Sent,
    Retry {
        attempts: u32,
        delay: Duration,
        error: String,
    },
    Failed {
        attempts: u32,
        error: String,
    },
}

/// The delay after the `attempt`-th failed attempt (1-based): `base × 2^(attempt-1)`, at most `cap`.
pub(crate) fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    base.saturating_mul(factor).min(cap)
}

/// What a failed attempt is judged by.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// How long ago the notification was queued.
    pub age: Duration,
    /// Past this age a transient failure is no longer retried.
    pub max_age: Duration,
    /// The backoff before the next attempt.
    pub delay: Duration,
    /// In [0, 1): takes up to a tenth off `delay`, so retries of many rows
    /// spread out and never exceed the cap.
    pub jitter: f64,
}

/// The fate of a row that had `attempts_before` attempts and just got
/// `result`: sent; failed at once when refused for good or past `max_age`;
/// else due again after the jittered delay (a longer `Retry-After` wins).
pub(crate) fn decide(
    attempts_before: u32,
    result: Result<(), SendError>,
    limits: &Limits,
) -> Disposition {
    let error = match result {
        Ok(()) => return Disposition::Sent,
        Err(e) => e,
    };
    let attempts = attempts_before.saturating_add(1);
    if error.permanent {
        return Disposition::Failed {
            attempts,
            error: error.message,
        };
    }
    if limits.age >= limits.max_age {
        return Disposition::Failed {
            attempts,
            error: format!(
                "{} (gave up after {attempts} attempts: queued {} ago, past delivery.max_age {})",
                error.message,
                humantime::format_duration(Duration::from_secs(limits.age.as_secs())),
                humantime::format_duration(limits.max_age),
            ),
        };
    }
    let delay = limits.delay;
    let delay = delay.saturating_sub(delay.mul_f64(limits.jitter.clamp(0.0, 1.0) / 10.0));
    let delay = match error.retry_after {
        Some(asked) => delay.max(asked.min(RETRY_AFTER_MAX)),
        None => delay,
    };
    Disposition::Retry {
        attempts,
        delay,
        error: error.message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::outbox::{DEFAULT_BACKOFF_CAP, DEFAULT_MAX_AGE};

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let cap = Duration::from_secs(300);
        let got: Vec<u64> = (1..=12).map(|a| backoff(a, S, cap).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff(0, S, cap), S);
        assert_eq!(backoff(u32::MAX, S, cap), cap);
        let ms = Duration::from_millis(10);
        assert_eq!(
            backoff(3, ms, Duration::from_millis(25)),
            Duration::from_millis(25)
        );
    }

    /// Limits of a row queued `age_s` ago, with `delay` and no jitter.
    fn limits(age_s: u64, delay: Duration) -> Limits {
        Limits {
            age: Duration::from_secs(age_s),
            max_age: DEFAULT_MAX_AGE,
            delay,
            jitter: 0.0,
        }
    }

    #[test]
    fn decisions() {
        let transient = || Err(SendError::transient("503"));
        let young = limits(60, S);
        assert_eq!(decide(0, Ok(()), &young), Disposition::Sent);
        assert_eq!(
            decide(0, transient(), &young),
            Disposition::Retry {
                attempts: 1,
                delay: S,
                error: "503".into()
            }
        );
        assert_eq!(
            decide(0, Err(SendError::permanent("404")), &young),
            Disposition::Failed {
                attempts: 1,
                error: "404".into()
            }
        );
        // The old rule gave up after 8 attempts; only age ends retries now.
        assert!(matches!(
            decide(500, transient(), &young),
            Disposition::Retry { attempts: 501, .. }
        ));
        match decide(7, transient(), &limits(24 * 3600, S)) {
            Disposition::Failed { attempts, error } => {
                assert_eq!(attempts, 8);
                assert!(
                    error.starts_with("503 (gave up after 8 attempts"),
                    "{error}"
                );
                assert!(error.contains("past delivery.max_age 1day"), "{error}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn jitter_takes_off_at_most_a_tenth() {
        for jitter in [0.0, 0.5, 0.999, 7.0, -1.0] {
            let limits = Limits {
                jitter,
                ..limits(0, Duration::from_secs(10))
            };
            match decide(0, Err(SendError::transient("x")), &limits) {
                Disposition::Retry { delay, .. } => {
                    assert!(delay >= Duration::from_secs(9) && delay <= Duration::from_secs(10))
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn retry_after_wins_when_longer() {
        let limited = |secs| {
            let mut e = SendError::transient("429");
            e.retry_after = Some(Duration::from_secs(secs));
            Err(e)
        };
        let delay = |d: Disposition| match d {
            Disposition::Retry { delay, .. } => delay,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            delay(decide(0, limited(7), &limits(0, S))),
            Duration::from_secs(7)
        );
        let later = limits(0, backoff(6, S, DEFAULT_BACKOFF_CAP));
        assert_eq!(
            delay(decide(5, limited(7), &later)),
            Duration::from_secs(32)
        );
        assert_eq!(
            delay(decide(0, limited(86_400), &limits(0, S))),
            RETRY_AFTER_MAX
        );
    }
}
