//! The `log` check: a log stream read continuously (a followed file, lines
//! posted to `/ingest/SOURCE`, or Fly's logs API) and counted into a sliding
//! window; each run reads the window: lines per minute, `error_rate_pct`,
//! `auth_failures_per_min` and the named patterns' counts. A critical line
//! (OOM, `Killed process`, …) is red at once: it wakes the check.
//!
//! This file owns the keys and the pure evaluation (window → sample);
//! [`feeds`] holds each check's intake, the sources ([`file`], [`ingest`],
//! [`flylogs`], started by [`sources`]) read lines, [`line`] and [`rules`]
//! read each line, and [`window`] counts them.

pub mod feeds;
pub mod file;
pub mod flylogs;
pub mod ingest;
pub mod line;
pub mod rules;
pub mod sources;
pub mod window;

pub use feeds::{Critical, Feed, Feeds, LogCheck, Reading, Source};
pub use rules::{Rules, Tally};
pub use window::{Counts, Window};

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use toml::Spanned;

use super::api::{self, Token};
use super::heartbeat::span;
use super::{BuildError, CheckDefaults, Context, Kind};
use crate::core::Metric;
use crate::core::Sample;
use crate::core::SpecProblem;
use crate::core::value::{HumanDuration, Pattern};

/// The window when `window` is not set.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);
/// The shortest window.
pub const MIN_WINDOW: Duration = Duration::from_secs(1);
/// Fly's logs API.
pub const DEFAULT_FLY_API_URL: &str = "https://api.fly.io";
/// The shortest ingest token: shorter ones can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;
/// The most named patterns a check counts.
pub const MAX_PATTERNS: usize = 32;
/// Value names a sample already uses: not available to named patterns.
const RESERVED: [&str; 7] = [
    "lines_per_min",
    "lines",
    "errors",
    "malformed",
    "criticals",
    "error_rate_pct",
    "auth_failures_per_min",
];

/// `[checks.NAME]` keys of kind `log`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub file: Option<Spanned<String>>,
    pub ingest: Option<Spanned<String>>,
    pub fly: Option<Spanned<String>>,
    /// The ingest source's token, or the Fly API token.
    pub token: Option<Spanned<Token>>,
    pub api_url: Option<Spanned<String>>,
    pub from_start: Option<Spanned<bool>>,
    pub window: Option<Spanned<HumanDuration>>,
    pub error_pattern: Option<Spanned<Pattern>>,
    pub critical_pattern: Option<Spanned<Pattern>>,
    #[serde(default)]
    pub patterns: BTreeMap<Spanned<String>, Spanned<Pattern>>,
}

impl Spec {
    pub fn window(&self) -> Duration {
        self.window
            .as_ref()
            .map_or(DEFAULT_WINDOW, |w| w.get_ref().0)
    }

    /// The source, for people: the file, the ingest path or the Fly app.
    pub fn target(&self) -> String {
        let source = if let Some(f) = &self.file {
            f.get_ref().clone()
        } else if let Some(s) = &self.ingest {
            format!("POST /ingest/{}", s.get_ref())
        } else if let Some(app) = &self.fly {
            format!("fly logs of {}", app.get_ref())
        } else {
            "no source".into()
        };
        format!("{source}, window {}", span(self.window()))
    }

    /// Problems found at load, each at its key's position.
    pub fn problems(&self) -> Vec<SpecProblem> {
        let mut out = Vec::new();
        let mut at = |key: &str, span: Option<Range<usize>>, message: String| {
            out.push(SpecProblem {
                key: key.into(),
                span,
                message,
            });
        };
        if let Some(source) = self.source_problems(&mut at) {
            self.paired_problems(source, &mut at);
        }
        self.value_problems(&mut at);
        out
    }

    /// The source keys: exactly one, and a usable value. Returns the one
    /// source set (with two, the keys that go with one are not judged).
    fn source_problems(&self, at: &mut Problems<'_>) -> Option<(&'static str, Range<usize>)> {
        let sources: Vec<(&'static str, Range<usize>)> = [
            ("file", self.file.as_ref().map(|s| s.span())),
            ("ingest", self.ingest.as_ref().map(|s| s.span())),
            ("fly", self.fly.as_ref().map(|s| s.span())),
        ]
        .into_iter()
        .filter_map(|(k, s)| s.map(|s| (k, s)))
        .collect();
        match sources.as_slice() {
            [] => at(
                "",
                None,
                "a log check needs one source: file = \"PATH\", ingest = \"SOURCE\" or fly = \"APP\"".into(),
            ),
            [_] => {}
            [(first, _), (second, span), ..] => at(
                second,
                Some(span.clone()),
                format!("set only one source: {first} and {second} are both set"),
            ),
        }
        if let Some(f) = &self.file
            && f.get_ref().trim().is_empty()
        {
            at("file", Some(f.span()), "must not be empty".into());
        }
        if let Some(s) = &self.ingest
            && let Err(e) = check_source_name(s.get_ref())
        {
            at("ingest", Some(s.span()), e);
        }
        if let Some(app) = &self.fly
            && let Err(e) = check_app(app.get_ref())
        {
            at("fly", Some(app.span()), e);
        }
        match sources.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        }
    }

    /// The keys that go with one kind of source: `token`, `api_url`, `from_start`.
    fn paired_problems(&self, (source, span): (&'static str, Range<usize>), at: &mut Problems<'_>) {
        match (&self.token, source) {
            (None, "ingest") => at(
                source,
                Some(span),
                "an ingest source needs token = \"…\": senders present it (Bearer or Basic auth)"
                    .into(),
            ),
            (None, "fly") => at(
                source,
                Some(span),
                "a fly source needs token = \"${FLY_API_TOKEN}\"".into(),
            ),
            (Some(t), "file") => at(
                "token",
                Some(t.span()),
                "token is for ingest and fly sources, not file".into(),
            ),
            (Some(t), "ingest") => {
                if let Err(e) = check_ingest_token(t.get_ref().expose()) {
                    at("token", Some(t.span()), e);
                }
            }
            (Some(t), _) => {
                if let Err(p) = t.get_ref().authorization() {
                    at("token", Some(t.span()), p.message);
                }
            }
            _ => {}
        }
        match &self.api_url {
            Some(u) if source != "fly" => at(
                "api_url",
                Some(u.span()),
                "api_url is for fly sources only".into(),
            ),
            Some(u) => {
                if let Err(p) = api::parse_url("api_url", u.get_ref()) {
                    at("api_url", Some(u.span()), p.message);
                }
            }
            None => {}
        }
        if let Some(f) = &self.from_start
            && source != "file"
        {
            at(
                "from_start",
                Some(f.span()),
                "from_start is for file sources only".into(),
            );
        }
    }

    /// The window and the patterns.
    fn value_problems(&self, at: &mut Problems<'_>) {
        if let Some(w) = &self.window
            && w.get_ref().0 < MIN_WINDOW
        {
            at(
                "window",
                Some(w.span()),
                "window must be at least 1s".into(),
            );
        }
        for (key, p) in [
            ("error_pattern", &self.error_pattern),
            ("critical_pattern", &self.critical_pattern),
        ] {
            if let Some(p) = p
                && p.get_ref().0.as_str().is_empty()
            {
                at(
                    key,
                    Some(p.span()),
                    "must not be empty (it would match every line)".into(),
                );
            }
        }
        if self.patterns.len() > MAX_PATTERNS {
            at(
                "patterns",
                None,
                format!("at most {MAX_PATTERNS} named patterns"),
            );
        }
        for (name, p) in &self.patterns {
            if let Err(e) = check_pattern_name(name.get_ref()) {
                at("patterns", Some(name.span()), e);
            }
            if p.get_ref().0.as_str().is_empty() {
                at("patterns", Some(p.span()), "must not be empty".into());
            }
        }
        if let Err(e) = self.rules() {
            at("patterns", None, e);
        }
    }

    /// The check's rules; fails only when the named patterns, each valid on
    /// its own, are too large together.
    fn rules(&self) -> Result<Rules, String> {
        Rules::new(
            self.error_pattern.as_ref().map(|p| p.get_ref().0.clone()),
            self.critical_pattern
                .as_ref()
                .map(|p| p.get_ref().0.clone()),
            self.patterns
                .iter()
                .map(|(n, p)| (n.get_ref().clone(), p.get_ref().0.clone()))
                .collect(),
        )
        .map_err(|e| format!("patterns: {e}"))
    }

    /// The source as the config sets it (its keys checked by
    /// [`Spec::problems`] at load).
    fn source(&self) -> Result<Source, BuildError> {
        let token = || {
            self.token
                .as_ref()
                .map(|t| t.get_ref().clone())
                .ok_or_else(|| BuildError("token: missing".into()))
        };
        match (&self.file, &self.ingest, &self.fly) {
            (Some(f), None, None) => Ok(Source::File {
                path: PathBuf::from(f.get_ref()),
                from_start: self.from_start.as_ref().is_some_and(|f| *f.get_ref()),
            }),
            (None, Some(s), None) => {
                let token = token()?;
                Ok(Source::Ingest {
                    source: s.get_ref().clone(),
                    token,
                })
            }
            (None, None, Some(app)) => {
                let token = token()?;
                let api_url = self
                    .api_url
                    .as_ref()
                    .map_or(DEFAULT_FLY_API_URL.to_string(), |u| u.get_ref().clone());
                Ok(Source::Fly {
                    app: app.get_ref().trim().to_string(),
                    token,
                    api_url,
                })
            }
            _ => Err(BuildError(
                "a log check needs exactly one of file, ingest and fly".into(),
            )),
        }
    }

    /// Compiles the rules and registers check `check`'s feed and source with `feeds`.
    pub fn build(&self, check: &str, feeds: &Feeds) -> Result<Probe, BuildError> {
        let source = self.source()?;
        let rules = self.rules().map_err(BuildError)?;
        let feed = Feed::new(rules, self.window());
        feeds.register(check.into(), source, feed.clone())?;
        Ok(Probe { feed })
    }
}

/// Where [`Spec::problems`]' parts report: key, position, message.
type Problems<'a> = dyn FnMut(&str, Option<Range<usize>>, String) + 'a;

impl Kind for Spec {
    const NAME: &'static str = "log";
    type Probe = Probe;
    /// A log check's samples are readings of a sliding window, already
    /// smoothed: the first bad one alerts (a critical line must page at
    /// once); two good ones resolve, so a rate hovering at a threshold does
    /// not flap.
    const CHECK_DEFAULTS: CheckDefaults = CheckDefaults {
        failures_before_alert: Some(1),
        successes_before_resolve: Some(2),
        ..CheckDefaults::NONE
    };

    fn target(&self) -> String {
        Spec::target(self)
    }

    fn problems(&self) -> Vec<SpecProblem> {
        Spec::problems(self)
    }

    /// Two checks cannot read one ingest source: each line would count twice.
    fn claims(&self) -> Vec<(&'static str, String)> {
        let ingest = self.ingest.as_ref().map(|s| s.get_ref().clone());
        ingest.map(|s| ("ingest", s)).into_iter().collect()
    }

    fn build(&self, check: &str, ctx: &Context) -> Result<Probe, BuildError> {
        Spec::build(self, check, &ctx.logs)
    }
}

fn check_source_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some(c) => Err(format!(
            "may hold only letters, digits, '-', '_' and '.' (it goes in the URL /ingest/SOURCE), not {c:?}"
        )),
        None => Ok(()),
    }
}

fn check_app(app: &str) -> Result<(), String> {
    let app = app.trim();
    if app.is_empty() || app.contains(['/', ' ', '?', '#']) {
        return Err(format!("{app:?} is not a Fly app name"));
    }
    Ok(())
}

fn check_ingest_token(token: &str) -> Result<(), String> {
    if token.chars().count() < MIN_TOKEN_LEN {
        return Err(format!(
            "must be at least {MIN_TOKEN_LEN} characters, so it cannot be guessed (is the environment variable it names set?)"
        ));
    }
    Ok(())
}

fn check_pattern_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        return Err(format!(
            "pattern name {name:?}: use letters, digits, '_' and '-' (it names a value of the sample)"
        ));
    }
    if RESERVED.contains(&name) {
        return Err(format!(
            "pattern name {name:?} is taken by a value every log sample has"
        ));
    }
    Ok(())
}

/// A built `log` check: reads its feed's window when run.
#[derive(Debug)]
pub struct Probe {
    feed: Feed,
}

impl Probe {
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    pub async fn run(&self, _deadline: tokio::time::Instant) -> Sample {
        evaluate(&self.feed.read(), Utc::now())
    }
}

/// The sample of a window's reading at `now`: red at `down_severity` when a
/// critical line arrived since the last run or is still in the window;
/// yellow when the source has a problem (a file that cannot be read);
/// otherwise the thresholds of `error_rate_pct` and `auth_failures_per_min` decide.
pub fn evaluate(r: &Reading, now: DateTime<Utc>) -> Sample {
    let c = &r.counts;
    let window = span(r.window);
    let minutes = c.covered.as_secs_f64().max(0.001) / 60.0;
    let lines_per_min = c.lines as f64 / minutes;
    let auth_per_min = c.auth_failures as f64 / minutes;
    let mut summary = if c.lines == 0 {
        format!("no lines in {window}")
    } else {
        let pct = c.errors as f64 * 100.0 / c.lines as f64;
        format!(
            "{} lines/min, {}% errors ({} in {window}), {} auth failures/min",
            rate(lines_per_min),
            percent(c.errors, pct),
            count(c.errors),
            rate(auth_per_min),
        )
    };
    if c.malformed > 0 {
        summary.push_str(&format!(", {} malformed", count(c.malformed)));
    }
    if !r.names.is_empty() {
        let named: Vec<String> = r
            .names
            .iter()
            .zip(&c.patterns)
            .map(|(name, n)| format!("{name}: {}", count(*n)))
            .collect();
        summary.push_str("; ");
        summary.push_str(&named.join(", "));
    }
    let mut sample = if let Some(critical) = &r.critical {
        let ago = span((now - critical.at).to_std().unwrap_or_default());
        Sample::down(format!(
            "critical line {ago} ago: \"{}\"; {summary}",
            critical.line
        ))
    } else if let Some(problem) = &r.problem {
        Sample::warn(format!("{problem}; {summary}"))
    } else {
        Sample::up(summary)
    };
    if c.lines > 0 {
        sample.metrics.push((
            Metric::ErrorRatePct,
            c.errors as f64 * 100.0 / c.lines as f64,
        ));
        sample
            .metrics
            .push((Metric::AuthFailuresPerMin, auth_per_min));
    }
    sample.values.extend([
        ("lines_per_min".to_string(), lines_per_min),
        ("lines".to_string(), c.lines as f64),
        ("errors".to_string(), c.errors as f64),
        ("malformed".to_string(), c.malformed as f64),
        ("criticals".to_string(), c.criticals as f64),
    ]);
    for (name, n) in r.names.iter().zip(&c.patterns) {
        sample.values.push((name.clone(), *n as f64));
    }
    sample
}

/// A count with thousands separators: `1,204`.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// A per-minute rate: whole numbers from 10 up, one decimal below.
fn rate(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v >= 10.0 {
        count(v.round() as u64)
    } else {
        format!("{v:.1}")
    }
}

fn percent(errors: u64, pct: f64) -> String {
    if errors == 0 {
        "0".into()
    } else if pct < 0.1 {
        format!("{pct:.2}")
    } else {
        format!("{pct:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Outcome;
    use crate::probe::log::{Counts, Critical};

    fn reading(lines: u64, errors: u64, auth: u64) -> Reading {
        Reading {
            counts: Counts {
                lines,
                errors,
                auth_failures: auth,
                criticals: 0,
                malformed: 0,
                patterns: vec![2],
                covered: Duration::from_secs(300),
            },
            window: Duration::from_secs(300),
            names: vec!["oom".into()],
            critical: None,
            problem: None,
        }
    }

    #[test]
    fn message_and_metrics_of_a_busy_window() {
        let s = evaluate(&reading(6020, 193, 0), Utc::now());
        assert_eq!(s.outcome, Outcome::Up);
        assert_eq!(
            s.message,
            "1,204 lines/min, 3.2% errors (193 in 5m), 0 auth failures/min; oom: 2"
        );
        assert_eq!(s.metric(Metric::AuthFailuresPerMin), Some(0.0));
        let pct = s.metric(Metric::ErrorRatePct).unwrap();
        assert!((pct - 3.206).abs() < 0.01, "{pct}");
        assert!(s.values.contains(&("oom".to_string(), 2.0)));
        assert!(s.values.contains(&("lines_per_min".to_string(), 1204.0)));
    }

    #[test]
    fn an_empty_window_has_no_error_rate() {
        let s = evaluate(&reading(0, 0, 0), Utc::now());
        assert_eq!(s.outcome, Outcome::Up);
        assert_eq!(s.message, "no lines in 5m; oom: 2");
        assert!(s.metrics.is_empty());
    }

    #[test]
    fn a_critical_line_is_down_with_the_line_and_a_problem_is_a_warning() {
        let now = Utc::now();
        let mut r = reading(12, 1, 50);
        r.counts.malformed = 3;
        r.critical = Some(Critical {
            line: "Out of memory: Killed process 1234 (app)".into(),
            at: now - chrono::Duration::seconds(4),
        });
        let s = evaluate(&r, now);
        assert_eq!(
            s.outcome,
            Outcome::Down(
                "critical line 4s ago: \"Out of memory: Killed process 1234 (app)\"; \
                 2.4 lines/min, 8.3% errors (1 in 5m), 10 auth failures/min, 3 malformed; oom: 2"
                    .into()
            )
        );
        r.critical = None;
        r.problem = Some("/var/log/app.log: permission denied".into());
        let s = evaluate(&r, now);
        assert!(
            matches!(&s.outcome, Outcome::Warn(w) if w.starts_with("/var/log/app.log: permission denied; 2.4 lines/min")),
            "{:?}",
            s.outcome
        );
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(rate(0.25), "0.2");
        assert_eq!(rate(12.6), "13");
        assert_eq!(percent(1, 0.05), "0.05");
    }

    fn spec(text: &str) -> Spec {
        toml::from_str(text).unwrap()
    }

    fn problems(text: &str) -> Vec<String> {
        spec(text)
            .problems()
            .into_iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect()
    }

    #[test]
    fn exactly_one_source_with_its_own_keys() {
        assert!(problems("file = \"/var/log/app.log\"").is_empty());
        assert!(problems("ingest = \"web\"\ntoken = \"0123456789abcdef\"").is_empty());
        assert!(
            problems("fly = \"my-app\"\ntoken = \"fm2_x\"\napi_url = \"http://127.0.0.1:1\"")
                .is_empty()
        );
        assert_eq!(
            problems("window = \"1m\""),
            [
                ": a log check needs one source: file = \"PATH\", ingest = \"SOURCE\" or fly = \"APP\""
            ]
        );
        assert_eq!(
            problems("file = \"/a\"\nfly = \"app\"\ntoken = \"x\""),
            ["fly: set only one source: file and fly are both set"]
        );
        assert_eq!(
            problems("ingest = \"web\""),
            [
                "ingest: an ingest source needs token = \"…\": senders present it (Bearer or Basic auth)"
            ]
        );
        assert!(
            problems("ingest = \"web\"\ntoken = \"short\"")[0]
                .starts_with("token: must be at least 16")
        );
        assert!(
            problems("ingest = \"a/b\"\ntoken = \"0123456789abcdef\"")[0]
                .starts_with("ingest: may hold only")
        );
        assert_eq!(
            problems("file = \"/a\"\napi_url = \"http://x\"\nwindow = \"500ms\""),
            [
                "api_url: api_url is for fly sources only",
                "window: window must be at least 1s"
            ]
        );
        assert_eq!(
            problems("fly = \"app\"\ntoken = \"t\"\nfrom_start = true"),
            ["from_start: from_start is for file sources only"]
        );
    }

    #[test]
    fn pattern_names_and_empty_patterns_are_checked() {
        assert!(
            problems("file = \"/a\"\npatterns = { oom = \"OOM\", slow-query = \"took\" }")
                .is_empty()
        );
        let p = problems(
            "file = \"/a\"\npatterns = { lines = \"x\", \"a b\" = \"y\", e = \"\" }\nerror_pattern = \"\"",
        );
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p.iter().any(|m| m.contains("\"lines\" is taken")), "{p:?}");
        assert!(
            p.iter().any(|m| m.contains("\"a b\": use letters")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|m| m.starts_with("error_pattern: must not be empty")),
            "{p:?}"
        );
    }

    #[test]
    fn build_registers_the_feed_under_the_check() {
        let feeds = Feeds::default();
        let s = spec(
            "file = \"/var/log/app.log\"\nfrom_start = true\nwindow = \"1m\"\npatterns = { slow = \"took [0-9]{4}ms\" }",
        );
        assert_eq!(s.target(), "/var/log/app.log, window 1m");
        let probe = s.build("app", &feeds).unwrap();
        let all = feeds.all();
        assert_eq!(all.len(), 1);
        assert!(matches!(
            &all[0].source,
            Source::File {
                from_start: true,
                ..
            }
        ));
        all[0].feed.lines(["took 2000ms", "ERROR x"]);
        let r = probe.feed().read();
        assert_eq!(
            (r.counts.lines, r.counts.errors, r.counts.patterns.clone()),
            (2, 1, vec![1])
        );
        assert_eq!(r.window, Duration::from_secs(60));
    }
}
