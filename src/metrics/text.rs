//! Writing the Prometheus text exposition (format 0.0.4) by hand, for the
//! per-check families: a family's header, one sample line, escaped label values.

use std::fmt::Write;

pub(super) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One exposition line: `name{check="…"[,k="v"]} value`.
pub(super) fn sample(
    out: &mut String,
    name: &str,
    check: &str,
    extra: Option<(&str, &str)>,
    value: f64,
) {
    out.push_str(name);
    out.push_str("{check=\"");
    escape_label(out, check);
    out.push('"');
    if let Some((k, v)) = extra {
        let _ = write!(out, ",{k}=\"");
        escape_label(out, v);
        out.push('"');
    }
    out.push_str("} ");
    push_value(out, value);
    out.push('\n');
}

/// A sample value as Prometheus writes it: `+Inf`, `-Inf`, `NaN` or the number.
pub(super) fn push_value(out: &mut String, value: f64) {
    if value.is_finite() {
        let _ = write!(out, "{value}");
    } else if value.is_nan() {
        out.push_str("NaN");
    } else if value > 0.0 {
        out.push_str("+Inf");
    } else {
        out.push_str("-Inf");
    }
}

/// Label values escape `\`, `"` and newlines.
pub(super) fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        sample(&mut out, "probe_success", "a\"b\\c\nd", None, 1.0);
        assert_eq!(out, "probe_success{check=\"a\\\"b\\\\c\\nd\"} 1\n");
    }

    #[test]
    fn values_are_written_as_prometheus_reads_them() {
        let mut out = String::new();
        for v in [1.5, -1.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
            push_value(&mut out, v);
            out.push(' ');
        }
        assert_eq!(out, "1.5 -1 +Inf -Inf NaN ");
    }
}
