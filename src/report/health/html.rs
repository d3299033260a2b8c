//! The report's Markdown as HTML, for the email's HTML part: the subset the
//! report writes (headings, paragraphs, bullet lists, tables, `**bold**`,
//! `` `code` ``, `<br>` in a cell, and backslash escapes), everything else
//! escaped. Pure; no external assets.

use std::fmt::Write;

use crate::core::text::escape_html as escape;

/// A whole HTML document of `markdown`, titled `title`.
pub fn document(title: &str, markdown: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}</style>\
         </head><body>\n",
        escape(title)
    );
    out.push_str(&body(markdown));
    out.push_str("</body></html>\n");
    out
}

/// The HTML of `markdown`'s blocks.
pub fn body(markdown: &str) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = markdown.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() {
            i += 1;
        } else if let Some((level, text)) = heading(line) {
            let _ = writeln!(out, "<h{level}>{}</h{level}>", inline(text));
            i += 1;
        } else if line.starts_with("- ") {
            out.push_str("<ul>\n");
            while i < lines.len() && (lines[i].starts_with("- ") || lines[i].starts_with("  - ")) {
                let text = lines[i].trim_start().trim_start_matches("- ");
                let _ = writeln!(out, "<li>{}</li>", inline(text));
                i += 1;
            }
            out.push_str("</ul>\n");
        } else if line.starts_with('|') {
            let start = i;
            while i < lines.len() && lines[i].starts_with('|') {
                i += 1;
            }
            table(&mut out, &lines[start..i]);
        } else {
            let _ = writeln!(out, "<p>{}</p>", inline(line));
            i += 1;
        }
    }
    out
}

fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.chars().take_while(|c| *c == '#').count();
    (1..=6)
        .contains(&level)
        .then(|| line[level..].strip_prefix(' '))
        .flatten()
        .map(|text| (level, text))
}

fn table(out: &mut String, rows: &[&str]) {
    out.push_str("<table>\n");
    for (n, row) in rows.iter().enumerate() {
        if n == 1 && row.contains("---") {
            continue;
        }
        let tag = if n == 0 { "th" } else { "td" };
        out.push_str("<tr>");
        for cell in cells(row) {
            let _ = write!(out, "<{tag}>{}</{tag}>", inline(cell.trim()));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

/// A row's cells: split at `|` not escaped by a backslash.
fn cells(row: &str) -> Vec<&str> {
    let inner = row.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut out = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (at, c) in inner.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '|' if !escaped => {
                out.push(&inner[start..at]);
                start = at + 1;
            }
            _ => escaped = false,
        }
    }
    out.push(&inner[start..]);
    out
}

/// Inline Markdown: escapes, `**bold**`, `` `code` `` and `<br>`.
fn inline(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    let (mut bold, mut code) = (false, false);
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(|n| n.is_ascii_punctuation()) => {
                let n = chars.next().unwrap_or('\\');
                out.push_str(&escape(&n.to_string()));
            }
            '`' => {
                out.push_str(if code { "</code>" } else { "<code>" });
                code = !code;
            }
            '*' if !code && chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str(if bold { "</strong>" } else { "<strong>" });
                bold = !bold;
            }
            '<' if !code && text_after(&mut chars, "br>") => out.push_str("<br>"),
            c => out.push_str(&escape(&c.to_string())),
        }
    }
    if code {
        out.push_str("</code>");
    }
    if bold {
        out.push_str("</strong>");
    }
    out
}

/// Whether the next characters are `s`; consumes them if so.
fn text_after(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, s: &str) -> bool {
    let ahead: String = chars.clone().take(s.len()).collect();
    if ahead == s {
        for _ in 0..s.len() {
            chars.next();
        }
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_s_markdown_becomes_html() {
        let md = "# Health report 2026-11-29\n\nMade by keeper.\n\n## App shop\n\n\
                  - Status: red\n  - incident 4\n\n\
                  | check | error rate |\n| --- | --- |\n\
                  | a\\|b \\*x\\* | `x\\|y`<br>`<script>` |\n\n- **red** api: 5 < 6\n";
        let html = body(md);
        assert_eq!(
            html,
            "<h1>Health report 2026-11-29</h1>\n<p>Made by keeper.</p>\n<h2>App shop</h2>\n\
             <ul>\n<li>Status: red</li>\n<li>incident 4</li>\n</ul>\n\
             <table>\n<tr><th>check</th><th>error rate</th></tr>\n\
             <tr><td>a|b *x*</td><td><code>x|y</code><br><code>&lt;script&gt;</code></td></tr>\n</table>\n\
             <ul>\n<li><strong>red</strong> api: 5 &lt; 6</li>\n</ul>\n"
        );
        let doc = document("Health <report>", md);
        assert!(doc.starts_with("<!DOCTYPE html>"));
        assert!(doc.contains("<title>Health &lt;report&gt;</title>"));
    }
}
