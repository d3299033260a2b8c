//! `POST /ingest/{source}` against the real app over TCP: NDJSON, one JSON
//! array (the Vector / Fly log shipper shape, with Basic auth as Vector sends
//! it), plain text and gzip of each reach the source's sink; missing or wrong
//! credentials get 401 with a challenge, an unknown source 404; bodies past
//! the limit get 413 (declared, streamed, compressed, and a gzip bomb);
//! garbage lines are counted and skipped; a 70 KiB line arrives cut to 64 KiB.

use std::io::Write;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use keeper::probe::log::ingest::{BODY_LIMIT, LineSink, MAX_LINE};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support;
use crate::support::app::{TestApp, spawn_app};
use crate::support::config::TestConfig;
use crate::support::db::Backend;

const TOKEN: &str = "ingest-t0ken-0123456789";

/// What the sink of source `app` received: one `(lines, malformed)` per call.
type Received = Arc<Mutex<Vec<(Vec<String>, usize)>>>;

/// keeper with one ingest source `app` (token [`TOKEN`]) whose sink records what it gets.
struct Ingest {
    app: TestApp,
    base: String,
    http: reqwest::Client,
    received: Received,
}

impl Ingest {
    async fn start() -> Ingest {
        support::init();
        let app = spawn_app(Backend::Sqlite, TestConfig::new()).await;
        let received: Received = Arc::default();
        let sink: LineSink = {
            let received = received.clone();
            Arc::new(move |lines, malformed| received.lock().unwrap().push((lines, malformed)))
        };
        app.keeper()
            .ingest()
            .register("app", TOKEN, sink)
            .expect("registering source app");
        Ingest {
            base: app.base.clone(),
            app,
            http: reqwest::Client::new(),
            received,
        }
    }

    fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    fn post(&self, source: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}/ingest/{source}", self.base))
    }

    /// Every line received so far, in order, and the malformed total.
    fn lines(&self) -> (Vec<String>, usize) {
        let received = self.received.lock().unwrap();
        let lines = received.iter().flat_map(|(l, _)| l.clone()).collect();
        (lines, received.iter().map(|(_, m)| m).sum())
    }

    /// Forgets what was received.
    fn take(&self) -> (Vec<String>, usize) {
        let got = self.lines();
        self.received.lock().unwrap().clear();
        got
    }

    async fn stop(self) {
        self.app.stop().await;
    }
}

/// Sends `request`: the status and the JSON answer.
async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = request.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("answer read");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, body)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

const NDJSON: &str = "{\"level\":\"error\",\"message\":\"db timeout\"}\n\
    plain line from the app\n\
    \n\
    {\"level\":\"info\",\"message\":\"ok\"}\n";

/// Two events as Fly's log shipper (Vector's http sink, `codec = "json"`) posts them.
fn vector_batch() -> String {
    let event = |message: &str, level: &str| {
        json!({
            "event": {"provider": "app"},
            "fly": {"app": {"instance": "4d891d77b05118", "name": "my-app"}, "region": "lax"},
            "host": "f442",
            "log": {"level": level},
            "message": message,
            "timestamp": "2023-06-27T01:19:11.789045558Z"
        })
    };
    serde_json::to_string(&json!([
        event("GET / 200", "info"),
        event("Out of memory: Killed process 7", "error")
    ]))
    .unwrap()
}

#[tokio::test]
async fn ndjson_arrays_and_text_reach_the_source() {
    let ingest = Ingest::start().await;

    let (status, body) = send(ingest.post("app").bearer_auth(TOKEN).body(NDJSON)).await;
    assert_eq!(
        (status, &body),
        (202, &json!({"accepted": 3, "malformed": 0}))
    );
    assert_eq!(
        ingest.take(),
        (
            vec![
                r#"{"level":"error","message":"db timeout"}"#.to_string(),
                "plain line from the app".to_string(),
                r#"{"level":"info","message":"ok"}"#.to_string(),
            ],
            0
        )
    );

    // Vector sends Basic auth (HTTP_USER / HTTP_PASSWORD): the password is the token.
    let batch = vector_batch();
    let (status, body) = send(
        ingest
            .post("app")
            .basic_auth("fly-log-shipper", Some(TOKEN))
            .header("content-type", "application/json")
            .body(batch.clone()),
    )
    .await;
    assert_eq!(
        (status, &body),
        (202, &json!({"accepted": 2, "malformed": 0}))
    );
    let (lines, _) = ingest.take();
    let sent: Vec<Value> = serde_json::from_str(&batch).unwrap();
    let got: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got, sent, "each array element is one line, as sent");

    let text = "2024-01-01 12:00:00 ERROR payment failed\r\n[2024-01-01 12:00:01] INFO retry\r\n";
    let (status, body) = send(
        ingest
            .post("app")
            .bearer_auth(TOKEN)
            .header("content-type", "text/plain")
            .body(text),
    )
    .await;
    assert_eq!(
        (status, &body),
        (202, &json!({"accepted": 2, "malformed": 0}))
    );
    assert_eq!(
        ingest.take().0,
        vec![
            "2024-01-01 12:00:00 ERROR payment failed",
            "[2024-01-01 12:00:01] INFO retry"
        ]
    );

    // An empty batch is fine and reaches nobody.
    let (status, body) = send(ingest.post("app").bearer_auth(TOKEN).body("[]")).await;
    assert_eq!(
        (status, &body),
        (202, &json!({"accepted": 0, "malformed": 0}))
    );
    assert!(ingest.received.lock().unwrap().is_empty());
    ingest.stop().await;
}

#[tokio::test]
async fn gzip_bodies_in_each_format_are_decompressed() {
    let ingest = Ingest::start().await;
    let text = "first line\nsecond line\n";
    for (name, body, lines) in [
        ("ndjson", NDJSON.to_string(), 3),
        ("array", vector_batch(), 2),
        ("text", text.to_string(), 2),
    ] {
        let compressed = gzip(body.as_bytes());
        let (status, answer) = send(
            ingest
                .post("app")
                .bearer_auth(TOKEN)
                .header("content-encoding", "gzip")
                .body(compressed.clone()),
        )
        .await;
        assert_eq!(
            (status, &answer),
            (202, &json!({"accepted": lines, "malformed": 0})),
            "{name}"
        );
        let with_header = ingest.take();

        // Without the header, gzip's magic number gives it away.
        let (status, _) = send(ingest.post("app").bearer_auth(TOKEN).body(compressed)).await;
        assert_eq!(status, 202, "{name} without Content-Encoding");
        let sniffed = ingest.take();
        assert_eq!(with_header, sniffed, "{name}");

        let (status, _) = send(ingest.post("app").bearer_auth(TOKEN).body(body)).await;
        assert_eq!(status, 202);
        assert_eq!(
            ingest.take(),
            with_header,
            "{name}: gzip decodes like the plain body"
        );
    }

    let (status, body) = send(
        ingest
            .post("app")
            .bearer_auth(TOKEN)
            .header("content-encoding", "gzip")
            .body("not gzip at all"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("not valid gzip"),
        "{body}"
    );
    let (status, body) = send(
        ingest
            .post("app")
            .bearer_auth(TOKEN)
            .header("content-encoding", "br")
            .body("x"),
    )
    .await;
    assert_eq!(status, 415);
    assert!(body["error"].as_str().unwrap().contains("\"br\""), "{body}");
    assert!(ingest.received.lock().unwrap().is_empty());
    ingest.stop().await;
}

#[tokio::test]
async fn missing_or_wrong_credentials_get_401_with_a_challenge() {
    let ingest = Ingest::start().await;
    let cases = [
        ("no Authorization", ingest.post("app")),
        (
            "wrong Bearer",
            ingest.post("app").bearer_auth("ingest-t0ken-012345678"),
        ),
        (
            "wrong Basic password",
            ingest.post("app").basic_auth("vector", Some("nope")),
        ),
        (
            "token as Basic user",
            ingest.post("app").basic_auth(TOKEN, None::<&str>),
        ),
        (
            "other scheme",
            ingest
                .post("app")
                .header("authorization", format!("Token {TOKEN}")),
        ),
    ];
    for (what, request) in cases {
        let resp = request.body(NDJSON).send().await.expect("request sent");
        assert_eq!(resp.status().as_u16(), 401, "{what}");
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"))
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.contains("Bearer") && challenge.contains("Basic"),
            "{challenge}"
        );
        let body: Value = resp.json().await.expect("JSON error");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.contains(TOKEN)),
            "{what}: {body}"
        );
    }
    assert!(
        ingest.received.lock().unwrap().is_empty(),
        "nothing delivered"
    );
    ingest.stop().await;
}

#[tokio::test]
async fn an_unknown_source_is_404_whatever_the_credentials() {
    let ingest = Ingest::start().await;
    for request in [
        ingest.post("other").bearer_auth(TOKEN),
        ingest.post("other"),
        ingest.post("App").bearer_auth(TOKEN),
    ] {
        let (status, body) = send(request.body(NDJSON)).await;
        assert_eq!((status, body), (404, json!({"error": "not found"})));
    }
    assert!(ingest.received.lock().unwrap().is_empty());
    // Only POST is routed.
    let resp = ingest
        .http
        .get(format!("{}/ingest/app", ingest.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    ingest.stop().await;
}

#[tokio::test]
async fn garbage_lines_are_counted_and_skipped_and_long_lines_cut() {
    let ingest = Ingest::start().await;
    let long = format!("{{\"message\":\"{}\"}}", "y".repeat(70 * 1024));
    let long_text = "z".repeat(70 * 1024);
    let body = format!(
        "{{\"level\":\"error\"}}\n{{broken json\n{long}\n\u{1}\u{2} binary-ish noise\n{{\"a\":\n{long_text}\nlast\n"
    );
    let (status, answer) = send(ingest.post("app").bearer_auth(TOKEN).body(body)).await;
    assert_eq!(
        (status, &answer),
        (202, &json!({"accepted": 5, "malformed": 2}))
    );
    let (lines, malformed) = ingest.take();
    assert_eq!(malformed, 2);
    assert_eq!(lines[0], r#"{"level":"error"}"#);
    assert_eq!(
        lines[1].len(),
        MAX_LINE,
        "the 70 KiB JSON line is cut to 64 KiB"
    );
    assert!(long.starts_with(&lines[1]));
    assert_eq!(lines[2], "\u{1}\u{2} binary-ish noise");
    assert_eq!(
        lines[3].len(),
        MAX_LINE,
        "the 70 KiB text line is cut to 64 KiB"
    );
    assert_eq!(lines[4], "last");

    // A JSON array: non-objects are malformed, a break keeps what came before.
    let (status, answer) = send(
        ingest
            .post("app")
            .bearer_auth(TOKEN)
            .body(r#"[{"message":"a"}, 17, {"message":"b"}, {"message": "trunc"#),
    )
    .await;
    assert_eq!(
        (status, &answer),
        (202, &json!({"accepted": 2, "malformed": 2}))
    );
    assert_eq!(
        ingest.take().0,
        vec![r#"{"message":"a"}"#, r#"{"message":"b"}"#]
    );
    ingest.stop().await;
}

/// Sends `head` (a request head without its blank line) then `body` on a
/// raw connection, reading the answer concurrently: its status and JSON body.
async fn raw_request(
    addr: &str,
    head: &str,
    body: impl Iterator<Item = Vec<u8>> + Send + 'static,
) -> (u16, Value) {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connecting to keeper");
    let (mut reader, mut writer) = stream.into_split();
    let head = format!("{head}\r\n");
    let sender = tokio::spawn(async move {
        // The server may answer and close before the body is all sent.
        if writer.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for chunk in body {
            if writer.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let read = async {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(end) = find(&answer, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .expect("answer has a Content-Length");
                if answer.len() >= end + 4 + length {
                    return (head, answer[end + 4..end + 4 + length].to_vec());
                }
            }
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => panic!(
                    "connection ended before a whole answer: {:?}",
                    String::from_utf8_lossy(&answer)
                ),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    let (head, body) = tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("an answer within 30 s");
    sender.abort();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_slice(&body).expect("JSON answer"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn bodies_past_the_limit_get_413() {
    let ingest = Ingest::start().await;
    let addr = ingest.addr();
    let too_big = BODY_LIMIT + 1024;

    // Declared too large: refused from the head alone, nothing read.
    for encoding in ["", "Content-Encoding: gzip\r\n"] {
        let head = format!(
            "POST /ingest/app HTTP/1.1\r\nHost: keeper\r\nAuthorization: Bearer {TOKEN}\r\n\
             {encoding}Content-Length: {too_big}\r\n"
        );
        let (status, body) = raw_request(&addr, &head, std::iter::empty()).await;
        assert_eq!(status, 413, "{encoding:?}");
        assert!(body["error"].as_str().unwrap().contains("10 MiB"), "{body}");
    }

    // Streamed without a length: refused once the limit is passed.
    let head = format!(
        "POST /ingest/app HTTP/1.1\r\nHost: keeper\r\nAuthorization: Bearer {TOKEN}\r\n\
         Transfer-Encoding: chunked\r\n"
    );
    let chunk: Vec<u8> = "a log line that repeats\n".repeat(2730).into_bytes(); // 65,520 bytes
    let framed = [
        format!("{:x}\r\n", chunk.len()).into_bytes(),
        chunk,
        b"\r\n".to_vec(),
    ]
    .concat();
    let chunks = too_big / 65_520 + 1;
    let body = std::iter::repeat_n(framed, chunks).chain(std::iter::once(b"0\r\n\r\n".to_vec()));
    let (status, answer) = raw_request(&addr, &head, body).await;
    assert_eq!(status, 413, "{answer}");

    // A gzip bomb: 60 KiB on the wire, 60 MiB inflated; refused at 50 MiB.
    let member = {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&vec![0u8; 1024 * 1024]).unwrap();
        encoder.finish().unwrap()
    };
    let bomb = member.repeat(60);
    assert!(bomb.len() < 100 * 1024, "{}", bomb.len());
    let (status, answer) = send(
        ingest
            .post("app")
            .bearer_auth(TOKEN)
            .header("content-encoding", "gzip")
            .body(bomb),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(
        answer["error"],
        "the body is larger than 50 MiB once decompressed"
    );

    assert!(
        ingest.received.lock().unwrap().is_empty(),
        "nothing delivered"
    );
    // The listener still serves.
    let (status, _) = send(ingest.post("app").bearer_auth(TOKEN).body("still here")).await;
    assert_eq!(status, 202);
    ingest.stop().await;
}
