//! Log streams: what a `log` check reads and how it counts it. Sources (a
//! followed file, [`ingest`] bodies posted to keeper, Fly's logs API polled by
//! [`flylogs`]) hand raw lines to the check's [`Feed`]; the feed reads each line against
//! the check's [`rules`] and adds it to a sliding [`window`] of counters; the
//! check's probe (`probe/log.rs`) reads the window on each run.
//!
//! [`Feeds`] holds every log check's feed and source by check name, for
//! `app` to connect sources to them. Made with the scheduler's wakes (in the
//! daemon), so each feed gets its check's wake-up handle when it registers.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::core::CheckName;
use crate::probe::BuildError;
use crate::probe::api::Token;
use crate::probe::wake::{Wake, Wakes};

use super::rules::{Rules, Tally};
use super::window::{Counts, Window};

/// A log check's intake, cheap to clone, `Send + Sync`; sources call it from any task.
#[derive(Clone)]
pub struct Feed {
    inner: Arc<Inner>,
}

struct Inner {
    rules: Rules,
    state: Mutex<State>,
    /// Runs the check now; set when the feed registers with [`Feeds`] in the
    /// daemon (a feed is made before its check's name is known to it).
    wake: OnceLock<Wake>,
}

struct State {
    window: Window,
    /// The latest critical line, kept after it leaves the window.
    last_critical: Option<Critical>,
    /// A critical line arrived since the probe last looked.
    unseen_critical: bool,
    /// What is wrong with the source, if anything (a file that cannot be read).
    problem: Option<String>,
}

/// A critical line and when it was read.
#[derive(Clone, Debug, PartialEq)]
pub struct Critical {
    /// About 200 characters of the line around the match.
    pub line: String,
    pub at: DateTime<Utc>,
}

/// What the probe reads from a feed on each run.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub counts: Counts,
    pub window: Duration,
    /// The named patterns, in the order of `counts.patterns`.
    pub names: Vec<String>,
    /// The latest critical line, when one arrived since the last reading or
    /// is still in the window.
    pub critical: Option<Critical>,
    pub problem: Option<String>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("rules", &self.inner.rules)
            .finish_non_exhaustive()
    }
}

impl Feed {
    /// A feed counting over `window` with `rules`, its window opened now.
    pub fn new(rules: Rules, window: Duration) -> Feed {
        let patterns = rules.names().len();
        Feed {
            inner: Arc::new(Inner {
                rules,
                state: Mutex::new(State {
                    window: Window::new(window, patterns, Instant::now()),
                    last_critical: None,
                    unseen_critical: false,
                    problem: None,
                }),
                wake: OnceLock::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lines from a source, in order (raw text; JSON objects as their text).
    /// Blank lines are skipped. A critical line wakes the check's probe.
    pub fn lines<I: IntoIterator<Item = S>, S: AsRef<str>>(&self, lines: I) {
        let rules = &self.inner.rules;
        let mut tally = Tally::new(rules.names().len());
        for line in lines {
            let line = line.as_ref();
            if line.trim_ascii().is_empty() {
                continue;
            }
            rules.scan(line, &mut tally);
        }
        if tally.lines > 0 {
            self.add(tally);
        }
    }

    /// Lines a source received but could not read (counted, shown in the sample).
    pub fn malformed(&self, n: usize) {
        if n > 0 {
            self.add(Tally {
                malformed: n as u64,
                patterns: vec![0; self.inner.rules.names().len()],
                ..Tally::default()
            });
        }
    }

    /// What is wrong with the source (`None`: nothing any more), shown in the
    /// check's sample until cleared.
    pub fn problem(&self, problem: Option<String>) {
        self.state().problem = problem;
    }

    fn add(&self, mut tally: Tally) {
        let wake = {
            let mut state = self.state();
            state.window.add(Instant::now(), &tally);
            match tally.last_critical.take() {
                Some(line) => {
                    state.last_critical = Some(Critical {
                        line,
                        at: Utc::now(),
                    });
                    !std::mem::replace(&mut state.unseen_critical, true)
                }
                None => false,
            }
        };
        if wake && let Some(handle) = self.inner.wake.get() {
            handle.wake();
        }
    }

    /// The window as it is now; a critical line counts as seen from here on.
    pub fn read(&self) -> Reading {
        let mut state = self.state();
        let counts = state.window.sum(Instant::now());
        let unseen = std::mem::replace(&mut state.unseen_critical, false);
        let critical = if unseen || counts.criticals > 0 {
            state.last_critical.clone()
        } else {
            None
        };
        Reading {
            window: state.window.len(),
            names: self.inner.rules.names().to_vec(),
            critical,
            problem: state.problem.clone(),
            counts,
        }
    }

    /// Bytes the window's counters take: fixed when the feed is made.
    pub fn footprint(&self) -> usize {
        self.state().window.footprint()
    }
}

/// Where a log check's lines come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// `file = "PATH"`: followed like `tail -F` (see [`file`]).
    File { path: PathBuf, from_start: bool },
    /// `ingest = "SOURCE"`: lines posted to `/ingest/SOURCE` with `token`.
    Ingest { source: String, token: Token },
    /// `fly = "APP"`: Fly's logs API at `api_url`.
    Fly {
        app: String,
        token: Token,
        api_url: String,
    },
}

/// A log check as [`Feeds`] holds it.
#[derive(Clone, Debug)]
pub struct LogCheck {
    pub check: CheckName,
    pub source: Source,
    pub feed: Feed,
}

/// Every log check of one keeper, by check name. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Feeds {
    checks: Arc<Mutex<Vec<LogCheck>>>,
    /// The scheduler's wakes; `None` outside the daemon.
    wakes: Option<Wakes>,
}

impl Feeds {
    /// Feeds whose critical lines wake their checks through `wakes`.
    pub fn new(wakes: Wakes) -> Feeds {
        Feeds {
            checks: Arc::default(),
            wakes: Some(wakes),
        }
    }

    fn checks(&self) -> MutexGuard<'_, Vec<LogCheck>> {
        self.checks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a log check; two checks cannot share an ingest source.
    pub fn register(&self, check: CheckName, source: Source, feed: Feed) -> Result<(), BuildError> {
        let mut checks = self.checks();
        if let Source::Ingest { source: name, .. } = &source
            && let Some(other) = checks
                .iter()
                .find(|c| matches!(&c.source, Source::Ingest { source: s, .. } if s == name))
        {
            return Err(BuildError(format!(
                "ingest: source {name:?} is already the source of checks.{}; each needs its own",
                other.check
            )));
        }
        if let Some(wake) = self.wakes.as_ref().and_then(|w| w.of(&check)) {
            let _ = feed.inner.wake.set(wake);
        }
        checks.retain(|c| c.check != check);
        checks.push(LogCheck {
            check,
            source,
            feed,
        });
        Ok(())
    }

    /// Every log check, in the order they were built.
    pub fn all(&self) -> Vec<LogCheck> {
        self.checks().clone()
    }

    /// The feed of check `check`.
    pub fn feed(&self, check: &str) -> Option<Feed> {
        self.checks()
            .iter()
            .find(|c| &*c.check == check)
            .map(|c| c.feed.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_counts_lines_and_shows_a_critical_once_it_left_the_window() {
        let feed = Feed::new(Rules::default(), Duration::from_secs(300));
        feed.lines([
            "{\"level\":\"info\",\"msg\":\"ok\"}",
            "",
            "   ",
            "ERROR boom",
        ]);
        feed.malformed(2);
        let r = feed.read();
        assert_eq!(
            (r.counts.lines, r.counts.errors, r.counts.malformed),
            (2, 1, 2)
        );
        assert_eq!(r.critical, None);

        feed.lines(vec!["Out of memory: Killed process 1234 (app)".to_string()]);
        let r = feed.read();
        let critical = r.critical.expect("the critical line");
        assert_eq!(critical.line, "Out of memory: Killed process 1234 (app)");
        // Still in the window: still shown.
        assert!(feed.read().critical.is_some());
    }

    #[test]
    fn an_unseen_critical_is_shown_even_after_the_window() {
        let feed = Feed::new(Rules::default(), Duration::from_millis(100));
        feed.lines(["OOM"]);
        let left = Instant::now() + Duration::from_millis(300);
        while Instant::now() < left {
            std::thread::yield_now();
        }
        let r = feed.read();
        assert_eq!(r.counts.criticals, 0, "out of the window");
        assert!(r.critical.is_some(), "but not yet seen");
        assert!(feed.read().critical.is_none(), "seen now");
    }

    #[test]
    fn a_million_lines_leave_the_feed_the_same_size() {
        let feed = Feed::new(Rules::default(), Duration::from_secs(300));
        let before = feed.footprint();
        let batch: Vec<String> = (0..1000)
            .map(|i| format!("{{\"level\":\"info\",\"msg\":\"request {i} done\"}}"))
            .collect();
        for _ in 0..1000 {
            feed.lines(&batch);
        }
        assert_eq!(feed.footprint(), before);
        assert_eq!(feed.read().counts.lines, 1_000_000);
    }

    #[test]
    fn ingest_sources_are_not_shared() {
        let feeds = Feeds::default();
        let token: Token = serde_json::from_str("\"0123456789abcdef\"").unwrap();
        let ingest = |s: &str| Source::Ingest {
            source: s.into(),
            token: token.clone(),
        };
        let feed = || Feed::new(Rules::default(), Duration::from_secs(60));
        feeds.register("a".into(), ingest("web"), feed()).unwrap();
        let err = feeds
            .register("b".into(), ingest("web"), feed())
            .unwrap_err();
        assert!(err.0.contains("checks.a"), "{err}");
        feeds
            .register("c".into(), ingest("worker"), feed())
            .unwrap();
        assert_eq!(feeds.all().len(), 2);
        assert!(feeds.feed("c").is_some());
    }
}
