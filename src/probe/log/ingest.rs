//! Log lines posted to `POST /ingest/{source}` (DESIGN.md §7): decoding a
//! body into raw lines, and the registry of sources (each source's token and
//! where its lines go).
//!
//! A body is NDJSON (one JSON object or plain text per line), one JSON array
//! (what Fly's log shipper and Vector's http sink send:
//! `[{event},{event}]`), or plain text lines, optionally gzipped. The HTTP
//! side (status codes, reading the body off the wire) is `http/ingest.rs`;
//! what the lines mean is the `log` check's business, not this file's.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use bytes::Bytes;
use serde::Deserializer as _;
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// The most bytes of one line kept: a longer line is cut there (at a
/// character boundary), so one runaway line costs at most this much.
pub const MAX_LINE: usize = 64 * 1024;
/// The largest body read off the wire, compressed or not.
pub const BODY_LIMIT: usize = 10 * 1024 * 1024;
/// The largest body once decompressed: a gzip bomb stops here.
pub const DECODED_LIMIT: usize = 50 * 1024 * 1024;
/// How many bodies are decoded at once: bounds the memory decompressing and
/// splitting take, whatever the number of senders.
const DECODING_AT_ONCE: usize = 2;

/// Where a source's lines go: `(lines, malformed)`, the raw lines (plain
/// text, or one JSON object's text each) and how many malformed lines were
/// skipped. Called from request handlers and pollers, so it must not block:
/// it counts, or pushes to a bounded queue.
pub type LineSink = Arc<dyn Fn(Vec<String>, usize) + Send + Sync>;

/// A body split into lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub lines: Vec<String>,
    /// Lines skipped: a line starting with `{` that is not a JSON object, a
    /// JSON array element that is neither an object nor a string, the rest
    /// of an array that breaks off.
    pub malformed: usize,
}

/// Why a body could not be decoded at all (single malformed lines are
/// counted, never an error).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the body is larger than {} MiB once decompressed", limit / (1024 * 1024))]
    TooLarge { limit: usize },
    #[error("the body is not valid gzip: {0}")]
    Gzip(std::io::Error),
    #[error("Content-Encoding {0:?} is not supported: send gzip or an uncompressed body")]
    UnsupportedEncoding(String),
    #[error("decoding the body failed: {0}")]
    Failed(String),
}

/// Splits `body` into lines. `content_encoding` is the request's header:
/// `gzip` (or a body starting with gzip's magic number) is decompressed,
/// never past `limit` bytes.
///
/// Framing is sniffed from the text: a body whose first non-blank character
/// is `[` followed by `{`, `"`, `[` or `]` is one JSON array; anything else
/// (including plain logs such as `[2024-01-01 12:00:00] ERROR …`) is lines.
/// An array element that is an object becomes one line (its JSON text), a
/// string becomes that text's lines, anything else is malformed; an array
/// that breaks off (truncated, invalid) keeps the elements before the break
/// and counts the rest as one malformed line. In lines, one starting with
/// `{` must be a JSON object (else it is malformed and skipped), others are
/// plain text; blank lines are skipped, `\r\n` endings are accepted, invalid
/// UTF-8 is replaced, and a line longer than [`MAX_LINE`] is cut.
pub fn decode(
    body: &[u8],
    content_encoding: Option<&str>,
    limit: usize,
) -> Result<Decoded, DecodeError> {
    let inflated;
    let bytes = if gzipped(content_encoding)? || body.starts_with(&[0x1f, 0x8b]) {
        inflated = gunzip(body, limit)?;
        &inflated[..]
    } else if body.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    } else {
        body
    };
    let text = String::from_utf8_lossy(bytes);
    let mut decoded = Decoded::default();
    if looks_like_array(&text) {
        split_array(&text, &mut decoded);
    } else {
        split_lines(&text, &mut decoded);
    }
    Ok(decoded)
}

/// Whether a `Content-Encoding` says gzip; `Err` for an encoding other than
/// gzip and identity.
pub fn gzipped(content_encoding: Option<&str>) -> Result<bool, DecodeError> {
    match content_encoding.map(str::trim) {
        None | Some("") => Ok(false),
        Some(e) if e.eq_ignore_ascii_case("identity") => Ok(false),
        Some(e) if e.eq_ignore_ascii_case("gzip") || e.eq_ignore_ascii_case("x-gzip") => Ok(true),
        Some(other) => Err(DecodeError::UnsupportedEncoding(other.to_string())),
    }
}

/// `body` decompressed (gzip, possibly several members), at most `limit` bytes.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    flate2::read::MultiGzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(DecodeError::Gzip)?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(out)
}

/// Whether `text` starts like a JSON array of events rather than a log line
/// that happens to begin with `[`.
fn looks_like_array(text: &str) -> bool {
    let Some(rest) = text.trim_start().strip_prefix('[') else {
        return false;
    };
    matches!(
        rest.trim_start().chars().next(),
        None | Some('{' | '"' | '[' | ']')
    )
}

fn split_array(text: &str, out: &mut Decoded) {
    let mut elements = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let whole = de
        .deserialize_seq(Elements(&mut elements))
        .and_then(|()| de.end())
        .is_ok();
    for element in elements {
        let raw = element.get();
        if raw.starts_with('{') {
            out.lines.push(cut(raw));
        } else if let Ok(s) = serde_json::from_str::<&str>(raw) {
            split_lines(s, out);
        } else if let Ok(s) = serde_json::from_str::<String>(raw) {
            // A string with escapes cannot be borrowed.
            split_lines(&s, out);
        } else {
            out.malformed += 1;
        }
    }
    if !whole {
        out.malformed += 1;
    }
}

/// Collects a JSON array's elements as they parse, so those before a break survive it.
struct Elements<'a, 'de>(&'a mut Vec<&'de RawValue>);

impl<'de> Visitor<'de> for Elements<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(element) = seq.next_element::<&'de RawValue>()? {
            self.0.push(element);
        }
        Ok(())
    }
}

fn split_lines(text: &str, out: &mut Decoded) {
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.starts_with('{') {
            if serde_json::from_str::<IgnoredAny>(trimmed).is_ok() {
                out.lines.push(cut(trimmed));
            } else {
                out.malformed += 1;
            }
        } else {
            out.lines.push(cut(line));
        }
    }
}

/// `line` as an owned string of at most [`MAX_LINE`] bytes.
fn cut(line: &str) -> String {
    line[..line.floor_char_boundary(MAX_LINE)].to_string()
}

/// Every ingest source of one keeper: name → token and sink. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    sources: RwLock<HashMap<String, Arc<Source>>>,
    decoding: Arc<Semaphore>,
}

/// One source: the SHA-256 of its token (the token itself is not kept) and its sink.
struct Source {
    token: [u8; 32],
    sink: LineSink,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry {
            inner: Arc::new(Inner {
                sources: RwLock::new(HashMap::new()),
                decoding: Arc::new(Semaphore::new(DECODING_AT_ONCE)),
            }),
        }
    }
}

impl fmt::Debug for Registry {
    /// The names only: tokens are secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("sources", &self.names())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("ingest source {0:?} is defined twice")]
    Duplicate(String),
    #[error("ingest source {0:?}: the token is empty (is the environment variable it names set?)")]
    EmptyToken(String),
    #[error(
        "ingest source {0:?}: a source name is not empty and has no '/', spaces or control characters"
    )]
    BadName(String),
}

/// Why a request may not post to a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No source has that name.
    UnknownSource,
    /// No `Authorization` header, or one of neither scheme.
    MissingCredentials,
    /// A Bearer or Basic credential that is not the source's token.
    WrongCredentials,
}

impl Registry {
    /// Adds source `name`: requests carrying `token` (Bearer, or as the Basic
    /// password) deliver their lines to `sink`.
    pub fn register(&self, name: &str, token: &str, sink: LineSink) -> Result<(), RegisterError> {
        if name.is_empty()
            || name
                .chars()
                .any(|c| c == '/' || c.is_whitespace() || c.is_control())
        {
            return Err(RegisterError::BadName(name.to_string()));
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(RegisterError::EmptyToken(name.to_string()));
        }
        let mut sources = self
            .inner
            .sources
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if sources.contains_key(name) {
            return Err(RegisterError::Duplicate(name.to_string()));
        }
        let source = Source {
            token: digest(token),
            sink,
        };
        sources.insert(name.to_string(), Arc::new(source));
        Ok(())
    }

    /// The registered source names, sorted.
    pub fn names(&self) -> Vec<String> {
        let sources = self
            .inner
            .sources
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut names: Vec<_> = sources.keys().cloned().collect();
        names.sort();
        names
    }

    /// The sink of `source` when `authorization` (the header's value) carries
    /// its token: `Bearer <token>`, or `Basic base64(user:token)` with any
    /// user. Tokens are compared by their SHA-256, in constant time.
    pub fn authorize(
        &self,
        source: &str,
        authorization: Option<&str>,
    ) -> Result<LineSink, Refusal> {
        let found = {
            let sources = self
                .inner
                .sources
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            sources.get(source).cloned()
        };
        let found = found.ok_or(Refusal::UnknownSource)?;
        let given = authorization
            .and_then(presented_token)
            .ok_or(Refusal::MissingCredentials)?;
        if crate::core::redact::same_secret(&found.token, &digest(given.trim())) {
            Ok(found.sink.clone())
        } else {
            Err(Refusal::WrongCredentials)
        }
    }

    /// Hands `lines` to source `source`'s sink without a token: lines another
    /// keeper instance on the same database received (and authorized).
    /// False when no source here has that name.
    pub fn deliver(&self, source: &str, lines: Vec<String>) -> bool {
        let sources = self.inner.sources.read();
        let found = sources
            .unwrap_or_else(|p| p.into_inner())
            .get(source)
            .cloned();
        found.map(|s| (s.sink)(lines, 0)).is_some()
    }

    /// [`decode`] off the async runtime, at most a few bodies at a time.
    pub async fn decode(
        &self,
        body: Bytes,
        content_encoding: Option<String>,
        limit: usize,
    ) -> Result<Decoded, DecodeError> {
        let _permit = self
            .inner
            .decoding
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| DecodeError::Failed(e.to_string()))?;
        tokio::task::spawn_blocking(move || decode(&body, content_encoding.as_deref(), limit))
            .await
            .map_err(|e| DecodeError::Failed(e.to_string()))?
    }
}

/// The token an `Authorization` value presents, if it uses Bearer or Basic
/// (schemes in any case; Basic's password is the token, its user ignored).
fn presented_token(authorization: &str) -> Option<String> {
    let (scheme, rest) = authorization.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_string());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD
        .decode(rest)
        .or_else(|_| STANDARD_NO_PAD.decode(rest))
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_user, password) = text.split_once(':')?;
    Some(password.to_string())
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;

    use super::*;

    fn lines(body: &str) -> Decoded {
        decode(body.as_bytes(), None, DECODED_LIMIT).expect("decodes")
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).expect("compressing");
        encoder.finish().expect("compressing")
    }

    #[test]
    fn ndjson_keeps_objects_and_plain_lines_and_counts_broken_objects() {
        let d = lines(
            "{\"level\":\"error\",\"message\":\"boom\"}\r\n\
             plain text line\n\
             \n   \n\
             {\"level\":\"info\"\n\
             {not json at all}\n  \
               File \"app.py\", line 3\n\
             {\"a\":1} trailing\n",
        );
        assert_eq!(
            d.lines,
            vec![
                r#"{"level":"error","message":"boom"}"#,
                "plain text line",
                "  File \"app.py\", line 3",
            ]
        );
        assert_eq!(d.malformed, 3);
    }

    #[test]
    fn an_array_gives_one_line_per_object_and_string() {
        let d = lines(
            r#" [{"message":"a","log":{"level":"info"}}, "text\nmore", {"message":"b"}, 42, null, [1]] "#,
        );
        assert_eq!(
            d.lines,
            vec![
                r#"{"message":"a","log":{"level":"info"}}"#,
                "text",
                "more",
                r#"{"message":"b"}"#,
            ]
        );
        assert_eq!(d.malformed, 3);
        assert_eq!(lines("[]"), Decoded::default());
        assert_eq!(lines("[\"esc\\u00e9\"]").lines, vec!["escé"]);
    }

    #[test]
    fn an_array_that_breaks_off_keeps_what_came_before() {
        let d = lines(r#"[{"message":"a"},{"message":"b"},{"message":"#);
        assert_eq!(d.lines, vec![r#"{"message":"a"}"#, r#"{"message":"b"}"#]);
        assert_eq!(d.malformed, 1);
        let d = lines(r#"[{"message":"a"}] [{"message":"b"}]"#);
        assert_eq!(d.lines, vec![r#"{"message":"a"}"#]);
        assert_eq!(d.malformed, 1);
    }

    #[test]
    fn log_lines_starting_with_a_bracket_are_text_not_arrays() {
        let d = lines("[2024-01-01 12:00:00] ERROR boom\n[INFO] fine\n");
        assert_eq!(
            d.lines,
            vec!["[2024-01-01 12:00:00] ERROR boom", "[INFO] fine"]
        );
        assert_eq!(d.malformed, 0);
    }

    #[test]
    fn long_lines_are_cut_at_a_character_boundary() {
        let long = format!("x{}", "é".repeat(40 * 1024));
        let d = lines(&format!("{long}\nshort\n"));
        assert_eq!(d.lines.len(), 2);
        assert_eq!(d.lines[0].len(), MAX_LINE - 1);
        assert!(long.starts_with(&d.lines[0]));
        assert_eq!(d.lines[1], "short");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let d = decode(b"caf\xe9 ok\n", None, DECODED_LIMIT).expect("decodes");
        assert_eq!(d.lines, vec!["caf\u{fffd} ok"]);
    }

    #[test]
    fn gzip_is_decompressed_by_header_or_by_magic() {
        let body = gzip(b"one\n{\"message\":\"two\"}\n");
        for encoding in [Some("gzip"), Some("x-gzip"), None] {
            let d = decode(&body, encoding, DECODED_LIMIT).expect("decodes");
            assert_eq!(d.lines, vec!["one", r#"{"message":"two"}"#], "{encoding:?}");
        }
        let d = decode(&gzip(br#"[{"message":"x"}]"#), Some("gzip"), 1024).expect("decodes");
        assert_eq!(d.lines, vec![r#"{"message":"x"}"#]);
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![b'a'; 4 * 1024 * 1024]);
        assert!(bomb.len() < 64 * 1024);
        let err = decode(&bomb, Some("gzip"), 1024 * 1024).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { limit } if limit == 1024 * 1024));
        assert_eq!(
            err.to_string(),
            "the body is larger than 1 MiB once decompressed"
        );
        assert!(matches!(
            decode(&[b'a'; 2048], None, 1024),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn bad_gzip_and_unknown_encodings_are_errors() {
        assert!(matches!(
            decode(b"not gzip", Some("gzip"), 1024),
            Err(DecodeError::Gzip(_))
        ));
        let mut truncated = gzip(b"hello world, hello world");
        truncated.truncate(truncated.len() - 6);
        assert!(matches!(
            decode(&truncated, Some("gzip"), 1024),
            Err(DecodeError::Gzip(_))
        ));
        assert!(matches!(
            decode(b"x", Some("br"), 1024),
            Err(DecodeError::UnsupportedEncoding(e)) if e == "br"
        ));
        assert_eq!(
            decode(b"x", Some("identity"), 1024).unwrap().lines,
            vec!["x"]
        );
    }

    #[test]
    fn tokens_are_taken_from_bearer_and_basic() {
        let basic = |s: &str| format!("Basic {}", STANDARD.encode(s));
        assert_eq!(presented_token("Bearer s3cret").as_deref(), Some("s3cret"));
        assert_eq!(
            presented_token("bearer  s3cret ").as_deref(),
            Some("s3cret")
        );
        assert_eq!(
            presented_token(&basic("vector:s3cret")).as_deref(),
            Some("s3cret")
        );
        assert_eq!(presented_token(&basic(":pa:ss")).as_deref(), Some("pa:ss"));
        let unpadded = format!("Basic {}", STANDARD_NO_PAD.encode("u:s3cret"));
        assert_eq!(presented_token(&unpadded).as_deref(), Some("s3cret"));
        assert_eq!(presented_token(&basic("no-colon")), None);
        assert_eq!(presented_token("Basic !!!"), None);
        assert_eq!(presented_token("Digest abc"), None);
        assert_eq!(presented_token("s3cret"), None);
    }

    #[test]
    fn the_registry_hands_out_the_sink_only_for_the_right_token() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink: LineSink = {
            let got = got.clone();
            Arc::new(move |lines, malformed| got.lock().unwrap().push((lines, malformed)))
        };
        let registry = Registry::default();
        registry.register("app", "s3cret", sink.clone()).unwrap();
        assert!(matches!(
            registry.register("app", "other", sink.clone()),
            Err(RegisterError::Duplicate(_))
        ));
        assert!(matches!(
            registry.register("b", "  ", sink.clone()),
            Err(RegisterError::EmptyToken(_))
        ));
        assert!(matches!(
            registry.register("a/b", "t", sink.clone()),
            Err(RegisterError::BadName(_))
        ));
        assert_eq!(registry.names(), vec!["app"]);
        assert!(!format!("{registry:?}").contains("s3cret"));

        let refusal = |source: &str, auth: Option<&str>| registry.authorize(source, auth).err();
        assert_eq!(
            refusal("nope", Some("Bearer s3cret")),
            Some(Refusal::UnknownSource)
        );
        assert_eq!(refusal("app", None), Some(Refusal::MissingCredentials));
        assert_eq!(
            refusal("app", Some("Token s3cret")),
            Some(Refusal::MissingCredentials)
        );
        assert_eq!(
            refusal("app", Some("Bearer s3cre")),
            Some(Refusal::WrongCredentials)
        );
        let basic = format!("Basic {}", STANDARD.encode("vector:s3cret"));
        for auth in ["Bearer s3cret", basic.as_str()] {
            let sink = registry.authorize("app", Some(auth)).expect("authorized");
            sink(vec!["x".into()], 1);
        }
        assert_eq!(got.lock().unwrap().len(), 2);
    }
}
