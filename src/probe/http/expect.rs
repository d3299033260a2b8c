//! The `http` probe's expectations: the status, the body's text, regex and
//! JSON values, judged on the final response; and the words it uses.

use std::fmt::Write as _;

use http::StatusCode;

use super::{Probe, Response, Run};

impl Probe {
    /// The expectations, in order: status, body text, regex, JSON values.
    pub(super) fn judge(&self, response: &Response, run: &mut Run) -> Result<String, String> {
        let expect = self.expect.as_deref().unwrap_or(&super::ANY_2XX);
        let status = response.status;
        let ok = match &expect.status {
            Some(accepted) => accepted.contains(&status.as_u16()),
            None => status.is_success(),
        };
        if !ok {
            let wanted = match &expect.status {
                Some(accepted) => {
                    let list: Vec<String> = accepted.iter().map(u16::to_string).collect();
                    format!("status {}", list.join(" or "))
                }
                None => "a 2xx status".into(),
            };
            return Err(format!("expected {wanted}, got {}", status_text(status)));
        }
        let text = String::from_utf8_lossy(&response.body);
        let read = if response.truncated {
            " (only the first 1 MiB was read)"
        } else {
            ""
        };
        if let Some(needle) = &expect.body_contains
            && !text.contains(needle.as_str())
        {
            return Err(format!("body does not contain {needle:?}{read}"));
        }
        if let Some(regex) = &expect.body_regex
            && !regex.is_match(&text)
        {
            run.failed_due_to_regex = true;
            return Err(format!("body does not match /{}/{read}", regex.as_str()));
        }
        if !expect.json.is_empty() {
            let doc: serde_json::Value = serde_json::from_slice(&response.body)
                .map_err(|e| format!("body is not JSON: {e}{read}"))?;
            for (path, expected) in &expect.json {
                match json_at(&doc, path) {
                    None => return Err(format!("json {path}: not found in the body")),
                    Some(found) if found != *expected => {
                        return Err(format!(
                            "json {path}: expected {expected:?}, found {found:?}"
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        // Whole milliseconds, rounded, in integers: formatting the float
        // cost more than the rest of the message.
        let ms = (run.started.elapsed().as_micros() + 500) / 1000;
        // Room for the words a reused connection adds (keepalive::Got::words).
        let mut message = String::with_capacity(80);
        write_status(&mut message, status);
        let _ = write!(message, " in {ms} ms");
        match run.redirects {
            0 => {}
            1 => message.push_str(" after 1 redirect"),
            n => {
                let _ = write!(message, " after {n} redirects");
            }
        }
        Ok(message)
    }
}

/// `503 Service Unavailable`, or just the number when it has no name.
pub(super) fn status_text(status: StatusCode) -> String {
    let mut text = String::new();
    write_status(&mut text, status);
    text
}

/// [`status_text`], written at the end of `out`.
fn write_status(out: &mut String, status: StatusCode) {
    let _ = write!(out, "{}", status.as_u16());
    if let Some(reason) = status.canonical_reason() {
        out.push(' ');
        out.push_str(reason);
    }
}

/// The value at a dotted `path` (`checks.db`, `items.0.name`), as a string:
/// strings as they are, anything else as compact JSON.
fn json_at(doc: &serde_json::Value, path: &str) -> Option<String> {
    let mut at = doc;
    for key in path.split('.') {
        at = match at {
            serde_json::Value::Object(map) => map.get(key)?,
            serde_json::Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(match at {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_reach_into_objects_and_arrays() {
        let doc = serde_json::json!({"status": "ok", "checks": {"db": "up", "n": 3}, "items": [{"ok": true}]});
        assert_eq!(json_at(&doc, "status").as_deref(), Some("ok"));
        assert_eq!(json_at(&doc, "checks.db").as_deref(), Some("up"));
        assert_eq!(json_at(&doc, "checks.n").as_deref(), Some("3"));
        assert_eq!(json_at(&doc, "items.0.ok").as_deref(), Some("true"));
        assert_eq!(json_at(&doc, "checks.cache"), None);
        assert_eq!(json_at(&doc, "status.deeper"), None);
    }
}
