//! Label matchers, as Alertmanager writes them: `team = "ops"`,
//! `env =~ "prod|staging"`, `team != "db"`, `app !~ "test-.*"`. A regex is
//! anchored at both ends (`=~ "prod"` does not match `preprod`), and a label
//! a check does not carry counts as empty, so `team != "db"` matches a check
//! with no team. Used by `[[routes]] match` and `[[maintenance]] match`.
//!
//! In the config (`crate::config` reads it), `match` is either a table of
//! equalities (`{ team = "ops" }`) or a list of matcher strings
//! (`['team = "ops"', 'env =~ "prod|staging"']`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// How a matcher compares a label's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Equal => "=",
            Op::NotEqual => "!=",
            Op::Regex => "=~",
            Op::NotRegex => "!~",
        }
    }
}

/// One `label op "value"`.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub label: String,
    pub op: Op,
    /// As written (for a regex, before anchoring).
    pub value: String,
    /// `^(?:value)$` for `=~` and `!~`.
    regex: Option<regex::Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        (&self.label, self.op, &self.value) == (&other.label, other.op, &other.value)
    }
}

impl Matcher {
    /// `label op value`; a regex is compiled (anchored) now.
    pub fn new(label: &str, op: Op, value: &str) -> Result<Matcher, String> {
        let regex = match op {
            Op::Regex | Op::NotRegex => Some(
                regex::Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("invalid regex {value:?}: {e}"))?,
            ),
            Op::Equal | Op::NotEqual => None,
        };
        Ok(Matcher {
            label: label.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// Whether `labels` satisfy it (a missing label is the empty string).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let have = labels.get(&self.label).map_or("", String::as_str);
        match (self.op, &self.regex) {
            (Op::Equal, _) => have == self.value,
            (Op::NotEqual, _) => have != self.value,
            (Op::Regex, Some(re)) => re.is_match(have),
            (Op::NotRegex, Some(re)) => !re.is_match(have),
            // `new` compiles a regex for both regex operators.
            (Op::Regex | Op::NotRegex, None) => false,
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.label, self.op.as_str(), self.value)
    }
}

impl FromStr for Matcher {
    type Err = String;
    /// `team = "ops"`, `env=~"prod|staging"`, `team != db` (quotes optional).
    fn from_str(s: &str) -> Result<Matcher, String> {
        let at = s.find(['=', '!']).ok_or_else(|| {
            format!("{s:?} is not a matcher (expected label = \"value\", =~, != or !~)")
        })?;
        let (label, rest) = (s[..at].trim(), &s[at..]);
        let (op, value) = [Op::Regex, Op::NotRegex, Op::NotEqual, Op::Equal]
            .into_iter()
            .find_map(|op| rest.strip_prefix(op.as_str()).map(|v| (op, v)))
            .ok_or_else(|| format!("{s:?}: expected =, !=, =~ or !~ after the label"))?;
        let valid_label = label
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        if !valid_label {
            return Err(format!("{s:?}: {label:?} is not a label name"));
        }
        Matcher::new(label, op, &unquote(value.trim())?)
    }
}

/// `"a \"b\""` → `a "b"`; an unquoted value as is.
fn unquote(v: &str) -> Result<String, String> {
    let Some(inner) = v.strip_prefix('"') else {
        return Ok(v.to_string());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or_else(|| format!("unterminated quote in {v:?}"))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => out.push('\n'),
                Some(escaped) => out.push(escaped),
                None => return Err(format!("{v:?} ends in a lone backslash")),
            },
            (c, false) => out.push(c),
        }
    }
    Ok(out)
}

/// Every matcher of a `match`, all of which must hold (none: everything matches).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|m| m.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Equalities, as `match = { label = "value" }` writes them.
    pub fn equal(pairs: &[(&str, &str)]) -> Matchers {
        Matchers(
            pairs
                .iter()
                .filter_map(|(k, v)| Matcher::new(k, Op::Equal, v).ok())
                .collect(),
        )
    }
}

impl fmt::Display for Matchers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_four_operators_like_alertmanager() {
        let prod = labels(&[("env", "prod"), ("team", "ops")]);
        let preprod = labels(&[("env", "preprod")]);
        let cases = [
            ("team = \"ops\"", true, false),
            ("team=ops", true, false),
            ("team != \"ops\"", false, true),
            ("env =~ \"prod|staging\"", true, false),
            ("env !~ \"prod|staging\"", false, true),
            ("env =~ \"pre.*\"", false, true),
            ("team = \"\"", false, true),
            ("team =~ \".*\"", true, true),
        ];
        for (text, on_prod, on_preprod) in cases {
            let m: Matcher = text.parse().unwrap();
            assert_eq!(m.matches(&prod), on_prod, "{text} on prod");
            assert_eq!(m.matches(&preprod), on_preprod, "{text} on preprod");
        }
    }

    #[test]
    fn quoted_values_may_hold_operators_and_escapes() {
        let m: Matcher = r#"msg = "a != \"b\"""#.parse().unwrap();
        assert_eq!(
            (m.label.as_str(), m.op, m.value.as_str()),
            ("msg", Op::Equal, "a != \"b\"")
        );
    }

    #[test]
    fn bad_matchers_are_refused_with_the_reason() {
        for (text, says) in [
            ("team", "is not a matcher"),
            ("env =~ \"(prod\"", "invalid regex"),
            ("= \"ops\"", "is not a label name"),
            ("team = \"ops", "unterminated quote"),
            ("team ! ops", "expected =, !=, =~ or !~"),
        ] {
            let err = text.parse::<Matcher>().unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
