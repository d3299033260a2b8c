//! Printing for a terminal: colors only when stdout is one and `NO_COLOR`
//! is not set (no-color.org), the width to fit (`COLUMNS`, else 80), and
//! text cut to a column. What is printed is the client verbs' business.

use std::borrow::Cow;
use std::io::IsTerminal;

/// Whether to color what is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paint(pub bool);

/// ANSI colors keeper uses.
pub const GREEN: &str = "32";
pub const YELLOW: &str = "33";
pub const RED: &str = "31";
/// Dim: for what is not known yet.
pub const DIM: &str = "2";

impl Paint {
    /// Colors when stdout is a terminal and `NO_COLOR` is unset or empty.
    pub fn for_stdout() -> Paint {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Paint(std::io::stdout().is_terminal() && !no_color)
    }

    /// `text` in `color` when painting, as it is otherwise.
    pub fn paint<'a>(self, text: &'a str, color: &str) -> Cow<'a, str> {
        if self.0 {
            Cow::Owned(format!("\x1b[{color}m{text}\x1b[0m"))
        } else {
            Cow::Borrowed(text)
        }
    }
}

/// The width to fit lines into: `COLUMNS` when it says at least 40, else 80.
pub fn width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .filter(|&c: &usize| c >= 40)
        .unwrap_or(80)
}

/// `text` on one line in at most `width` characters: control characters
/// (a newline, an escape a server sent) become spaces, and what does not
/// fit is cut with `…`.
pub fn fit(text: &str, width: usize) -> String {
    let clean = text.chars().map(|c| if c.is_control() { ' ' } else { c });
    if text.chars().count() <= width {
        return clean.collect();
    }
    let mut out: String = clean.take(width.saturating_sub(1)).collect();
    if width > 0 {
        out.push('…');
    }
    out
}

/// `at` as people read it in a terminal: `2026-11-30 05:01:02Z`.
pub fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// A duration in seconds as `1h 2m`, `3m 4s` or `5s`.
pub fn seconds(s: i64) -> String {
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{sec}s"),
        (0, _) => format!("{m}m {sec}s"),
        _ => format!("{h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_cuts_with_an_ellipsis_and_flattens_control_characters() {
        assert_eq!(fit("short", 10), "short");
        assert_eq!(fit("exactly10!", 10), "exactly10!");
        assert_eq!(fit("a little too long", 10), "a little …");
        assert_eq!(fit("a little too long", 10).chars().count(), 10);
        assert_eq!(fit("two\nlines\x1b[31m", 40), "two lines [31m");
        assert_eq!(fit("ééééé", 3), "éé…");
    }

    #[test]
    fn paint_colors_only_when_asked() {
        assert_eq!(Paint(false).paint("red", RED), "red");
        assert_eq!(Paint(true).paint("red", RED), "\x1b[31mred\x1b[0m");
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(seconds(5), "5s");
        assert_eq!(seconds(65), "1m 5s");
        assert_eq!(seconds(3 * 3600 + 120 + 7), "3h 2m");
    }
}
