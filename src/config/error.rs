//! Config errors: each names `file:line:column` and the key, and all are
//! reported together.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::core::redact::Secrets;

/// One problem in the config file.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no position (an unreadable file).
    pub line: usize,
    pub column: usize,
    /// The dotted key the problem is about (`checks.web.interval`); empty for syntax errors.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one load, in file order.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn single(file: &Path, message: String) -> ConfigErrors {
        ConfigErrors(vec![ConfigError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            message,
        }])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Gathers errors while the config is read, turning byte spans into line:column.
pub(super) struct Collector<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<(usize, ConfigError)>,
    /// Values from secret files, masked in every message.
    secrets: Secrets,
}

impl<'a> Collector<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        Collector {
            file,
            text,
            errors: Vec::new(),
            secrets: Secrets::default(),
        }
    }

    /// Masks these values in every message (the secrets `${file:…}` read).
    pub fn mask(&mut self, secrets: Secrets) {
        self.secrets = secrets;
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// An error at a byte span of the file.
    pub fn at(&mut self, span: Range<usize>, key: &str, message: String) {
        let (line, column) = line_column(self.text, span.start);
        self.errors.push((
            span.start,
            ConfigError {
                file: self.file.to_path_buf(),
                line,
                column,
                key: key.to_string(),
                message: self.secrets.mask(&message),
            },
        ));
    }

    /// The file's text at `span`, as written (before `${VAR}` expansion).
    pub fn written(&self, span: Range<usize>) -> &str {
        self.text.get(span).unwrap_or_default()
    }

    /// An error from the TOML reader, at its span when it has one. `key` is the
    /// section being read; a field named in the message (`unknown field `x``)
    /// is appended to it.
    pub fn toml(&mut self, key: &str, e: toml::de::Error) {
        let message = e.message().trim().to_string();
        let key = match backticked_field(&message) {
            Some(field) if !key.is_empty() => format!("{key}.{field}"),
            Some(field) => field.to_string(),
            None => key.to_string(),
        };
        match e.span() {
            Some(span) => self.at(span, &key, message),
            None => self.at(0..0, &key, message),
        }
    }

    pub fn finish(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|(pos, _)| *pos);
        ConfigErrors(self.errors.into_iter().map(|(_, e)| e).collect())
    }
}

/// Whether a reader's message names the field it is about (`unknown field `x``).
pub(super) fn names_field(message: &str) -> bool {
    backticked_field(message.trim()).is_some()
}

/// `unknown field `bogus`, expected …` → `bogus`; `missing field `url`` → `url`.
fn backticked_field(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    rest.split('`').next()
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 11), (2, 6));
    }
}
