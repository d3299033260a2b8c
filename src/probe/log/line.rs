//! Reading one raw log line: a JSON object (structured app logs, Fly's log
//! shipper / NATS shape, a Fly logs API entry) or plain text (an nginx or
//! Apache access log line, anything else). What comes out is the text people
//! read (the message), the level when the line names one, and the HTTP status
//! when the line is about a response.
//!
//! The JSON reader walks the object once with serde, borrowing strings from
//! the line (no allocation unless a string holds escapes) and skipping every
//! field it does not know. Keys are matched without regard to case (Fly's
//! logs API comes from Go structs; its key casing is not documented).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The longest line read: past it a line is cut (never split in two).
pub const MAX_LINE: usize = 64 * 1024;

/// A line's level, when it names one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// `error`, `err`.
    Error,
    /// `fatal`, `critical`, `crit`, `emerg`, `alert`, `panic`.
    Fatal,
    /// Any other level (`info`, `warn`, `debug`, …).
    Other,
}

impl Level {
    /// Reads a level as loggers write it, in any case.
    pub fn parse(s: &str) -> Level {
        let s = s.trim();
        let any = |names: &[&str]| names.iter().any(|n| s.eq_ignore_ascii_case(n));
        if any(&["error", "err", "eror"]) {
            Level::Error
        } else if any(&[
            "fatal",
            "critical",
            "crit",
            "emerg",
            "emergency",
            "alert",
            "panic",
        ]) {
            Level::Fatal
        } else {
            Level::Other
        }
    }

    /// pino's and bunyan's numeric levels: 50 error, 60 fatal.
    fn from_number(n: f64) -> Level {
        if n >= 60.0 {
            Level::Fatal
        } else if n >= 50.0 {
            Level::Error
        } else {
            Level::Other
        }
    }

    pub fn is_error(self) -> bool {
        matches!(self, Level::Error | Level::Fatal)
    }
}

/// What one line says.
#[derive(Clone, Debug, PartialEq)]
pub struct Line<'a> {
    /// The text patterns are matched against: a JSON object's message (the
    /// whole object's text when it has none), else the whole line.
    pub text: Cow<'a, str>,
    pub level: Option<Level>,
    /// The HTTP status the line reports, if any.
    pub status: Option<u16>,
    /// Whether the line was a JSON object.
    pub json: bool,
}

/// `raw` cut to at most [`MAX_LINE`] bytes, on a character boundary.
pub fn truncate(raw: &str) -> &str {
    if raw.len() <= MAX_LINE {
        return raw;
    }
    let mut end = MAX_LINE;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    &raw[..end]
}

/// Reads one raw line (already cut to [`MAX_LINE`]).
pub fn read(raw: &str) -> Line<'_> {
    let trimmed = raw.trim_ascii_start();
    if trimmed.starts_with('{')
        && let Some(fields) = json_fields(trimmed)
    {
        return from_fields(fields, raw);
    }
    Line {
        text: Cow::Borrowed(raw),
        level: None,
        status: access_log_status(raw),
        json: false,
    }
}

fn from_fields<'a>(mut f: Fields<'a>, raw: &'a str) -> Line<'a> {
    let mut text = f.message.take().or(f.msg.take()).or(f.log_text.take());
    // An app's own JSON line, wrapped by a shipper into its message (Fly's
    // NATS shape): its level and status are the app's, and more to the point
    // than the wrapper's.
    if let Some(inner) = text.as_deref().map(str::trim_ascii)
        && inner.starts_with('{')
        && let Some(inner) = json_fields(inner)
    {
        f.level = inner.level.or(f.level);
        f.status = f.status.or(inner.status);
        let inner_text = inner.message.or(inner.msg).or(inner.log_text);
        if let Some(t) = inner_text {
            text = Some(Cow::Owned(t.into_owned()));
        }
    }
    let text = match text {
        Some(Cow::Borrowed(t)) => Cow::Borrowed(t.trim_ascii_end()),
        Some(Cow::Owned(t)) => Cow::Owned(t.trim_ascii_end().to_string()),
        None => Cow::Borrowed(raw),
    };
    let status = f.status.or_else(|| access_log_status(&text));
    Line {
        text,
        level: f.level,
        status,
        json: true,
    }
}

/// The fields of a JSON object that matter here; `None` when `s` is not one
/// JSON object.
fn json_fields(s: &str) -> Option<Fields<'_>> {
    let mut fields = Fields::default();
    let mut de = serde_json::Deserializer::from_str(s);
    Walk {
        fields: &mut fields,
        at: At::Root,
    }
    .deserialize(&mut de)
    .ok()?;
    de.end().ok()?;
    Some(fields)
}

/// The HTTP status of an access log line (nginx / Apache common and combined
/// formats): the three digits after the quoted request,
/// `… "GET /path HTTP/1.1" 503 …`. The request must start with a method in
/// capitals (or be `"-"`, as nginx logs a request it could not read), so
/// other quoted text followed by a number is not taken for one.
pub fn access_log_status(line: &str) -> Option<u16> {
    let bytes = line.as_bytes();
    let open = memchr::memchr(b'"', bytes)?;
    let rest = &bytes[open + 1..];
    if !request_start(rest) {
        return None;
    }
    // The closing quote: Apache escapes quotes inside the request as \".
    let mut i = 0;
    let close = loop {
        let q = memchr::memchr(b'"', &rest[i..])? + i;
        if q == 0 || rest[q - 1] != b'\\' {
            break q;
        }
        i = q + 1;
    };
    let after = &rest[close + 1..];
    let digits = after.strip_prefix(b" ")?;
    if digits.len() < 3 || !digits[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits.get(3).is_some_and(|b| !b.is_ascii_whitespace()) {
        return None;
    }
    let status = u16::from(digits[0] - b'0') * 100
        + u16::from(digits[1] - b'0') * 10
        + u16::from(digits[2] - b'0');
    (100..=599).contains(&status).then_some(status)
}

/// Whether a quoted request starts `METHOD ` (capitals) or is `-`.
fn request_start(rest: &[u8]) -> bool {
    if rest.starts_with(b"-\"") {
        return true;
    }
    let method = rest.iter().take_while(|b| b.is_ascii_uppercase()).count();
    (1..=16).contains(&method) && rest.get(method) == Some(&b' ')
}

/// What the walk keeps; the first value found for each wins.
#[derive(Debug, Default)]
struct Fields<'a> {
    message: Option<Cow<'a, str>>,
    msg: Option<Cow<'a, str>>,
    /// `log` as a string (Docker's json-file driver).
    log_text: Option<Cow<'a, str>>,
    level: Option<Level>,
    status: Option<u16>,
}

/// Where in the object a value is, and so what it means.
#[derive(Clone, Copy, Debug, PartialEq)]
enum At {
    /// The line's object, or a Fly logs API entry's `attributes`.
    Root,
    Message,
    Msg,
    /// `log`: the message (a string) or `{"level": …}` (Fly's NATS shape).
    Log,
    Level,
    Status,
    /// `http` or `meta.http`: `{"response": {"status_code": …}}`.
    Http,
    Response,
    /// `meta` (Fly logs API): `{"http": …}`.
    Meta,
    Ignore,
}

impl At {
    /// What the value under `key` means, inside an object at `self`.
    fn child(self, key: &str) -> At {
        let is = |name: &str| key.eq_ignore_ascii_case(name);
        match self {
            At::Root => {
                if is("message") {
                    At::Message
                } else if is("msg") {
                    At::Msg
                } else if is("log") {
                    At::Log
                } else if is("level") || is("severity") || is("lvl") || is("log.level") {
                    At::Level
                } else if is("status")
                    || is("status_code")
                    || is("http.response.status_code")
                    || is("meta.http.response.status_code")
                {
                    At::Status
                } else if is("http") {
                    At::Http
                } else if is("meta") {
                    At::Meta
                } else if is("attributes") {
                    At::Root
                } else {
                    At::Ignore
                }
            }
            At::Log if is("level") => At::Level,
            At::Http if is("response") => At::Response,
            At::Response if is("status_code") => At::Status,
            At::Meta if is("http") => At::Http,
            _ => At::Ignore,
        }
    }
}

/// Walks one value at `at`, keeping what it means in `fields`.
struct Walk<'f, 'a> {
    fields: &'f mut Fields<'a>,
    at: At,
}

/// Reads a key, answering what its value means.
struct Key(At);

impl<'de> DeserializeSeed<'de> for Key {
    type Value = At;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<At, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = At;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<At, E> {
        Ok(self.0.child(key))
    }
}

impl<'de, 'f> DeserializeSeed<'de> for Walk<'f, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de, 'f> Walk<'f, 'de> {
    /// A string value: kept when it is a message, read when it is a level or
    /// a status; `keep` makes the owned copy only when it is kept.
    fn string<S: AsRef<str>>(self, s: S, keep: impl FnOnce(S) -> Cow<'de, str>) {
        let slot = match self.at {
            At::Message => &mut self.fields.message,
            At::Msg => &mut self.fields.msg,
            At::Log => &mut self.fields.log_text,
            At::Level => {
                self.fields.level.get_or_insert(Level::parse(s.as_ref()));
                return;
            }
            At::Status => {
                if let Ok(status) = s.as_ref().trim().parse::<u16>()
                    && is_status(f64::from(status))
                {
                    self.fields.status.get_or_insert(status);
                }
                return;
            }
            _ => return,
        };
        if slot.is_none() {
            *slot = Some(keep(s));
        }
    }

    fn number(self, n: f64) {
        match self.at {
            At::Level => {
                self.fields.level.get_or_insert(Level::from_number(n));
            }
            At::Status if is_status(n) => {
                self.fields.status.get_or_insert(n as u16);
            }
            _ => {}
        }
    }
}

fn is_status(n: f64) -> bool {
    n.fract() == 0.0 && (100.0..=599.0).contains(&n)
}

impl<'de, 'f> Visitor<'de> for Walk<'f, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<(), E> {
        self.string(s, Cow::Borrowed);
        Ok(())
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        self.string(s, |s| Cow::Owned(s.to_string()));
        Ok(())
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<(), E> {
        self.string(s, Cow::Owned);
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<(), E> {
        self.number(n as f64);
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<(), E> {
        self.number(n as f64);
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<(), E> {
        self.number(n);
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let object = matches!(
            self.at,
            At::Root | At::Log | At::Http | At::Response | At::Meta
        );
        while let Some(child) = map.next_key_seed(Key(if object { self.at } else { At::Ignore }))? {
            if child == At::Ignore {
                map.next_value::<IgnoredAny>()?;
            } else {
                map.next_value_seed(Walk {
                    fields: &mut *self.fields,
                    at: child,
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_line(raw: &str) -> (String, Option<Level>, Option<u16>, bool) {
        let l = read(raw);
        (l.text.into_owned(), l.level, l.status, l.json)
    }

    #[test]
    fn structured_app_logs() {
        assert_eq!(
            read_line(r#"{"level":"error","msg":"payment failed","order":42}"#),
            ("payment failed".into(), Some(Level::Error), None, true)
        );
        assert_eq!(
            read_line(r#"{"severity":"CRITICAL","message":"disk gone"}"#),
            ("disk gone".into(), Some(Level::Fatal), None, true)
        );
        assert_eq!(
            read_line(r#"{"lvl":"info","message":"ok"}"#).1,
            Some(Level::Other)
        );
        // ECS: a dotted key, and the status nested or dotted.
        assert_eq!(
            read_line(
                r#"{"log.level":"warn","message":"slow","http":{"response":{"status_code":502}}}"#
            ),
            ("slow".into(), Some(Level::Other), Some(502), true)
        );
        assert_eq!(
            read_line(r#"{"message":"x","http.response.status_code":"404"}"#).2,
            Some(404)
        );
        // pino / bunyan numeric levels.
        assert_eq!(
            read_line(r#"{"level":50,"msg":"boom"}"#).1,
            Some(Level::Error)
        );
        assert_eq!(
            read_line(r#"{"level":60,"msg":"boom"}"#).1,
            Some(Level::Fatal)
        );
        assert_eq!(
            read_line(r#"{"level":30,"msg":"fine"}"#).1,
            Some(Level::Other)
        );
        // A status that is no HTTP status is not one.
        assert_eq!(read_line(r#"{"status":"active","message":"x"}"#).2, None);
        assert_eq!(read_line(r#"{"status":200.5,"message":"x"}"#).2, None);
        // Keys in any case; escapes in the message.
        assert_eq!(
            read_line(r#"{"Level":"Error","Message":"said \"no\"\n","Status":500}"#),
            ("said \"no\"".into(), Some(Level::Error), Some(500), true)
        );
        // Without a message the whole object is the text.
        let raw = r#"{"event":"login","level":"info"}"#;
        assert_eq!(read_line(raw).0, raw);
    }

    #[test]
    fn fly_log_shipper_and_nats_shape() {
        let raw = r#"{"event":{"provider":"app"},"fly":{"app":{"instance":"4d891d77b05118","name":"my-app"},"region":"lax"},"host":"f442","log":{"level":"error"},"message":"Traceback (most recent call last):","timestamp":"2023-06-27T01:19:11.789045558Z"}"#;
        assert_eq!(
            read_line(raw),
            (
                "Traceback (most recent call last):".into(),
                Some(Level::Error),
                None,
                true
            )
        );
        // The app logs JSON itself: its level wins over the shipper's.
        let wrapped = r#"{"log":{"level":"info"},"message":"{\"level\":\"error\",\"msg\":\"db down\",\"status\":503}"}"#;
        assert_eq!(
            read_line(wrapped),
            ("db down".into(), Some(Level::Error), Some(503), true)
        );
        // An nginx in the app: the access log line inside the message.
        let nginx = r#"{"log":{"level":"info"},"message":"10.0.0.1 - - [27/Nov/2026:08:00:00 +0000] \"POST /login HTTP/1.1\" 401 12 \"-\" \"curl/8\""}"#;
        assert_eq!(read_line(nginx).2, Some(401));
    }

    #[test]
    fn fly_logs_api_entry() {
        let raw = r#"{"id":"01H","type":"log","attributes":{"timestamp":"2024-01-01T00:00:00.123456789Z","message":"GET / 503","level":"info","instance":"148e127a0b4589","region":"cdg","meta":{"instance":"148e127a0b4589","region":"cdg","event":{"provider":"app"},"http":{"request":{"id":"x","method":"GET","version":"1.1"},"response":{"status_code":503}},"error":{"code":0,"message":""},"url":{"full":"https://x"}}}}"#;
        assert_eq!(
            read_line(raw),
            ("GET / 503".into(), Some(Level::Other), Some(503), true)
        );
        // The attributes object alone, TitleCase keys.
        let alone = r#"{"Message":"denied","Level":"warn","Meta":{"Http":{"Response":{"Status_Code":403}}}}"#;
        assert_eq!(read_line(alone).2, Some(403));
        // Docker's json-file driver.
        assert_eq!(
            read_line(r#"{"log":"ERROR boom\n","stream":"stderr"}"#).0,
            "ERROR boom"
        );
    }

    #[test]
    fn not_json_objects_are_text() {
        for raw in [
            "{not json",
            r#"{"message":"cut off"#,
            r#"{"a":1} trailing"#,
            "[1,2]",
            "plain words",
        ] {
            let l = read(raw);
            assert!(!l.json, "{raw}");
            assert_eq!(l.text, raw);
        }
    }

    #[test]
    fn access_log_lines() {
        let combined = r#"203.0.113.9 - frank [27/Nov/2026:08:00:00 +0000] "GET /api/orders?id=7 HTTP/1.1" 502 157 "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64)""#;
        assert_eq!(access_log_status(combined), Some(502));
        let common =
            r#"127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#;
        assert_eq!(access_log_status(common), Some(200));
        // Apache escapes a quote in the request as \".
        let escaped = r#"1.2.3.4 - - [x] "GET /a\"b HTTP/1.1" 403 0 "-" "-""#;
        assert_eq!(access_log_status(escaped), Some(403));
        // nginx logs an unreadable request as "-".
        let bad = r#"1.2.3.4 - - [x] "-" 400 0 "-" "-""#;
        assert_eq!(access_log_status(bad), Some(400));
        let l = read(combined);
        assert_eq!((l.status, l.json, l.level), (Some(502), false, None));
        // Not access log lines.
        for raw in [
            r#"user said "hello" 500 times"#,
            r#"x "GET / HTTP/1.1" 5000 1"#,
            r#"x "GET / HTTP/1.1" 20 1"#,
            r#"x "GET / HTTP/1.1" abc"#,
            r#"x "GET / HTTP/1.1"#,
            "no quotes 500",
        ] {
            assert_eq!(access_log_status(raw), None, "{raw}");
        }
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        let short = "x".repeat(10);
        assert_eq!(truncate(&short), short);
        let long = "é".repeat(MAX_LINE); // two bytes each
        let cut = truncate(&long);
        assert!(cut.len() <= MAX_LINE && cut.len() >= MAX_LINE - 1);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
