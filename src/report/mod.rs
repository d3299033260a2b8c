//! Reports people read and keep (DESIGN.md §8, `keeper report`): documents
//! built from keeper's config, its database and the services it watches,
//! written by pure functions; the CLI writes them to files or stdout and the
//! HTTP API serves them. One file (or folder) per report. A coordinator in
//! the engine's layer: it may use config, store, the probes' API clients and
//! core; the layers above (the CLI, the HTTP API) use it.

pub mod cost;
pub mod health;
pub mod incident;

/// Text as Markdown shows it literally, on one line: what could start
/// formatting or break a table cell is escaped (the reports' one rule).
pub(crate) fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '|' | '*' | '_' | '`' | '<' | '>' | '[' | ']' | '#' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The text of a report's section `heading` (up to the next `## `), for
/// the reports' unit tests.
#[cfg(test)]
pub(crate) fn section<'a>(report: &'a str, heading: &str) -> &'a str {
    let start = report
        .find(&format!("## {heading}\n"))
        .unwrap_or_else(|| panic!("no section {heading} in\n{report}"));
    let rest = &report[start + heading.len() + 4..];
    &rest[..rest.find("\n## ").map_or(rest.len(), |e| e + 1)]
}
