//! Nagios plugin output: the first line is the message; performance data
//! follows a `|` on it, and (long output) after the first `|` on a later line,
//! through to the end.
//!
//! ```text
//! DISK OK - free space: / 3326 MB (56%) | /=2643MB;5948;5958;0;5968
//! / 15272 MB (77%);
//! /boot 68 MB (69%); | /boot=68MB;88;93;0;98
//! /home=69357MB;253404;253409;0;253414
//! ```
//!
//! Each item is `'label'=value[UOM];warn;crit;min;max`. keeper keeps the label
//! and the value in keeper's own units, named the way its metrics are:
//! times (`s`, `ms`, `us`) become milliseconds with `_ms` added to the label,
//! `%` adds `_pct`, sizes (`B`, `KB`, `MB`, `GB`, `TB`, 1024-based as the
//! monitoring plugins use them) become bytes with `_bytes`; a counter (`c`) or
//! a bare number keeps its label; any other unit is added to the label as
//! written (`rate=5ops` → `rate_ops`). warn/crit/min/max are not kept: the
//! plugin's exit code already applied them. Items that don't parse (no `=`,
//! no number, `U` for "no value") are skipped, not fatal.

/// The most values kept from one run.
pub const MAX_VALUES: usize = 100;

/// What a plugin printed, read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    /// The first line up to its `|`, trimmed.
    pub message: String,
    /// `(label, value)` in keeper's units, first of each label kept.
    pub values: Vec<(String, f64)>,
}

impl Output {
    pub fn parse(text: &str) -> Output {
        let mut lines = text.lines();
        let first = lines.next().unwrap_or("");
        let (message, mut perf) = match first.split_once('|') {
            Some((message, perf)) => (message, perf.to_string()),
            None => (first, String::new()),
        };
        let mut in_perf = false;
        for line in lines {
            if in_perf {
                perf.push(' ');
                perf.push_str(line);
            } else if let Some((_, more)) = line.split_once('|') {
                perf.push(' ');
                perf.push_str(more);
                in_perf = true;
            }
        }
        let mut values: Vec<(String, f64)> = Vec::new();
        for (label, value) in parse(&perf) {
            if values.len() >= MAX_VALUES {
                break;
            }
            if !values.iter().any(|(l, _)| *l == label) {
                values.push((label, value));
            }
        }
        Output {
            message: message.trim().to_string(),
            values,
        }
    }
}

/// Every well-formed item of a perfdata string, in keeper's units.
pub fn parse(perf: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut rest = perf;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return out;
        }
        let (item, after) = next_item(rest);
        rest = after;
        if let Some(item) = item {
            out.push(item);
        }
    }
}

/// Reads one item off the front of `s` (not starting with whitespace):
/// `Some((label, value))` when it is well formed, and what follows it.
fn next_item(s: &str) -> (Option<(String, f64)>, &str) {
    let (label, rest) = match s.strip_prefix('\'') {
        Some(quoted) => match quoted_label(quoted) {
            Some(found) => found,
            // An unclosed quote: nothing after it can be read reliably.
            None => return (None, ""),
        },
        None => {
            let end = s
                .find(|c: char| c == '=' || c.is_whitespace())
                .unwrap_or(s.len());
            (s[..end].to_string(), &s[end..])
        }
    };
    let Some(rest) = rest.strip_prefix('=') else {
        return (None, skip_word(rest));
    };
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (word, rest) = rest.split_at(end);
    if label.is_empty() {
        return (None, rest);
    }
    let value = word.split(';').next().unwrap_or("");
    (value_in_units(&label, value), rest)
}

/// `label'…` after an opening quote: the label (`''` is a quote) and what
/// follows the closing quote; `None` when the quote is never closed.
fn quoted_label(s: &str) -> Option<(String, &str)> {
    let mut label = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\'' {
            label.push(c);
        } else if chars.peek().map(|(_, c)| *c) == Some('\'') {
            label.push('\'');
            chars.next();
        } else {
            return Some((label, &s[i + 1..]));
        }
    }
    None
}

fn skip_word(s: &str) -> &str {
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    &s[end..]
}

/// `2643MB` for `label` → `("label_bytes", 2771386368.0)`; `None` when there is no number.
fn value_in_units(label: &str, value: &str) -> Option<(String, f64)> {
    let number = value.trim_end_matches(|c: char| c.is_alphabetic() || c == '%');
    let unit = &value[number.len()..];
    let number: f64 = if number.contains('.') {
        number.parse().ok()?
    } else {
        // A decimal comma, as plugins print under some locales.
        number.replace(',', ".").parse().ok()?
    };
    if !number.is_finite() {
        return None;
    }
    const KIB: f64 = 1024.0;
    let (suffix, factor) = match unit.to_ascii_lowercase().as_str() {
        "" | "c" => ("", 1.0),
        "s" => ("_ms", 1000.0),
        "ms" => ("_ms", 1.0),
        "us" => ("_ms", 0.001),
        "%" => ("_pct", 1.0),
        "b" => ("_bytes", 1.0),
        "kb" => ("_bytes", KIB),
        "mb" => ("_bytes", KIB * KIB),
        "gb" => ("_bytes", KIB * KIB * KIB),
        "tb" => ("_bytes", KIB * KIB * KIB * KIB),
        _ => {
            let name = format!("{label}_{unit}");
            return Some((name, number));
        }
    };
    let name = if label.ends_with(suffix) {
        label.to_string()
    } else {
        format!("{label}{suffix}")
    };
    Some((name, number * factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(perf: &str) -> Vec<(String, f64)> {
        parse(perf)
    }

    fn v(label: &str, value: f64) -> (String, f64) {
        (label.to_string(), value)
    }

    #[test]
    fn plain_items_with_thresholds_and_without() {
        assert_eq!(
            values("load1=0.5;5;10;0 load5=0.25 users=3;;;0;"),
            vec![v("load1", 0.5), v("load5", 0.25), v("users", 3.0)]
        );
    }

    #[test]
    fn quoted_labels_may_hold_spaces_equals_and_quotes() {
        assert_eq!(
            values("'free space'=12% 'a=b'=1 'it''s'=2"),
            vec![v("free space_pct", 12.0), v("a=b", 1.0), v("it's", 2.0)]
        );
    }

    #[test]
    fn units_become_keepers_units() {
        assert_eq!(
            values("time=0.25s t2=120ms t3=500us time_ms=3ms"),
            vec![
                v("time_ms", 250.0),
                v("t2_ms", 120.0),
                v("t3_ms", 0.5),
                v("time_ms", 3.0)
            ]
        );
        assert_eq!(
            values("/=2MB;5;6;0;8 b=10B k=1KB g=1GB t=1TB kb=2kB"),
            vec![
                v("/_bytes", 2.0 * 1024.0 * 1024.0),
                v("b_bytes", 10.0),
                v("k_bytes", 1024.0),
                v("g_bytes", 1024f64.powi(3)),
                v("t_bytes", 1024f64.powi(4)),
                v("kb_bytes", 2048.0),
            ]
        );
        assert_eq!(
            values("errors=17c rate=5ops neg=-1.5e2"),
            vec![v("errors", 17.0), v("rate_ops", 5.0), v("neg", -150.0)]
        );
    }

    #[test]
    fn decimal_commas_are_read() {
        assert_eq!(values("load=1,5;2,0"), vec![v("load", 1.5)]);
    }

    #[test]
    fn garbage_is_skipped_and_the_rest_kept() {
        assert_eq!(
            values("junk =5 a=U b= c=abc d=nan e=inf =3 f=1 ;;; g==2 h=7"),
            vec![v("f", 1.0), v("h", 7.0)]
        );
        assert_eq!(values("ok=1 'unclosed=2 x=3"), vec![v("ok", 1.0)]);
        assert_eq!(values(""), vec![]);
        assert_eq!(values("   \t "), vec![]);
    }

    #[test]
    fn message_is_the_first_line_before_the_bar() {
        let out = Output::parse("DISK OK - free space: / 3326 MB | /=2643MB;5948\nmore text\n");
        assert_eq!(out.message, "DISK OK - free space: / 3326 MB");
        assert_eq!(out.values, vec![v("/_bytes", 2643.0 * 1024.0 * 1024.0)]);
        let out = Output::parse("PING OK\n");
        assert_eq!(
            out,
            Output {
                message: "PING OK".into(),
                values: vec![]
            }
        );
        assert_eq!(Output::parse(""), Output::default());
    }

    #[test]
    fn long_output_perfdata_starts_at_the_first_later_bar() {
        let text = "DISK OK | /=1B\n/ 15272 MB (77%);\n/boot 68 MB (69%); | /boot=68B;88\n/home=2B;253404\nvar=3B\n";
        let out = Output::parse(text);
        assert_eq!(
            out.values,
            vec![
                v("/_bytes", 1.0),
                v("/boot_bytes", 68.0),
                v("/home_bytes", 2.0),
                v("var_bytes", 3.0)
            ]
        );
        // The `%` and `;` in long text before the bar are not perfdata.
        assert_eq!(out.message, "DISK OK");
    }

    #[test]
    fn repeated_labels_keep_the_first_and_the_count_is_bounded() {
        let out = Output::parse("x | a=1 a=2");
        assert_eq!(out.values, vec![v("a", 1.0)]);
        let many: Vec<String> = (0..500).map(|i| format!("v{i}=1")).collect();
        let out = Output::parse(&format!("x | {}", many.join(" ")));
        assert_eq!(out.values.len(), MAX_VALUES);
    }
}
