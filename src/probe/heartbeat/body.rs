//! What a ping's body adds to a heartbeat's message: the last lines of a
//! job's output (`curl --data-binary @backup.log`), cleaned, so a failed
//! backup's reason reaches the page. Bounded twice: the last [`TAIL_LINES`]
//! lines, and at most [`TAIL_BYTES`] of them.

/// How many of the body's last lines are kept.
pub const TAIL_LINES: usize = 10;
/// The most bytes of them kept (the end, cut on a character boundary).
pub const TAIL_BYTES: usize = 1024;

/// The body's last lines as keeper shows them, `None` when it holds nothing
/// to show. Invalid UTF-8 is replaced, terminal escape sequences (colors)
/// dropped, a `\r` keeps only what was written after it (a progress bar's
/// last state), other control characters except tab are dropped.
pub fn tail(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text = without_escapes(&text);
    let lines: Vec<String> = text.split('\n').map(clean_line).collect();
    let end = lines.iter().rposition(|l| !l.trim().is_empty())? + 1;
    let start = lines[..end]
        .iter()
        .position(|l| !l.trim().is_empty())
        .unwrap_or(0)
        .max(end.saturating_sub(TAIL_LINES));
    let joined = lines[start..end].join("\n");
    if joined.len() <= TAIL_BYTES {
        return Some(joined);
    }
    let mut cut = joined.len() - TAIL_BYTES + '…'.len_utf8();
    while !joined.is_char_boundary(cut) {
        cut += 1;
    }
    Some(format!("…{}", &joined[cut..]))
}

/// One line: what follows its last `\r`, without control characters but tab.
fn clean_line(line: &str) -> String {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let shown = line.rsplit('\r').next().unwrap_or(line);
    shown
        .chars()
        .filter(|c| !c.is_control() || *c == '\t')
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// `text` without ANSI escape sequences (`ESC [ … letter`, `ESC ] … BEL`).
fn without_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                // Parameters and intermediates, up to the final byte (@ to ~).
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                for c in chars.by_ref() {
                    if c == '\u{7}' {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_cleaned() {
        let body = (1..=15)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        let tail = tail(format!("{body}\n\n").as_bytes()).unwrap();
        assert_eq!(tail.lines().count(), TAIL_LINES);
        assert!(
            tail.starts_with("line 6\n") && tail.ends_with("line 15"),
            "{tail}"
        );
        assert_eq!(
            super::tail(b"\x1b[31mERROR\x1b[0m: disk full\r\n10%\r50%\r100%\r\nbell\x07 nul\x00\n")
                .unwrap(),
            "ERROR: disk full\n100%\nbell nul"
        );
        assert_eq!(super::tail(b"\n \n\t\n"), None);
        assert_eq!(super::tail(b""), None);
        assert_eq!(super::tail(b"\xff ok").unwrap(), "\u{fffd} ok");
    }

    #[test]
    fn a_long_tail_is_cut_from_its_start_on_a_character_boundary() {
        let long = "é".repeat(2000);
        let tail = tail(long.as_bytes()).unwrap();
        assert!(tail.len() <= TAIL_BYTES, "{}", tail.len());
        assert!(tail.starts_with('…') && tail.ends_with('é'));
    }
}
