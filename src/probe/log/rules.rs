//! A log check's rules, applied to each line: is it an error, an auth
//! failure, a critical line (red at once), and which named patterns match.
//! Lines are counted into a [`Tally`]; nothing is allocated per line unless
//! it is critical (its text is kept) or a named pattern matches.
//!
//! The default rules (each replaced by the check's own regex when set):
//! - error: a JSON line's level is error / fatal / critical; else an HTTP
//!   status of 5xx (a JSON status field, or an access log line's status);
//!   else the text says `ERROR`, `FATAL` or `CRITICAL` as a word,
//!   `Traceback`, `[error]` / `[crit]` / `[alert]` / `[emerg]` (nginx's error
//!   log), or `level=error` (logfmt). A critical line is an error too.
//! - critical: `OOM` (also `OOMKilled`), `oom-kill`, `out of memory` in any
//!   case, `MemoryError`, `Killed process`.
//! - auth failure: HTTP status 401 or 403 (JSON status or access log).
//!
//! Patterns are matched against the line's text: a JSON object's message
//! (the whole object when it has none), or the whole line.

use std::sync::LazyLock;

use regex::{Regex, RegexSet};

use super::line::{self, Line};

/// The default `critical_pattern`.
pub const DEFAULT_CRITICAL: &str =
    r"(?-u:\b)(?:OOM|oom-kill)|(?i:out of memory)|MemoryError|Killed process";

/// The text half of the default error rule (levels and statuses come first).
pub const DEFAULT_ERROR_TEXT: &str = concat!(
    r"(?-u:\b)(?:ERROR|FATAL|CRITICAL)(?-u:\b)|Traceback|\[(?:error|crit|alert|emerg)\]",
    r#"|(?-u:\b)(?:level|lvl|severity)="?(?i:error|err|fatal|critical|crit|panic|emerg)(?-u:\b)"#,
);

/// How much of a critical line a message quotes, in bytes (about as many characters).
pub const EXCERPT: usize = 200;

static CRITICAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(DEFAULT_CRITICAL).expect("the default critical pattern compiles"));
static ERROR_TEXT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(DEFAULT_ERROR_TEXT).expect("the default error pattern compiles"));

/// The rules of one log check, compiled.
#[derive(Clone, Debug)]
pub struct Rules {
    /// `error_pattern`; `None`: the default rule.
    error: Option<Regex>,
    critical: Regex,
    patterns: Option<RegexSet>,
    names: Vec<String>,
}

/// What a batch of lines added up to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    pub lines: u64,
    pub errors: u64,
    pub auth_failures: u64,
    pub criticals: u64,
    /// Lines a source could not read (counted by the source, not here).
    pub malformed: u64,
    /// Per named pattern, in the order of [`Rules::names`].
    pub patterns: Vec<u64>,
    /// The last critical line of the batch, cut to about [`EXCERPT`] characters around the match.
    pub last_critical: Option<String>,
}

impl Tally {
    /// An empty tally for rules with `patterns` named patterns.
    pub fn new(patterns: usize) -> Tally {
        Tally {
            patterns: vec![0; patterns],
            ..Tally::default()
        }
    }
}

impl Default for Rules {
    fn default() -> Rules {
        Rules::new(None, None, Vec::new()).expect("no patterns: nothing to fail")
    }
}

impl Rules {
    /// The check's rules: its own `error_pattern` and `critical_pattern`
    /// replace the defaults; `patterns` are counted by name.
    pub fn new(
        error: Option<Regex>,
        critical: Option<Regex>,
        patterns: Vec<(String, Regex)>,
    ) -> Result<Rules, regex::Error> {
        let set = if patterns.is_empty() {
            None
        } else {
            Some(RegexSet::new(patterns.iter().map(|(_, r)| r.as_str()))?)
        };
        Ok(Rules {
            error,
            critical: critical.unwrap_or_else(|| CRITICAL.clone()),
            patterns: set,
            names: patterns.into_iter().map(|(n, _)| n).collect(),
        })
    }

    /// The named patterns, in the order their counts are kept.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Reads one raw line (cut to 64 KiB) and counts it into `tally`.
    pub fn scan(&self, raw: &str, tally: &mut Tally) {
        let line = line::read(line::truncate(raw));
        tally.lines += 1;
        let text: &str = &line.text;
        let critical = self.critical.find(text);
        if let Some(m) = &critical {
            tally.criticals += 1;
            tally.last_critical = Some(excerpt(text, m.start(), m.end()));
        }
        if critical.is_some() || self.is_error(&line) {
            tally.errors += 1;
        }
        if matches!(line.status, Some(401 | 403)) {
            tally.auth_failures += 1;
        }
        if let Some(set) = &self.patterns
            && set.is_match(text)
        {
            for i in set.matches(text).iter() {
                tally.patterns[i] += 1;
            }
        }
    }

    fn is_error(&self, line: &Line<'_>) -> bool {
        if let Some(own) = &self.error {
            return own.is_match(&line.text);
        }
        let status_5xx = line.status.is_some_and(|s| (500..600).contains(&s));
        match (line.level, line.status) {
            (Some(level), _) => level.is_error() || status_5xx,
            (None, Some(_)) => status_5xx,
            (None, None) => ERROR_TEXT.is_match(&line.text),
        }
    }
}

/// About [`EXCERPT`] bytes of `text` around the match at `start..end`, on
/// one line (control characters become spaces), `…` where it was cut.
pub fn excerpt(text: &str, start: usize, end: usize) -> String {
    let (from, to) = if text.len() <= EXCERPT {
        (0, text.len())
    } else {
        // Some context before the match, the rest after it.
        let before = (EXCERPT / 4).min(start);
        let from = floor(text, start - before);
        let to = floor(
            text,
            (from + EXCERPT)
                .max(end.min(from + 2 * EXCERPT))
                .min(text.len()),
        );
        (from, to)
    };
    let mut out = String::with_capacity(to - from + 8);
    if from > 0 {
        out.push('…');
    }
    out.extend(
        text[from..to]
            .trim()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c }),
    );
    if to < text.len() {
        out.push('…');
    }
    out
}

fn floor(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(rules: &Rules, lines: &[&str]) -> Tally {
        let mut t = Tally::new(rules.names().len());
        for l in lines {
            rules.scan(l, &mut t);
        }
        t
    }

    fn is_error(line: &str) -> bool {
        tally(&Rules::default(), &[line]).errors == 1
    }

    #[test]
    fn default_errors() {
        for line in [
            r#"{"level":"error","msg":"payment failed"}"#,
            r#"{"level":"fatal","msg":"cannot start"}"#,
            r#"{"severity":"critical","message":"x"}"#,
            r#"{"level":"info","message":"GET /x","status":503}"#,
            r#"{"log":{"level":"error"},"message":"boom"}"#,
            r#"10.0.0.1 - - [27/Nov/2026:08:00:00 +0000] "GET /api HTTP/1.1" 500 12 "-" "curl/8""#,
            "2026-11-27 08:00:00,123 ERROR app.payments: card declined",
            "Traceback (most recent call last):",
            "2026/11/27 08:00:00 [error] 31#31: *1 connect() failed (111: Connection refused)",
            r#"time=2026-11-27T08:00:00Z level=error msg="db timeout""#,
            r#"ts=1 level="ERROR" msg=x"#,
            "CRITICAL: disk full",
            // Critical lines are errors too.
            "Out of memory: Killed process 1234 (app)",
        ] {
            assert!(is_error(line), "should be an error: {line}");
        }
    }

    #[test]
    fn default_non_errors() {
        for line in [
            r#"{"level":"info","msg":"ERROR budget report sent"}"#,
            r#"{"level":"warn","msg":"retrying"}"#,
            r#"{"level":"info","message":"GET /x","status":404}"#,
            r#"10.0.0.1 - - [27/Nov/2026:08:00:00 +0000] "GET /ERROR HTTP/1.1" 200 12 "-" "curl/8""#,
            r#"10.0.0.1 - - [27/Nov/2026:08:00:00 +0000] "POST /login HTTP/1.1" 401 12 "-" "curl/8""#,
            "2026-11-27 08:00:00 INFO started in 2s",
            "no errors found",
            "MyERRORS are words",
            "level=info msg=\"error count 0\"",
            "TERRORIST is not ERRORish",
        ] {
            assert!(!is_error(line), "should not be an error: {line}");
        }
    }

    #[test]
    fn default_criticals() {
        let rules = Rules::default();
        for line in [
            "Out of memory: Killed process 1234 (app) total-vm:1000kB",
            "[ 123.4] app invoked oom-killer: gfp_mask=0x100cca",
            "container app OOMKilled",
            "fatal error: runtime: out of memory",
            "java.lang.OutOfMemoryError: Java heap space OUT OF MEMORY",
            r#"{"level":"error","message":"MemoryError"}"#,
            "OOM: restarting",
        ] {
            let t = tally(&rules, &[line]);
            assert_eq!(t.criticals, 1, "should be critical: {line}");
            assert!(t.last_critical.is_some());
        }
        for line in [
            "BOOM headshot",
            "ROOMS available: 3",
            "memory usage 40%",
            "killed the process gracefully",
            r#"{"level":"info","message":"room booked"}"#,
        ] {
            assert_eq!(tally(&rules, &[line]).criticals, 0, "not critical: {line}");
        }
    }

    #[test]
    fn auth_failures_are_401_and_403() {
        let t = tally(
            &Rules::default(),
            &[
                r#"1.2.3.4 - - [x] "POST /login HTTP/1.1" 401 0 "-" "-""#,
                r#"1.2.3.4 - - [x] "GET /admin HTTP/1.1" 403 0 "-" "-""#,
                r#"1.2.3.4 - - [x] "GET / HTTP/1.1" 404 0 "-" "-""#,
                r#"{"message":"denied","meta":{"http":{"response":{"status_code":401}}}}"#,
                "401 unauthorized in plain words",
            ],
        );
        assert_eq!((t.lines, t.auth_failures, t.errors), (5, 3, 0));
    }

    #[test]
    fn own_patterns_replace_the_defaults_and_named_ones_are_counted() {
        let rules = Rules::new(
            Some(Regex::new("payment failed").unwrap()),
            Some(Regex::new("^PANIC").unwrap()),
            vec![
                ("slow".into(), Regex::new(r"took \d{4,}ms").unwrap()),
                ("retry".into(), Regex::new("(?i)retry").unwrap()),
            ],
        )
        .unwrap();
        let t = tally(
            &rules,
            &[
                r#"{"level":"info","msg":"payment failed for 42"}"#,
                r#"{"level":"error","msg":"something else"}"#,
                "Out of memory: Killed process 1",
                "PANIC: the tests are on fire",
                "query took 2300ms, RETRY scheduled",
                "query took 12ms",
            ],
        );
        assert_eq!(t.lines, 6);
        assert_eq!(t.errors, 2, "payment failed, and the critical PANIC");
        assert_eq!(t.criticals, 1);
        assert_eq!(
            t.last_critical.as_deref(),
            Some("PANIC: the tests are on fire")
        );
        assert_eq!(t.patterns, vec![1, 1]);
    }

    #[test]
    fn long_lines_are_cut_before_reading() {
        let rules = Rules::default();
        let hidden = format!("{}OOM", "x".repeat(line::MAX_LINE));
        assert_eq!(tally(&rules, &[&hidden]).criticals, 0);
        let seen = format!("{}OOM{}", "x ".repeat(1000), "y".repeat(line::MAX_LINE));
        let t = tally(&rules, &[&seen]);
        assert_eq!((t.lines, t.criticals), (1, 1));
        let quoted = t.last_critical.unwrap();
        assert!(quoted.contains("OOM"), "{quoted}");
        assert!(quoted.starts_with('…') && quoted.ends_with('…'), "{quoted}");
        assert!(quoted.len() < EXCERPT + 16, "{}", quoted.len());
    }

    #[test]
    fn excerpts_stay_on_one_line() {
        assert_eq!(excerpt("a\nb\tc", 0, 1), "a b c");
        let text = format!("{}MemoryError{}", "é".repeat(300), "z".repeat(300));
        let start = text.find("MemoryError").unwrap();
        let e = excerpt(&text, start, start + 11);
        assert!(e.contains("MemoryError"));
    }
}
