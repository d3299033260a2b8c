//! The `heartbeat` check: passive. Jobs (backups, cron jobs) call
//! `/ping/<token>` when they succeed, `/ping/<token>/start` when they begin,
//! `/ping/<token>/fail` when they fail, `/ping/<token>/<exit status>` either
//! way (0 succeeded) and `/ping/<token>/log` to leave output without a
//! verdict — Healthchecks.io's URLs. The check is red when the last run
//! failed, a run outlasts `max_runtime`, or a success is late (`period` or
//! the crontab `schedule`, plus `grace`); the red message ends with the last
//! lines of the output the job sent since its last success ([`body`]).
//!
//! This file owns the keys, the pure evaluation (signals and now → sample) and
//! the probe that runs it; [`registry`] owns the tokens and the signals (in
//! memory, saved on each ping). The HTTP side is `http/ping.rs`.

pub mod body;
pub mod registry;

use std::ops::Range;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use toml::Spanned;

pub use registry::{Beat, Registry, Signal};

use super::{BuildError, CheckDefaults, Context, Kind};
use crate::core::value::{Crontab, HumanDuration};
use crate::core::{Outcome, Sample, Severity, SpecProblem};

/// How often a heartbeat is evaluated unless its `interval` says otherwise
/// (a ping that changes its color also wakes an evaluation at once).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// How late a success may be before the check is red, unless `grace` is set.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);
/// The shortest token accepted in the config: shorter ones can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// `[checks.NAME]` keys of kind `heartbeat`. `schedule` here is when pings
/// are expected (the config hands it to the kind, not to the scheduler).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub token: Option<Spanned<String>>,
    pub period: Option<Spanned<HumanDuration>>,
    pub schedule: Option<Spanned<Crontab>>,
    pub grace: Option<Spanned<HumanDuration>>,
    pub max_runtime: Option<Spanned<HumanDuration>>,
}

impl std::fmt::Debug for Spec {
    /// Without the token: it is a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("heartbeat::Spec")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("period", &self.period.as_ref().map(|p| p.get_ref()))
            .field("schedule", &self.schedule.as_ref().map(|s| s.get_ref()))
            .field("grace", &self.grace.as_ref().map(|g| g.get_ref()))
            .field(
                "max_runtime",
                &self.max_runtime.as_ref().map(|m| m.get_ref()),
            )
            .finish()
    }
}

impl Spec {
    /// When pings are expected, for people (never the token).
    pub fn target(&self) -> String {
        match self.rules() {
            Ok(rules) => rules.to_string(),
            Err(_) => "heartbeat".into(),
        }
    }

    /// Whether the config sets the token (else keeper generates one).
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Problems found at load, each at its key's position.
    pub fn problems(&self) -> Vec<SpecProblem> {
        let mut out = Vec::new();
        let mut at = |key: &'static str, span: Option<Range<usize>>, message: &str| {
            out.push(SpecProblem {
                key: key.into(),
                span,
                message: message.to_string(),
            });
        };
        match (&self.period, &self.schedule) {
            (Some(_), Some(s)) => at(
                "schedule",
                Some(s.span()),
                "set either period or schedule (when pings are expected), not both",
            ),
            (None, None) => at(
                "",
                None,
                "a heartbeat needs period = \"1d\" or schedule = \"<crontab>\": when pings are expected",
            ),
            (Some(p), None) if p.get_ref().0.is_zero() => {
                at("period", Some(p.span()), "period must be above 0")
            }
            _ => {}
        }
        if let Some(m) = &self.max_runtime
            && m.get_ref().0.is_zero()
        {
            at("max_runtime", Some(m.span()), "max_runtime must be above 0");
        }
        if let Some(t) = &self.token
            && let Err(e) = check_token(t.get_ref())
        {
            at("token", Some(t.span()), &e);
        }
        out
    }

    fn rules(&self) -> Result<Rules, BuildError> {
        let expected = match (&self.period, &self.schedule) {
            (Some(p), None) if !p.get_ref().0.is_zero() => Expected::Every(p.get_ref().0),
            (None, Some(s)) => Expected::Cron(s.get_ref().clone()),
            _ => {
                return Err(BuildError(
                    "a heartbeat needs one of period or schedule".into(),
                ));
            }
        };
        Ok(Rules {
            expected,
            grace: self.grace.as_ref().map_or(DEFAULT_GRACE, |g| g.get_ref().0),
            max_runtime: self
                .max_runtime
                .as_ref()
                .map(|m| m.get_ref().0)
                .filter(|m| !m.is_zero()),
        })
    }

    /// Registers the check's token (when the config sets one) with `registry`.
    /// Registers check `check` (its state is kept under its name) with `registry`.
    pub fn build(&self, check: &str, registry: &Registry) -> Result<Probe, BuildError> {
        let rules = self.rules()?;
        let token = match &self.token {
            Some(t) => {
                check_token(t.get_ref()).map_err(BuildError)?;
                Some(t.get_ref().clone())
            }
            None => None,
        };
        let beat = registry.register(check.into(), token, rules)?;
        Ok(Probe { beat })
    }
}

impl Kind for Spec {
    const NAME: &'static str = "heartbeat";
    type Probe = Probe;
    /// `schedule` is when pings are expected, not when to probe: a heartbeat
    /// is evaluated every `interval`.
    const OWN_KEYS: &'static [&'static str] = &["schedule"];
    /// Evaluated every 10s (pings that change its color wake it at once),
    /// `high` when late (a job, not production, is down), and alerting and
    /// resolving on the first sample: its evaluations are exact readings of
    /// the pings received, with no blips to ride out.
    const CHECK_DEFAULTS: CheckDefaults = CheckDefaults {
        interval: Some(DEFAULT_INTERVAL),
        down_severity: Some(Severity::High),
        failures_before_alert: Some(1),
        successes_before_resolve: Some(1),
    };

    fn target(&self) -> String {
        Spec::target(self)
    }

    fn problems(&self) -> Vec<SpecProblem> {
        Spec::problems(self)
    }

    /// Two heartbeats cannot share a token: pings would count for both.
    fn claims(&self) -> Vec<(&'static str, String)> {
        let token = self.token.as_ref().map(|t| t.get_ref().clone());
        token.map(|t| ("token", t)).into_iter().collect()
    }

    fn build(&self, check: &str, ctx: &Context) -> Result<Probe, BuildError> {
        Spec::build(self, check, &ctx.heartbeats)
    }
}

/// A token must be long enough not to be guessed and fit in a URL path as is.
fn check_token(token: &str) -> Result<(), String> {
    if token.chars().count() < MIN_TOKEN_LEN {
        return Err(format!(
            "token must be at least {MIN_TOKEN_LEN} characters, so it cannot be guessed \
             (leave it out and keeper generates one)"
        ));
    }
    if let Some(c) = token
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')))
    {
        return Err(format!(
            "token may hold only letters, digits, '-', '_', '.' and '~' (it goes in a URL), not {c:?}"
        ));
    }
    Ok(())
}

/// When successes are expected.
#[derive(Clone, Debug, PartialEq)]
pub enum Expected {
    /// At most this long after the previous success.
    Every(Duration),
    /// At each firing of a crontab (in its zone).
    Cron(Crontab),
}

/// A heartbeat's expectations, from its keys.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    pub expected: Expected,
    pub grace: Duration,
    pub max_runtime: Option<Duration>,
}

impl Rules {
    /// When the next success is due after one at `anchor` (or after keeper
    /// first saw the check); `None` when the crontab never fires again.
    fn due_after(&self, anchor: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.expected {
            Expected::Every(period) => Some(anchor + chrono::Duration::from_std(*period).ok()?),
            Expected::Cron(cron) => cron.next_after(anchor),
        }
    }
}

impl std::fmt::Display for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.expected {
            Expected::Every(p) => write!(f, "every {}", span(*p))?,
            Expected::Cron(c) => write!(f, "cron {:?} ({})", c.source, c.zone)?,
        }
        write!(f, ", grace {}", span(self.grace))?;
        if let Some(m) = self.max_runtime {
            write!(f, ", max_runtime {}", span(m))?;
        }
        Ok(())
    }
}

/// What keeper knows of a heartbeat: the latest of each signal.
#[derive(Clone, Debug, PartialEq)]
pub struct Signals {
    /// When keeper first saw the check: lateness before any ping counts from it.
    pub first_seen: DateTime<Utc>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_start: Option<DateTime<Utc>>,
    pub last_fail: Option<DateTime<Utc>>,
    /// The run that ended with `last_success`, when a `/start` began it.
    pub last_run: Option<Duration>,
    /// The exit status `last_fail` reported (`/ping/<token>/3`); `None` for `/fail`.
    pub last_exit: Option<u8>,
    /// The last lines of the latest ping body that held any, and when it came.
    /// Kept in memory only: a restart forgets it.
    pub last_output: Option<(DateTime<Utc>, String)>,
}

impl Signals {
    pub fn new(first_seen: DateTime<Utc>) -> Signals {
        Signals {
            first_seen,
            last_success: None,
            last_start: None,
            last_fail: None,
            last_run: None,
            last_exit: None,
            last_output: None,
        }
    }

    /// Takes in a ping received at `at`.
    pub fn record(&mut self, signal: Signal, at: DateTime<Utc>) {
        match signal {
            Signal::Success => {
                self.last_run = self
                    .running_since()
                    .map(|start| (at - start).to_std().unwrap_or_default());
                self.last_success = Some(at);
            }
            Signal::Start => self.last_start = Some(at),
            Signal::Fail => {
                self.last_fail = Some(at);
                self.last_exit = None;
            }
            Signal::Exit(status) => {
                self.last_fail = Some(at);
                self.last_exit = Some(status);
            }
            Signal::Log => {}
        }
    }

    /// Takes in the last lines of a ping body received at `at` ([`body::tail`]).
    pub fn record_output(&mut self, tail: String, at: DateTime<Utc>) {
        self.last_output = Some((at, tail));
    }

    /// The output sent since the last success: what a red message ends with.
    fn output_since_success(&self) -> Option<&str> {
        let (at, tail) = self.last_output.as_ref()?;
        (Some(*at) > self.last_success).then_some(tail.as_str())
    }

    /// When the run in progress began: a `/start` after the latest success and fail.
    pub fn running_since(&self) -> Option<DateTime<Utc>> {
        let start = self.last_start?;
        (Some(start) > self.last_success && Some(start) > self.last_fail).then_some(start)
    }

    /// When the last run failed, if no success came since.
    pub fn failed_at(&self) -> Option<DateTime<Utc>> {
        let fail = self.last_fail?;
        (Some(fail) > self.last_success).then_some(fail)
    }
}

/// The heartbeat's sample at `now`: red when the last run failed, a run
/// outlasts `max_runtime`, or the next success is past due + grace; green
/// otherwise (also before any ping, until the first one is due + grace).
pub fn evaluate(rules: &Rules, s: &Signals, now: DateTime<Utc>) -> Sample {
    let ago = |t: DateTime<Utc>| span((now - t).to_std().unwrap_or_default());
    let running = s.running_since();
    let mut sample = if let Some(failed) = s.failed_at() {
        let mut msg = format!("failed {} ago", ago(failed));
        if let Some(status) = s.last_exit {
            msg.push_str(&format!(" (exit status {status})"));
        }
        if let Some(start) = running {
            msg.push_str(&format!(", retry running for {}", ago(start)));
        }
        match s.last_success {
            Some(ok) => msg.push_str(&format!("; last success {} ago", ago(ok))),
            None => msg.push_str("; no success yet"),
        }
        Sample::down(msg)
    } else if let (Some(start), Some(max)) = (running, rules.max_runtime)
        && (now - start).to_std().unwrap_or_default() > max
    {
        Sample::down(format!(
            "started {} ago and not finished within max_runtime {}",
            ago(start),
            span(max)
        ))
    } else {
        on_schedule(rules, s, now, running)
    };
    if let (Outcome::Down(reason), Some(output)) = (&sample.outcome, s.output_since_success()) {
        sample = Sample::down(format!("{reason}\nlast output:\n{output}"));
    }
    if let Some(run) = s.last_run {
        sample.values.push(("run_s".into(), run.as_secs_f64()));
    }
    sample
}

/// Neither failed nor overrunning: late or on time.
fn on_schedule(
    rules: &Rules,
    s: &Signals,
    now: DateTime<Utc>,
    running: Option<DateTime<Utc>>,
) -> Sample {
    let ago = |t: DateTime<Utc>| span((now - t).to_std().unwrap_or_default());
    let last = match s.last_success {
        Some(ok) => {
            let run = s
                .last_run
                .map_or_else(String::new, |r| format!(" (run {})", run_text(r)));
            format!("last ping {} ago{run}", ago(ok))
        }
        None => "no ping yet".to_string(),
    };
    let running = running.map_or_else(String::new, |start| format!(", running for {}", ago(start)));
    let anchor = s.last_success.unwrap_or(s.first_seen);
    let Some(due) = rules.due_after(anchor) else {
        return Sample::up(format!(
            "{last}{running}; no ping expected any more ({rules})"
        ));
    };
    let grace = chrono::Duration::from_std(rules.grace).unwrap_or(chrono::Duration::MAX);
    let late_at = due
        .checked_add_signed(grace)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if now > late_at {
        let since = match s.last_success {
            Some(ok) => format!("last ping {} ago", ago(ok)),
            None => format!(
                "no ping since keeper began watching {} ago",
                ago(s.first_seen)
            ),
        };
        return Sample::down(format!(
            "late: {since}{running}, due {} ago ({rules})",
            ago(due)
        ));
    }
    let when = if now <= due {
        format!(
            "next due in {}",
            span((due - now).to_std().unwrap_or_default())
        )
    } else {
        format!(
            "due {} ago, within the {} grace",
            ago(due),
            span(rules.grace)
        )
    };
    Sample::up(format!("{last}{running}; {when}"))
}

/// A duration in its two largest units: `42s`, `3m 12s`, `21h 5m`, `1d 2h`.
pub fn span(d: Duration) -> String {
    let s = d.as_secs();
    let (big, big_unit, small, small_unit) = match s {
        0..60 => return format!("{s}s"),
        60..3600 => (s / 60, "m", s % 60, "s"),
        3600..86_400 => (s / 3600, "h", s % 3600 / 60, "m"),
        _ => (s / 86_400, "d", s % 86_400 / 3600, "h"),
    };
    if small == 0 {
        format!("{big}{big_unit}")
    } else {
        format!("{big}{big_unit} {small}{small_unit}")
    }
}

/// A run's duration: tenths of a second below ten seconds.
fn run_text(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        span(d)
    }
}

/// A built heartbeat: evaluates its check's signals when the scheduler runs it.
#[derive(Debug)]
pub struct Probe {
    beat: std::sync::Arc<Beat>,
}

impl Probe {
    pub async fn run(&self, _deadline: tokio::time::Instant) -> Sample {
        self.beat.evaluate(Utc::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 3, 0, 0).unwrap()
    }

    fn secs(n: i64) -> chrono::Duration {
        chrono::Duration::seconds(n)
    }

    fn daily() -> Rules {
        Rules {
            expected: Expected::Every(Duration::from_secs(86_400)),
            grace: Duration::from_secs(3600),
            max_runtime: Some(Duration::from_secs(2 * 3600)),
        }
    }

    fn is_red(s: &Sample) -> bool {
        matches!(s.outcome, Outcome::Down(_))
    }

    #[test]
    fn before_any_ping_green_until_period_and_grace_have_passed() {
        let s = Signals::new(t0());
        let early = evaluate(&daily(), &s, t0() + secs(3600));
        assert_eq!(early.outcome, Outcome::Up);
        assert_eq!(early.message, "no ping yet; next due in 23h");
        let in_grace = evaluate(&daily(), &s, t0() + secs(86_400 + 600));
        assert_eq!(in_grace.outcome, Outcome::Up, "{}", in_grace.message);
        assert!(
            in_grace
                .message
                .contains("due 10m ago, within the 1h grace")
        );
        let late = evaluate(&daily(), &s, t0() + secs(86_400 + 3601));
        assert!(is_red(&late));
        assert_eq!(
            late.message,
            "late: no ping since keeper began watching 1d 1h ago, due 1h ago (every 1d, grace 1h, max_runtime 2h)"
        );
    }

    #[test]
    fn on_time_run_shows_last_ping_run_and_next_due() {
        let mut s = Signals::new(t0() - secs(7 * 86_400));
        s.record(Signal::Start, t0());
        s.record(Signal::Success, t0() + secs(42));
        let now = t0() + secs(42 + 3 * 3600);
        let sample = evaluate(&daily(), &s, now);
        assert_eq!(sample.outcome, Outcome::Up);
        assert_eq!(
            sample.message,
            "last ping 3h ago (run 42s); next due in 21h"
        );
        assert_eq!(sample.values, vec![("run_s".to_string(), 42.0)]);
    }

    #[test]
    fn late_after_period_and_grace_since_the_last_success() {
        let mut s = Signals::new(t0() - secs(7 * 86_400));
        s.record(Signal::Success, t0());
        let ok = evaluate(&daily(), &s, t0() + secs(86_400 + 3600));
        assert_eq!(ok.outcome, Outcome::Up, "{}", ok.message);
        let late = evaluate(&daily(), &s, t0() + secs(86_400 + 3601));
        assert!(is_red(&late));
        assert!(
            late.message
                .starts_with("late: last ping 1d 1h ago, due 1h ago")
        );
        assert!(late.values.is_empty(), "no run without a /start");
    }

    #[test]
    fn fail_is_red_until_a_success() {
        let mut s = Signals::new(t0() - secs(86_400));
        s.record(Signal::Success, t0());
        s.record(Signal::Start, t0() + secs(100));
        s.record(Signal::Fail, t0() + secs(160));
        let failed = evaluate(&daily(), &s, t0() + secs(220));
        assert!(is_red(&failed));
        assert_eq!(failed.message, "failed 1m ago; last success 3m 40s ago");
        // A retry starting does not hide the failure.
        s.record(Signal::Start, t0() + secs(300));
        let retry = evaluate(&daily(), &s, t0() + secs(330));
        assert!(is_red(&retry));
        assert!(
            retry.message.contains("retry running for 30s"),
            "{}",
            retry.message
        );
        s.record(Signal::Success, t0() + secs(360));
        let ok = evaluate(&daily(), &s, t0() + secs(360));
        assert_eq!(ok.outcome, Outcome::Up);
        assert_eq!(s.last_run, Some(Duration::from_secs(60)));
    }

    #[test]
    fn an_exit_status_fails_and_the_output_since_the_last_success_ends_the_message() {
        let mut s = Signals::new(t0() - secs(86_400));
        s.record(Signal::Success, t0());
        s.record_output("backed up 3 files".into(), t0());
        s.record(Signal::Start, t0() + secs(60));
        s.record(Signal::Log, t0() + secs(70));
        s.record_output("copying /srv".into(), t0() + secs(70));
        assert_eq!(
            s.running_since(),
            Some(t0() + secs(60)),
            "a log changes nothing"
        );
        let running = evaluate(&daily(), &s, t0() + secs(80));
        assert_eq!(running.outcome, Outcome::Up);
        assert!(!running.message.contains("copying"), "{}", running.message);
        s.record(Signal::Exit(3), t0() + secs(120));
        s.record_output("rsync: No space left on device".into(), t0() + secs(120));
        let failed = evaluate(&daily(), &s, t0() + secs(180));
        assert!(is_red(&failed));
        assert_eq!(
            failed.message,
            "failed 1m ago (exit status 3); last success 3m ago\nlast output:\nrsync: No space left on device"
        );
        assert_eq!(failed.outcome, Outcome::Down(failed.message.clone()));
        // A plain /fail has no status; a success's output is not shown when it is late.
        s.record(Signal::Fail, t0() + secs(200));
        assert!(
            evaluate(&daily(), &s, t0() + secs(200))
                .message
                .starts_with("failed 0s ago;")
        );
        s.record(Signal::Success, t0() + secs(300));
        s.record_output("all good".into(), t0() + secs(300));
        let late = evaluate(&daily(), &s, t0() + secs(300 + 86_400 + 3601));
        assert!(is_red(&late));
        assert!(!late.message.contains("all good"), "{}", late.message);
    }

    #[test]
    fn fail_before_any_success() {
        let mut s = Signals::new(t0());
        s.record(Signal::Fail, t0() + secs(5));
        let failed = evaluate(&daily(), &s, t0() + secs(5));
        assert!(is_red(&failed));
        assert_eq!(failed.message, "failed 0s ago; no success yet");
    }

    #[test]
    fn a_run_past_max_runtime_is_red() {
        let mut s = Signals::new(t0() - secs(86_400));
        s.record(Signal::Success, t0() - secs(60));
        s.record(Signal::Start, t0());
        let running = evaluate(&daily(), &s, t0() + secs(600));
        assert_eq!(running.outcome, Outcome::Up);
        assert!(
            running.message.contains(", running for 10m;"),
            "{}",
            running.message
        );
        let over = evaluate(&daily(), &s, t0() + secs(2 * 3600 + 1));
        assert!(is_red(&over));
        assert_eq!(
            over.message,
            "started 2h ago and not finished within max_runtime 2h"
        );
        // Without max_runtime, only lateness applies.
        let lenient = Rules {
            max_runtime: None,
            ..daily()
        };
        assert_eq!(
            evaluate(&lenient, &s, t0() + secs(2 * 3600 + 1)).outcome,
            Outcome::Up
        );
    }

    #[test]
    fn a_success_without_start_has_no_run_duration() {
        let mut s = Signals::new(t0());
        s.record(Signal::Start, t0());
        s.record(Signal::Success, t0() + secs(3));
        assert_eq!(s.last_run, Some(Duration::from_secs(3)));
        s.record(Signal::Success, t0() + secs(100));
        assert_eq!(s.last_run, None);
    }

    #[test]
    fn cron_schedule_is_due_at_the_next_firing_after_the_last_success() {
        let rules = Rules {
            expected: Expected::Cron("0 3 * * *".parse().unwrap()),
            grace: Duration::from_secs(1800),
            max_runtime: None,
        };
        // Watching since 12:00; the first firing is tomorrow 03:00.
        let seen = t0() + secs(9 * 3600);
        let s = Signals::new(seen);
        let before = evaluate(&rules, &s, seen + secs(3600));
        assert_eq!(before.message, "no ping yet; next due in 14h");
        let tomorrow_3am = t0() + secs(86_400);
        assert_eq!(
            evaluate(&rules, &s, tomorrow_3am + secs(1800)).outcome,
            Outcome::Up
        );
        let late = evaluate(&rules, &s, tomorrow_3am + secs(1801));
        assert!(is_red(&late));
        assert!(
            late.message
                .contains("(cron \"0 3 * * *\" (UTC), grace 30m)"),
            "{}",
            late.message
        );
        // Pinged at 03:20: due again the day after at 03:00.
        let mut s = s;
        s.record(Signal::Success, tomorrow_3am + secs(1200));
        let ok = evaluate(&rules, &s, tomorrow_3am + secs(3600));
        assert_eq!(ok.message, "last ping 40m ago; next due in 23h");
    }

    #[test]
    fn spans_read_in_two_units() {
        assert_eq!(span(Duration::from_secs(0)), "0s");
        assert_eq!(span(Duration::from_secs(42)), "42s");
        assert_eq!(span(Duration::from_secs(192)), "3m 12s");
        assert_eq!(span(Duration::from_secs(3 * 3600)), "3h");
        assert_eq!(span(Duration::from_secs(21 * 3600 + 300)), "21h 5m");
        assert_eq!(span(Duration::from_secs(86_400 + 7200)), "1d 2h");
        assert_eq!(run_text(Duration::from_millis(320)), "0.3s");
    }

    #[test]
    fn tokens_must_be_long_and_url_safe() {
        assert!(check_token("0123456789abcdef").is_ok());
        assert!(check_token("backup-2026_nightly.v1~x").is_ok());
        assert!(check_token("short").is_err());
        assert!(check_token("0123456789abcdef/x").is_err());
        assert!(check_token("0123456789abcdef x").is_err());
    }
}
