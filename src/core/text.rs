//! Text hygiene: the one rule for text keeper did not write itself (a probe's
//! message, a plugin's output, a reason a peer gave) before it reaches
//! storage, metrics or channels. Such text is made valid UTF-8 without NUL or
//! other control characters and cut to [`MAX_TEXT`] bytes, visibly.
//!
//! PostgreSQL refuses NUL in text outright, so one NUL used to fail a whole
//! batch of samples; a 100 MiB plugin message would fill every channel.

use std::borrow::Cow;

/// The longest text kept, in bytes (UTF-8).
pub const MAX_TEXT: usize = 4096;

/// The longest name kept (a label, who acknowledged), in bytes.
pub const NAME_MAX: usize = 200;

/// `text` as keeper may store and send it: control characters other than
/// tab and newline replaced with U+FFFD, cut at [`MAX_TEXT`] bytes on a
/// character boundary with a note saying how much was cut. Borrowed when
/// nothing needed changing (the common case costs one scan).
pub fn clean(text: &str) -> Cow<'_, str> {
    clean_to(text, MAX_TEXT)
}

/// [`clean`] with another length limit (names, labels).
pub fn clean_to(text: &str, max: usize) -> Cow<'_, str> {
    let bad = |c: char| c.is_control() && c != '\n' && c != '\t';
    if text.len() <= max && !text.contains(bad) {
        return Cow::Borrowed(text);
    }
    let replaced: String = text
        .chars()
        .map(|c| {
            if bad(c) {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect();
    if replaced.len() <= max {
        return Cow::Owned(replaced);
    }
    let cut_bytes = replaced.len();
    let note = |kept: usize| format!(" … [cut {} bytes]", cut_bytes - kept);
    // The note takes room too: keep what fits beside the longest note.
    let mut keep = max.saturating_sub(note(0).len());
    while !replaced.is_char_boundary(keep) {
        keep -= 1;
    }
    let mut out = String::with_capacity(max);
    out.push_str(&replaced[..keep]);
    out.push_str(&note(keep));
    Cow::Owned(out)
}

/// Cleans `text` in place; true when it changed.
pub fn clean_in_place(text: &mut String) -> bool {
    match clean(text) {
        Cow::Borrowed(_) => false,
        Cow::Owned(cleaned) => {
            *text = cleaned;
            true
        }
    }
}

/// `text` without NUL, each replaced with U+FFFD: the store's own guard for
/// a sample's texts ([`clean`] has usually run before). PostgreSQL's text
/// cannot hold NUL, and a row it refuses would fail its whole batch, again
/// at every retry; SQLite stores the same, so the two read back alike.
/// Borrowed when there is none.
pub fn without_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// `text` safe inside HTML or SVG text and quoted attribute values: `&`,
/// `<`, `>`, `"` and `'` as entities. Borrowed when there is none.
pub fn escape_html(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped_and_plain_text_borrowed() {
        assert!(matches!(escape_html("200 OK"), Cow::Borrowed("200 OK")));
        assert_eq!(
            escape_html(r#"<script>alert("x's & y")</script>"#),
            "&lt;script&gt;alert(&quot;x&#39;s &amp; y&quot;)&lt;/script&gt;"
        );
    }

    #[test]
    fn leaves_ordinary_text_borrowed() {
        assert!(matches!(clean("200 OK in 12 ms"), Cow::Borrowed(_)));
        assert!(matches!(clean("two\nlines\tand a tab"), Cow::Borrowed(_)));
        assert!(matches!(clean("żółw ✓"), Cow::Borrowed(_)));
    }

    #[test]
    fn replaces_nul_and_control_characters() {
        assert_eq!(clean("CRIT \0 bad"), "CRIT \u{FFFD} bad");
        assert_eq!(
            clean("bell\x07 esc\x1b[31m"),
            "bell\u{FFFD} esc\u{FFFD}[31m"
        );
        assert_eq!(clean("del\x7f"), "del\u{FFFD}");
    }

    #[test]
    fn cuts_long_text_visibly_within_the_limit() {
        let long = "x".repeat(100_000);
        let cut = clean(&long);
        assert!(cut.len() <= MAX_TEXT, "{}", cut.len());
        assert!(cut.starts_with("xxxx"));
        let kept = cut.chars().take_while(|&c| c == 'x').count();
        assert!(
            cut.ends_with(&format!(" … [cut {} bytes]", 100_000 - kept)),
            "{}",
            &cut[cut.len() - 40..]
        );
    }

    #[test]
    fn cuts_on_a_character_boundary() {
        // Three bytes a character: no cut may split one.
        let long = "€".repeat(5000);
        let cut = clean_to(&long, 100);
        assert!(cut.len() <= 100);
        assert!(cut.starts_with("€€"));
        assert!(cut.contains("[cut "));
    }

    #[test]
    fn in_place_reports_a_change() {
        let mut s = String::from("fine");
        assert!(!clean_in_place(&mut s));
        let mut s = String::from("not\0fine");
        assert!(clean_in_place(&mut s));
        assert_eq!(s, "not\u{FFFD}fine");
    }
}
