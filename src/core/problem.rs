//! [`SpecProblem`]: what a probe's or a channel's spec finds wrong with its
//! own keys when the config loads. The config turns each into an error at
//! `file:line:column` naming the key; building the part later repeats none
//! of these checks.

use std::fmt;
use std::ops::Range;

/// A problem with a spec's keys: the key (dotted from the check or channel,
/// `headers.X-Token`; empty: the table itself), its position in the file when
/// the spec knows it (else the config finds the key), and what is wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecProblem {
    pub key: String,
    pub span: Option<Range<usize>>,
    pub message: String,
}

impl SpecProblem {
    /// A problem with `key`, placed by the config where the key is written.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> SpecProblem {
        SpecProblem {
            key: key.into(),
            span: None,
            message: message.into(),
        }
    }

    /// The same problem at a known position.
    pub fn at(mut self, span: Range<usize>) -> SpecProblem {
        self.span = Some(span);
        self
    }
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
