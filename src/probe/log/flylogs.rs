//! Fly.io's logs API as a log source (`../shared/reference/external-apis.md`
//! §2a): polls `GET {api_url}/api/v1/apps/{app}/logs?next_token=…` as
//! `flyctl logs` does and hands each entry's `attributes` to the sink as one
//! JSON line, so `message`, `level` and `meta.http.response.status_code`
//! reach the `log` check's rules.
//!
//! Pacing: after a page of entries it polls again at once; after an empty
//! page it waits 64 ms, doubling up to 4.096 s (or the configured poll
//! interval); after a 429 it waits as `Retry-After` says; after a network
//! error, a 5xx or an answer that does not decode it backs off from 0.5 s
//! doubling to 60 s; a 401, 403 or 404 is retried once a minute. Every
//! failure is kept in [`Status`] (what, since when, how many in a row) for
//! the probe to show. Decoding an answer is `flylogs/page.rs`; lines, rules
//! and samples are not this file's business.

/// Public for the fuzz target `fly_logs`.
#[doc(hidden)]
pub mod page;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::StatusCode;
use http::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use url::Url;

use self::page::{Page, parse_page, timestamp};
use super::ingest::LineSink;
use crate::probe::api::{self, Token};
use crate::probe::{BuildError, tlsconf};

/// Where Fly's logs API lives unless `api_url` says otherwise.
pub const DEFAULT_API_URL: &str = "https://api.fly.io";
/// The longest one poll may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the poller needs from the `log` check's config.
#[derive(Clone, Debug)]
pub struct Options {
    pub app: String,
    /// Sent as flyctl sends it: see [`Token::authorization`].
    pub token: Token,
    /// [`DEFAULT_API_URL`] unless set (tests point it at loopback).
    pub api_url: String,
    /// Only this region's entries (`region=` filter), if set.
    pub region: Option<String>,
    /// Only this machine's entries (`instance=` filter), if set.
    pub instance: Option<String>,
    /// Deliver the entries the API still holds from before keeper started;
    /// when false they are skipped by their timestamp, as a followed file
    /// starts at its end.
    pub from_start: bool,
    pub pacing: Pacing,
}

impl Options {
    /// Options for `app` with the defaults: Fly's API, no filters, new entries only.
    pub fn new(app: impl Into<String>, token: Token) -> Options {
        Options {
            app: app.into(),
            token,
            api_url: DEFAULT_API_URL.to_string(),
            region: None,
            instance: None,
            from_start: false,
            pacing: Pacing::default(),
        }
    }

    /// The URL polled, for `describe` and messages (no token in it).
    pub fn target(&self) -> String {
        format!(
            "{}/api/v1/apps/{}/logs",
            self.api_url.trim_end_matches('/'),
            self.app
        )
    }
}

/// How long the poller waits between requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// The first wait after an empty page (64 ms, as flyctl).
    pub idle_min: Duration,
    /// The longest wait while pages stay empty: the poll interval of a quiet app (4.096 s).
    pub idle_max: Duration,
    /// The first wait after a failure (0.5 s).
    pub error_min: Duration,
    /// The longest wait after failures in a row, and the wait after a 401/403/404 (60 s).
    pub error_max: Duration,
    /// The most of a `Retry-After` obeyed (10 min).
    pub retry_after_max: Duration,
}

impl Default for Pacing {
    fn default() -> Pacing {
        Pacing {
            idle_min: Duration::from_millis(64),
            idle_max: Duration::from_millis(4096),
            error_min: Duration::from_millis(500),
            error_max: Duration::from_secs(60),
            retry_after_max: Duration::from_secs(600),
        }
    }
}

/// What one poll did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A page with entries: `lines` delivered, `malformed` entries skipped,
    /// `skipped` entries older than the start (see [`Options::from_start`]).
    Page {
        lines: usize,
        malformed: usize,
        skipped: usize,
    },
    /// Nothing new.
    Empty,
    /// 429: wait `retry_after` if the API said how long.
    Throttled { retry_after: Option<Duration> },
    /// 401, 403 or 404: the token or the app name is wrong; retried slowly.
    Refused { reason: String },
    /// A network error, a timeout, an unexpected status or an undecodable answer.
    Failed { reason: String },
}

/// The waits between polls as a pure state machine over [`Step`]s.
#[derive(Clone, Debug)]
pub struct Backoff {
    pacing: Pacing,
    idle: Duration,
    error: Duration,
}

impl Backoff {
    pub fn new(pacing: Pacing) -> Backoff {
        Backoff {
            pacing,
            idle: pacing.idle_min,
            error: pacing.error_min,
        }
    }

    /// How long to wait after `step` before the next poll.
    pub fn after(&mut self, step: &Step) -> Duration {
        let p = self.pacing;
        match step {
            Step::Page { .. } => {
                self.idle = p.idle_min;
                self.error = p.error_min;
                Duration::ZERO
            }
            Step::Empty => {
                self.error = p.error_min;
                let wait = self.idle;
                self.idle = (self.idle * 2).min(p.idle_max);
                wait
            }
            Step::Throttled {
                retry_after: Some(wait),
            } => (*wait).min(p.retry_after_max),
            Step::Throttled { retry_after: None } | Step::Failed { .. } => {
                let wait = self.error;
                self.error = (self.error * 2).min(p.error_max);
                wait
            }
            Step::Refused { .. } => p.error_max,
        }
    }
}

/// The poller's health, shared with whoever shows it. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Status {
    inner: Arc<Mutex<Health>>,
}

/// A snapshot of [`Status`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// When the API last answered with a page (empty or not).
    pub last_ok: Option<DateTime<Utc>>,
    /// What has gone wrong since the last good answer, if anything.
    pub failing: Option<Failing>,
    /// Lines delivered since the start.
    pub lines: u64,
}

/// The failure in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failing {
    /// The latest failure, for people: `Fly logs API: HTTP 503 Service Unavailable`.
    pub reason: String,
    /// When the first failure in this row happened.
    pub since: DateTime<Utc>,
    /// Failures in a row.
    pub attempts: u32,
}

impl Status {
    pub fn snapshot(&self) -> Health {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Health> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn ok(&self, lines: usize) {
        let mut health = self.lock();
        health.last_ok = Some(Utc::now());
        health.failing = None;
        health.lines += lines as u64;
    }

    fn failed(&self, reason: String) {
        let mut health = self.lock();
        match &mut health.failing {
            Some(failing) => {
                failing.reason = reason;
                failing.attempts += 1;
            }
            None => {
                health.failing = Some(Failing {
                    reason,
                    since: Utc::now(),
                    attempts: 1,
                })
            }
        }
    }
}

/// A built poller for one app: the URL, the header and the client, made once.
#[derive(Debug)]
pub struct Poller {
    app: String,
    url: Url,
    authorization: HeaderValue,
    token: Token,
    client: reqwest::Client,
    /// The last non-empty `next_token` (empty before the first page).
    next_token: String,
    /// Entries older than this are skipped (unless `from_start`).
    skip_before: Option<DateTime<Utc>>,
    backoff: Backoff,
    status: Status,
}

impl Poller {
    pub fn new(options: &Options, roots: &tlsconf::Roots) -> Result<Poller, BuildError> {
        let app = options.app.trim();
        if app.is_empty() || app.contains(['/', ' ']) {
            return Err(BuildError(format!(
                "fly {:?}: not a Fly app name",
                options.app
            )));
        }
        let p = options.pacing;
        if p.idle_min.is_zero() || p.idle_min > p.idle_max || p.error_min > p.error_max {
            return Err(BuildError(format!(
                "poll interval {:?}: shorter than the first wait of {:?}",
                p.idle_max, p.idle_min
            )));
        }
        let base = api::parse_url("api_url", &options.api_url)?;
        let mut url = api::join(&base, &["api", "v1", "apps", app, "logs"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(region) = &options.region {
                query.append_pair("region", region);
            }
            if let Some(instance) = &options.instance {
                query.append_pair("instance", instance);
            }
        }
        Ok(Poller {
            app: app.to_string(),
            url,
            authorization: options.token.authorization()?,
            token: options.token.clone(),
            client: api::client(roots)?,
            next_token: String::new(),
            skip_before: (!options.from_start).then(Utc::now),
            backoff: Backoff::new(options.pacing),
            status: Status::default(),
        })
    }

    /// The poller's health, to show in samples.
    pub fn status(&self) -> Status {
        self.status.clone()
    }

    /// Polls until `shutdown`, delivering every page's lines to `sink`.
    pub async fn run(mut self, sink: LineSink, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let step = tokio::select! {
                _ = shutdown.cancelled() => return,
                step = self.step(&sink) => step,
            };
            let wait = self.backoff.after(&step);
            match &step {
                Step::Refused { reason } | Step::Failed { reason } => {
                    tracing::warn!(app = %self.app, retry_in = ?wait, "{reason}");
                }
                Step::Throttled { .. } => {
                    tracing::debug!(app = %self.app, retry_in = ?wait, "Fly logs API: rate limited");
                }
                Step::Page { .. } | Step::Empty => {}
            }
            if !wait.is_zero() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    /// One poll: fetch the page after the last token, deliver its lines,
    /// keep its token, and record the outcome in [`Status`].
    pub async fn step(&mut self, sink: &LineSink) -> Step {
        let step = self.poll(sink).await;
        match &step {
            Step::Page { lines, .. } => self.status.ok(*lines),
            Step::Empty => self.status.ok(0),
            Step::Throttled { retry_after } => self.status.failed(match retry_after {
                Some(wait) => format!(
                    "Fly logs API: rate limited (HTTP 429), asked to wait {}",
                    humantime::format_duration(*wait)
                ),
                None => "Fly logs API: rate limited (HTTP 429)".to_string(),
            }),
            Step::Refused { reason } | Step::Failed { reason } => {
                self.status.failed(reason.clone())
            }
        }
        step
    }

    async fn poll(&mut self, sink: &LineSink) -> Step {
        let reply = match self.fetch().await {
            Ok(reply) => reply,
            Err(step) => return step,
        };
        let mut page = match parse_page(&reply.body) {
            Ok(page) => page,
            Err(e) => {
                return Step::Failed {
                    reason: format!("Fly logs API: {e}"),
                };
            }
        };
        if let Some(token) = page.next_token.take().filter(|t| !t.is_empty()) {
            self.next_token = token;
        }
        if page.entries.is_empty() && page.malformed == 0 {
            return Step::Empty;
        }
        self.deliver(page, sink)
    }

    /// GETs the page after the last token: the reply when it is a 200, else
    /// the step it makes (failed, refused or throttled).
    async fn fetch(&self) -> Result<api::Reply, Step> {
        let mut url = self.url.clone();
        url.query_pairs_mut()
            .append_pair("next_token", &self.next_token);
        let reply = match tokio::time::timeout(
            REQUEST_TIMEOUT,
            api::get(&self.client, &url, Some(&self.authorization)),
        )
        .await
        {
            Ok(Ok(reply)) => reply,
            Ok(Err(reason)) => {
                let at = api::host_port(&self.url);
                return Err(Step::Failed {
                    reason: format!("Fly logs API at {at}: {reason}"),
                });
            }
            Err(_) => {
                return Err(Step::Failed {
                    reason: format!(
                        "Fly logs API: no answer within {}",
                        humantime::format_duration(REQUEST_TIMEOUT)
                    ),
                });
            }
        };
        match reply.status {
            StatusCode::OK => {}
            StatusCode::TOO_MANY_REQUESTS => {
                return Err(Step::Throttled {
                    retry_after: retry_after(&reply.headers, Utc::now()),
                });
            }
            StatusCode::NOT_FOUND => {
                let reason = api::status_reason(reply.status, &reply.body, Some(&self.token));
                return Err(Step::Refused {
                    reason: format!("Fly logs API: app {:?} not found ({reason})", self.app),
                });
            }
            status => {
                let reason = api::status_reason(status, &reply.body, Some(&self.token));
                let reason = format!("Fly logs API: {reason}");
                return Err(
                    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                        Step::Refused { reason }
                    } else {
                        Step::Failed { reason }
                    },
                );
            }
        }
        Ok(reply)
    }

    /// Hands a page's entries to `sink` as JSON lines, less those from before
    /// `skip_before`.
    fn deliver(&self, page: Page, sink: &LineSink) -> Step {
        let Page {
            entries, malformed, ..
        } = page;
        let mut lines = Vec::with_capacity(entries.len());
        let mut skipped = 0;
        for entry in entries {
            if let (Some(start), Some(at)) = (self.skip_before, timestamp(&entry))
                && at < start
            {
                skipped += 1;
                continue;
            }
            lines.push(Value::Object(entry).to_string());
        }
        let delivered = lines.len();
        if delivered > 0 || malformed > 0 {
            sink(lines, malformed);
        }
        Step::Page {
            lines: delivered,
            malformed,
            skipped,
        }
    }
}

/// How long a 429's `Retry-After` asks to wait: seconds, or an HTTP date.
fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_pages_back_off_from_64ms_to_the_poll_interval() {
        let mut backoff = Backoff::new(Pacing::default());
        let waits: Vec<_> = (0..9)
            .map(|_| backoff.after(&Step::Empty).as_millis())
            .collect();
        assert_eq!(waits, [64, 128, 256, 512, 1024, 2048, 4096, 4096, 4096]);
        let page = Step::Page {
            lines: 3,
            malformed: 0,
            skipped: 0,
        };
        assert_eq!(backoff.after(&page), Duration::ZERO);
        assert_eq!(backoff.after(&Step::Empty).as_millis(), 64);
    }

    #[test]
    fn failures_back_off_to_a_minute_and_429_waits_as_told() {
        let mut backoff = Backoff::new(Pacing::default());
        let failed = Step::Failed {
            reason: "HTTP 500".into(),
        };
        let waits: Vec<_> = (0..10)
            .map(|_| backoff.after(&failed).as_millis())
            .collect();
        assert_eq!(
            waits,
            [
                500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000
            ]
        );
        let told = Step::Throttled {
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(backoff.after(&told), Duration::from_secs(7));
        let forever = Step::Throttled {
            retry_after: Some(Duration::from_secs(86_400)),
        };
        assert_eq!(backoff.after(&forever), Duration::from_secs(600));
        let refused = Step::Refused {
            reason: "401".into(),
        };
        assert_eq!(backoff.after(&refused), Duration::from_secs(60));
        // A good answer resets the error backoff.
        backoff.after(&Step::Empty);
        assert_eq!(backoff.after(&failed).as_millis(), 500);
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let header = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
            h
        };
        assert_eq!(retry_after(&header("5"), now), Some(Duration::from_secs(5)));
        assert_eq!(
            retry_after(&header("Mon, 01 Jan 2024 00:00:30 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(&header("Sun, 31 Dec 2023 23:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&header("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
