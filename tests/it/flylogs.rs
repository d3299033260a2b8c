//! The Fly logs poller against a loopback stand-in for Fly's logs API
//! (`GET /api/v1/apps/{app}/logs?next_token=…`, the documented shape of
//! external-apis.md §2a): pages follow `next_token`, through a 429 with
//! `Retry-After`, a 500 and garbage JSON, every line delivered once and in
//! order, the token sent back as given, waits growing instead of hammering;
//! failures show in the status until the API recovers; a wrong token or app
//! is retried slowly and reported; a huge or hanging answer neither
//! exhausts memory nor stops shutdown.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{SecondsFormat, Utc};
use keeper::probe::api::Token;
use keeper::probe::log::flylogs::{Options, Poller, Step};
use keeper::probe::log::ingest::LineSink;
use keeper::probe::tlsconf::Roots;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::support::{self, wait_until};

const TOKEN: &str = "fo1_logs-t0ken-0123456789";
const WAIT: Duration = Duration::from_secs(20);

/// What the stand-in answers to one request.
#[derive(Clone, Debug)]
enum Answer {
    /// A page with these messages (timestamped now, unless `old`) and this `next_token`.
    Page {
        messages: Vec<&'static str>,
        next_token: &'static str,
        old: Option<&'static str>,
    },
    /// This status, body and optional `Retry-After`.
    Status(u16, &'static str, Option<&'static str>),
    /// 200 with this body.
    Raw(&'static str),
    /// 200 with a 5 MiB body.
    Huge,
    /// Never answers.
    Hang,
}

fn page(messages: &[&'static str], next_token: &'static str) -> Answer {
    Answer::Page {
        messages: messages.to_vec(),
        next_token,
        old: None,
    }
}

/// One request as the stand-in saw it.
#[derive(Clone, Debug)]
struct Seen {
    at: Instant,
    next_token: Option<String>,
    /// The `region` and `instance` filters.
    filters: (Option<String>, Option<String>),
    authorization: Option<String>,
}

#[derive(Default)]
struct Script {
    answers: VecDeque<Answer>,
    /// Answered once the script is used up.
    then: Option<Answer>,
    seen: Vec<Seen>,
}

/// The stand-in: app `my-app`, the token [`TOKEN`] (as Bearer) or `fm2_…` (as FlyV1).
struct FlyLogsApi {
    url: String,
    script: Arc<Mutex<Script>>,
    _task: AbortOnDropHandle<()>,
}

impl FlyLogsApi {
    async fn start(answers: Vec<Answer>, then: Answer) -> FlyLogsApi {
        let script = Arc::new(Mutex::new(Script {
            answers: answers.into(),
            then: Some(then),
            seen: Vec::new(),
        }));
        let router = Router::new()
            .route("/api/v1/apps/{app}/logs", get(logs))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FlyLogsApi {
            url,
            script,
            _task: AbortOnDropHandle::new(task),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.script.lock().unwrap().seen.clone()
    }

    fn then(&self, answer: Answer) {
        self.script.lock().unwrap().then = Some(answer);
    }

    fn options(&self, app: &str, token: &str) -> Options {
        let mut options = Options::new(app, token_of(token));
        options.api_url = self.url.clone();
        options
    }
}

fn token_of(token: &str) -> Token {
    serde_json::from_value(json!(token)).unwrap()
}

async fn logs(
    State(script): State<Arc<Mutex<Script>>>,
    Path(app): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_string());
    let answer = {
        let mut script = script.lock().unwrap();
        script.seen.push(Seen {
            at: Instant::now(),
            next_token: query.get("next_token").cloned(),
            filters: (query.get("region").cloned(), query.get("instance").cloned()),
            authorization: authorization.clone(),
        });
        match script.answers.pop_front() {
            Some(answer) => answer,
            None => script.then.clone().unwrap(),
        }
    };
    let authorized = authorization.as_deref() == Some(&format!("Bearer {TOKEN}"))
        || authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("FlyV1 fm2_"));
    if !authorized {
        let said = format!(
            r#"{{"error":"Authenticate: token {} is invalid"}}"#,
            authorization.unwrap_or_default()
        );
        return (StatusCode::UNAUTHORIZED, said).into_response();
    }
    if app != "my-app" {
        return (StatusCode::NOT_FOUND, r#"{"error":"Could not find App"}"#).into_response();
    }
    match answer {
        Answer::Page {
            messages,
            next_token,
            old,
        } => {
            let now = Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
            let mut data: Vec<Value> = old
                .map(|m| entry(m, "2024-01-01T00:00:00.123456789Z"))
                .into_iter()
                .collect();
            data.extend(messages.iter().map(|m| entry(m, &now)));
            axum::Json(json!({"data": data, "meta": {"next_token": next_token}})).into_response()
        }
        Answer::Status(status, body, retry_after) => {
            let mut resp = (StatusCode::from_u16(status).unwrap(), body).into_response();
            if let Some(wait) = retry_after {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, wait.parse().unwrap());
            }
            resp
        }
        Answer::Raw(body) => body.into_response(),
        Answer::Huge => vec![b' '; 5 * 1024 * 1024].into_response(),
        Answer::Hang => std::future::pending().await,
    }
}

/// One log entry in the documented shape.
fn entry(message: &str, timestamp: &str) -> Value {
    json!({"id": "01HXYZ", "type": "log", "attributes": {
        "timestamp": timestamp, "message": message, "level": "info",
        "instance": "148e127a0b4589", "region": "cdg",
        "meta": {"instance": "148e127a0b4589", "region": "cdg", "event": {"provider": "app"},
                 "http": {"request": {"id": "r1", "method": "GET", "version": "1.1"},
                          "response": {"status_code": 200}},
                 "error": {"code": 0, "message": ""}, "url": {"full": "https://my-app.fly.dev/"}}}})
}

type Received = Arc<Mutex<Vec<(Vec<String>, usize)>>>;

fn recording_sink() -> (LineSink, Received) {
    let received: Received = Arc::default();
    let sink: LineSink = {
        let received = received.clone();
        Arc::new(move |lines, malformed| received.lock().unwrap().push((lines, malformed)))
    };
    (sink, received)
}

/// The `message` of every line received, in order.
fn messages(received: &Received) -> Vec<String> {
    received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(lines, _)| lines.iter())
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("each line is JSON");
            v["message"].as_str().unwrap().to_string()
        })
        .collect()
}

fn poller(options: &Options) -> Poller {
    support::init();
    Poller::new(options, &Roots::system()).expect("poller builds")
}

const EMPTY: Answer = Answer::Page {
    messages: Vec::new(),
    next_token: "",
    old: None,
};

#[tokio::test]
async fn pages_arrive_once_and_in_order_through_429_500_and_garbage() {
    const T1: &str = "cursor/1+a=b&c d";
    let api = FlyLogsApi::start(
        vec![
            page(&["line 1", "line 2", "line 3"], T1),
            Answer::Status(429, r#"{"error":"rate limited"}"#, Some("1")),
            page(&["line 4", "line 5", "line 6"], "cursor-2"),
            Answer::Status(500, r#"{"error":"internal"}"#, None),
            Answer::Raw(r#"{"data": [{"attributes": "#),
            page(&["line 7", "line 8", "line 9"], "cursor-3"),
        ],
        EMPTY,
    )
    .await;
    let poller = poller(&api.options("my-app", TOKEN));
    let status = poller.status();
    let (sink, received) = recording_sink();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(poller.run(sink, shutdown.clone()));

    wait_until("nine lines and an empty page", WAIT, || async {
        messages(&received).len() >= 9 && api.seen().len() >= 7
    })
    .await;
    let third_page_at = api.seen()[5].at;
    let expected: Vec<String> = (1..=9).map(|n| format!("line {n}")).collect();
    assert_eq!(messages(&received), expected, "each line once, in order");
    let first: Value = serde_json::from_str(&received.lock().unwrap()[0].0[0]).unwrap();
    assert_eq!(first["level"], "info", "the line is the entry's attributes");
    assert_eq!(first["meta"]["http"]["response"]["status_code"], 200);
    assert!(first.get("attributes").is_none() && first.get("id").is_none());

    let seen = api.seen();
    let tokens: Vec<_> = seen.iter().map(|s| s.next_token.clone().unwrap()).collect();
    assert_eq!(
        tokens[..7],
        ["", T1, T1, "cursor-2", "cursor-2", "cursor-2", "cursor-3"],
        "the token goes back as given, kept through failures"
    );
    assert!(
        tokens[7..].iter().all(|t| t == "cursor-3"),
        "an empty next_token keeps the last one: {tokens:?}"
    );
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some(&*format!("Bearer {TOKEN}")))
    );
    // Waits the API asked for, or backoff: never sooner (lower bounds only).
    assert!(
        seen[2].at - seen[1].at >= Duration::from_millis(950),
        "Retry-After: 1 obeyed"
    );
    assert!(
        seen[4].at - seen[3].at >= Duration::from_millis(450),
        "backs off after a 500"
    );
    assert!(
        seen[5].at - seen[4].at >= Duration::from_millis(950),
        "backs off further after garbage"
    );

    // Quiet: the waits grow from 64 ms, so two seconds hold a handful of polls, not hundreds.
    let window = Duration::from_secs(2);
    tokio::time::sleep_until((third_page_at + window).into()).await;
    let polls = api
        .seen()
        .iter()
        .filter(|s| s.at > third_page_at && s.at <= third_page_at + window)
        .count();
    assert!(
        (2..=8).contains(&polls),
        "{polls} polls in the 2 s after the last page"
    );

    let health = status.snapshot();
    assert_eq!(health.lines, 9);
    assert!(health.failing.is_none(), "{health:?}");
    assert!(health.last_ok.is_some());
    assert_eq!(messages(&received).len(), 9, "nothing delivered twice");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the poller stops on shutdown")
        .unwrap();
}

#[tokio::test]
async fn failures_show_in_the_status_until_the_api_recovers() {
    let api = FlyLogsApi::start(
        vec![],
        Answer::Status(503, r#"{"error":"maintenance"}"#, None),
    )
    .await;
    // A macaroon goes out as FlyV1; filters go along.
    let mut options = api.options("my-app", "fm2_macaroon-part");
    options.region = Some("cdg".into());
    options.instance = Some("148e127a0b4589".into());
    let mut poller = poller(&options);
    let status = poller.status();
    let (sink, received) = recording_sink();

    let step = poller.step(&sink).await;
    let Step::Failed { reason } = &step else {
        panic!("expected a failure, got {step:?}")
    };
    assert_eq!(
        reason,
        "Fly logs API: HTTP 503 Service Unavailable: maintenance"
    );
    let first = status.snapshot().failing.expect("failing");
    assert_eq!(
        (first.reason.as_str(), first.attempts),
        (reason.as_str(), 1)
    );

    api.then(Answer::Raw("<html>oops</html>"));
    let step = poller.step(&sink).await;
    assert!(
        matches!(&step, Step::Failed { reason } if reason.contains("not JSON")),
        "{step:?}"
    );
    let second = status.snapshot().failing.expect("still failing");
    assert_eq!(second.attempts, 2);
    assert_eq!(second.since, first.since, "failing since the first failure");
    assert!(
        second.reason.contains("not JSON"),
        "the latest reason: {second:?}"
    );

    api.then(page(&["back"], "c1"));
    let step = poller.step(&sink).await;
    assert_eq!(
        step,
        Step::Page {
            lines: 1,
            malformed: 0,
            skipped: 0
        }
    );
    let health = status.snapshot();
    assert!(health.failing.is_none(), "{health:?}");
    assert_eq!(health.lines, 1);
    assert_eq!(messages(&received), ["back"]);
    for seen in api.seen() {
        assert_eq!(
            seen.authorization.as_deref(),
            Some("FlyV1 fm2_macaroon-part")
        );
        let filters = (Some("cdg".into()), Some("148e127a0b4589".into()));
        assert_eq!(seen.filters, filters);
    }
}

#[tokio::test]
async fn a_wrong_token_or_app_is_reported_and_retried_slowly() {
    let api = FlyLogsApi::start(vec![], page(&["never"], "c1")).await;
    for (app, token, expect) in [
        (
            "my-app",
            "fo1_wrong-token-value",
            "Fly logs API: unauthorized: check the token (HTTP 401 Unauthorized: Authenticate: token Bearer *** is invalid)",
        ),
        (
            "no-such-app",
            TOKEN,
            "Fly logs API: app \"no-such-app\" not found (HTTP 404 Not Found: Could not find App)",
        ),
    ] {
        let before = api.seen().len();
        let poller = poller(&api.options(app, token));
        let status = poller.status();
        let (sink, received) = recording_sink();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(poller.run(sink, shutdown.clone()));
        wait_until("the first poll is refused", WAIT, || async {
            status.snapshot().failing.is_some()
        })
        .await;
        assert_eq!(status.snapshot().failing.unwrap().reason, expect);
        // Retried once a minute: a second and a half brings no second poll.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            api.seen().len() - before,
            1,
            "{app}: polled once, not hammered"
        );
        assert!(received.lock().unwrap().is_empty());
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops while waiting to retry")
            .unwrap();
    }
}

#[tokio::test]
async fn entries_from_before_the_start_are_skipped_unless_from_start() {
    let old_and_new = Answer::Page {
        messages: vec!["new"],
        next_token: "c1",
        old: Some("old"),
    };
    let api = FlyLogsApi::start(vec![old_and_new.clone(), old_and_new], EMPTY).await;

    let mut options = api.options("my-app", TOKEN);
    let (sink, received) = recording_sink();
    let step = poller(&options).step(&sink).await;
    assert_eq!(
        step,
        Step::Page {
            lines: 1,
            malformed: 0,
            skipped: 1
        }
    );
    assert_eq!(messages(&received), ["new"]);

    options.from_start = true;
    let (sink, received) = recording_sink();
    poller(&options).step(&sink).await;
    assert_eq!(messages(&received), ["old", "new"]);
}

#[tokio::test]
async fn a_huge_answer_fails_and_a_hanging_one_does_not_block_shutdown() {
    let api = FlyLogsApi::start(vec![Answer::Huge], Answer::Hang).await;
    let mut poller = poller(&api.options("my-app", TOKEN));
    let (sink, received) = recording_sink();
    let step = poller.step(&sink).await;
    assert_eq!(
        step,
        Step::Failed {
            reason: format!(
                "Fly logs API at {}: answer larger than 4 MiB",
                api.url.trim_start_matches("http://")
            )
        }
    );

    let status = poller.status();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(poller.run(sink, shutdown.clone()));
    wait_until("the hanging request is sent", WAIT, || async {
        api.seen().len() == 2
    })
    .await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("shutdown ends a hanging poll")
        .unwrap();
    assert!(received.lock().unwrap().is_empty());
    assert_eq!(status.snapshot().failing.unwrap().attempts, 1);
}
