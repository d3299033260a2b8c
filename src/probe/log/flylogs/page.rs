//! Decoding one answer of Fly's logs API: the documented object
//! (`{"data": [{"attributes": {…}}], "meta": {"next_token": "…"}}`) with keys
//! in any case, or NDJSON. Pure: tested without a server.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// One answer of the logs API, decoded.
#[derive(Debug, Default, PartialEq)]
pub struct Page {
    /// Each entry's `attributes`, keys lowercased.
    pub entries: Vec<Map<String, Value>>,
    pub next_token: Option<String>,
    /// Entries that are not objects.
    pub malformed: usize,
}

/// Decodes `{"data": [{"attributes": {…}}], "meta": {"next_token": "…"}}`
/// with keys in any case, or NDJSON (one entry per line, as Fly's docs
/// describe the same endpoint). Keys are lowercased throughout, so the rules
/// find `message`, `level` and `meta.http.response.status_code` whichever
/// casing the API uses. An entry without `attributes` is taken whole.
pub fn parse_page(body: &[u8]) -> Result<Page, String> {
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        return Ok(Page::default());
    }
    let whole_error = match serde_json::from_str::<Value>(&text) {
        Ok(value) => return page_of(lowercase_keys(value)),
        Err(e) => e,
    };
    // NDJSON: every line an object.
    let mut page = Page::default();
    let mut parsed = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line).map(lowercase_keys) {
            Ok(Value::Object(mut object)) => {
                parsed += 1;
                if let Some(Value::String(token)) = object.remove("next_token") {
                    page.next_token = Some(token);
                    if object.is_empty() {
                        continue;
                    }
                }
                match entry_of(Value::Object(object)) {
                    Some(entry) => page.entries.push(entry),
                    None => page.malformed += 1,
                }
            }
            _ => page.malformed += 1,
        }
    }
    if parsed == 0 {
        return Err(format!("the answer is not JSON ({whole_error})"));
    }
    Ok(page)
}

/// A whole-body JSON answer: the documented object, or a bare array of entries.
fn page_of(value: Value) -> Result<Page, String> {
    let (data, next_token) = match value {
        Value::Object(mut object) => match object.remove("data") {
            Some(data) => {
                let token = object
                    .remove("meta")
                    .and_then(|mut meta| meta.get_mut("next_token").map(Value::take));
                (data, token)
            }
            // One NDJSON line: a single entry, or just the token.
            None => {
                let token = object.remove("next_token");
                let entries = if object.is_empty() {
                    vec![]
                } else {
                    vec![Value::Object(object)]
                };
                (Value::Array(entries), token)
            }
        },
        Value::Array(_) => (value, None),
        other => {
            return Err(format!(
                "expected a JSON object with \"data\", got {}",
                kind(&other)
            ));
        }
    };
    let mut page = Page {
        next_token: match next_token {
            Some(Value::String(token)) => Some(token),
            _ => None,
        },
        ..Page::default()
    };
    match data {
        Value::Array(entries) => {
            for entry in entries {
                match entry_of(entry) {
                    Some(entry) => page.entries.push(entry),
                    None => page.malformed += 1,
                }
            }
        }
        Value::Null => {}
        other => {
            return Err(format!(
                "expected \"data\" to be a list, got {}",
                kind(&other)
            ));
        }
    }
    Ok(page)
}

/// An entry's `attributes` object, or the entry itself when it has none.
fn entry_of(entry: Value) -> Option<Map<String, Value>> {
    match entry {
        Value::Object(mut object) => match object.remove("attributes") {
            Some(Value::Object(attributes)) => Some(attributes),
            Some(_) => None,
            None => Some(object),
        },
        _ => None,
    }
}

/// When an entry was logged, from its RFC 3339 `timestamp`.
pub fn timestamp(entry: &Map<String, Value>) -> Option<DateTime<Utc>> {
    let raw = entry.get("timestamp")?.as_str()?;
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn lowercase_keys(value: Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .into_iter()
                .map(|(k, v)| (k.to_lowercase(), lowercase_keys(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(lowercase_keys).collect()),
        other => other,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_page_gives_each_entrys_attributes() {
        let body = br#"{"data": [{"id": "1", "type": "log",
            "attributes": {"timestamp": "2024-01-01T00:00:00.123456789Z", "message": "GET / 200",
              "level": "info", "instance": "148e127a0b4589", "region": "cdg",
              "meta": {"http": {"response": {"status_code": 200}}}}}],
            "meta": {"next_token": "opaque-cursor"}}"#;
        let page = parse_page(body).unwrap();
        assert_eq!(page.next_token.as_deref(), Some("opaque-cursor"));
        assert_eq!(page.malformed, 0);
        assert_eq!(page.entries.len(), 1);
        let entry = &page.entries[0];
        assert_eq!(entry["message"], "GET / 200");
        assert_eq!(entry["meta"]["http"]["response"]["status_code"], 200);
        assert!(entry.get("id").is_none(), "only the attributes");
    }

    #[test]
    fn title_case_keys_are_read_and_lowercased() {
        let body = br#"{"Data": [{"Id": "1", "Attributes": {"Timestamp": "2024-01-01T00:00:00Z",
            "Message": "boom", "Level": "error", "Meta": {"Http": {"Response": {"Status_Code": 503}}}}},
            {"Attributes": "nonsense"}, 7],
            "Meta": {"Next_Token": "t2"}}"#;
        let page = parse_page(body).unwrap();
        assert_eq!(page.next_token.as_deref(), Some("t2"));
        assert_eq!(page.malformed, 2);
        assert_eq!(page.entries[0]["message"], "boom");
        assert_eq!(page.entries[0]["level"], "error");
        assert_eq!(
            page.entries[0]["meta"]["http"]["response"]["status_code"],
            503
        );
    }

    #[test]
    fn ndjson_answers_are_read_line_by_line() {
        let body = b"{\"attributes\": {\"message\": \"a\"}}\n\
            {\"event\": {\"provider\": \"app\"}, \"log\": {\"level\": \"error\"}, \"message\": \"b\"}\n\
            not json\n\
            {\"next_token\": \"t3\"}\n";
        let page = parse_page(body).unwrap();
        assert_eq!(page.entries.len(), 2);
        assert_eq!(page.entries[0]["message"], "a");
        assert_eq!(page.entries[1]["log"]["level"], "error");
        assert_eq!(page.malformed, 1);
        assert_eq!(page.next_token.as_deref(), Some("t3"));
        // A one-line answer parses whole.
        let one = parse_page(br#"{"Message": "only"}"#).unwrap();
        assert_eq!(one.entries.len(), 1);
        assert_eq!(one.entries[0]["message"], "only");
        let token_only = parse_page(br#"{"next_token": "t4"}"#).unwrap();
        assert!(token_only.entries.is_empty());
        assert_eq!(token_only.next_token.as_deref(), Some("t4"));
    }

    #[test]
    fn empty_and_garbage_answers() {
        assert_eq!(parse_page(b"").unwrap(), Page::default());
        let empty = parse_page(br#"{"data": [], "meta": {"next_token": ""}}"#).unwrap();
        assert!(empty.entries.is_empty());
        assert_eq!(parse_page(br#"{"data": null}"#).unwrap(), Page::default());
        let err = parse_page(b"<html>502 Bad Gateway</html>").unwrap_err();
        assert!(err.starts_with("the answer is not JSON"), "{err}");
        assert!(parse_page(br#"{"data": [{"attributes""#).is_err());
        let err = parse_page(br#"{"data": "x"}"#).unwrap_err();
        assert_eq!(err, "expected \"data\" to be a list, got a string");
        assert!(parse_page(b"42").is_err());
    }
}
