//! A check's config labels as Prometheus label names, for `keeper_check_info`.
//!
//! The rule, so a dashboard can rely on it:
//! - every character outside `[a-zA-Z0-9_]` becomes `_`;
//! - a name that is empty, starts with a digit or with `__` (reserved by
//!   Prometheus) gets the prefix `label_`;
//! - `check` and `kind` (the series' own labels) become `exported_check` and
//!   `exported_kind`, as Prometheus renames a scraped label that clashes;
//! - a name still taken (two labels that read the same once sanitized)
//!   gets `_2`, `_3`, … in the order of the raw names; the first keeps it.

use std::collections::BTreeMap;

use super::text::escape_label;

/// `,kind="…",name="value"…`: the labels of a check's `keeper_check_info`
/// after `check`, sanitized by the rule above.
pub(super) fn info_labels(kind: &str, labels: &BTreeMap<String, String>) -> String {
    let mut out = String::from(",kind=\"");
    escape_label(&mut out, kind);
    out.push('"');
    for (name, value) in prometheus_labels(labels) {
        out.push(',');
        out.push_str(&name);
        out.push_str("=\"");
        escape_label(&mut out, value);
        out.push('"');
    }
    out
}

/// `labels` with their names made Prometheus label names, in the order of the raw names.
pub fn prometheus_labels(labels: &BTreeMap<String, String>) -> Vec<(String, &str)> {
    let mut taken: Vec<String> = vec!["check".into(), "kind".into()];
    let mut out = Vec::with_capacity(labels.len());
    for (raw, value) in labels {
        let mut name = label_name(raw);
        if name == "check" || name == "kind" {
            name = format!("exported_{name}");
        }
        if taken.contains(&name) {
            let base = name;
            name = (2..)
                .map(|n| format!("{base}_{n}"))
                .find(|candidate| !taken.contains(candidate))
                .expect("some suffix is free");
        }
        taken.push(name.clone());
        out.push((name, value.as_str()));
    }
    out
}

/// `raw` as a label name matching `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`.
pub fn label_name(raw: &str) -> String {
    let name: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) || name.starts_with("__") {
        format!("label_{name}")
    } else {
        name
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

    fn valid(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with("__")
    }

    #[test]
    fn names_become_prometheus_label_names() {
        assert_eq!(label_name("env"), "env");
        assert_eq!(label_name("team_2"), "team_2");
        assert_eq!(
            label_name("app.kubernetes.io/name"),
            "app_kubernetes_io_name"
        );
        assert_eq!(label_name("on-call"), "on_call");
        assert_eq!(label_name("2fa"), "label_2fa");
        assert_eq!(label_name(""), "label_");
        assert_eq!(label_name("__meta"), "label___meta");
        assert_eq!(label_name("région"), "r_gion");
        for raw in ["env", "2fa", "", "__meta", "a b", "é", "-", "_x"] {
            assert!(valid(&label_name(raw)), "{raw:?} → {:?}", label_name(raw));
        }
    }

    #[test]
    fn check_and_kind_are_exported_and_clashes_numbered() {
        let raw = labels(&[
            ("check", "c"),
            ("kind", "k"),
            ("exported_check", "e"),
            ("a-b", "1"),
            ("a.b", "2"),
            ("a_b", "3"),
        ]);
        let got = prometheus_labels(&raw);
        let got: Vec<(&str, &str)> = got.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        // In the order of the raw names: `a-b` < `a.b` < `a_b` < `check` < …
        assert_eq!(
            got,
            [
                ("a_b", "1"),
                ("a_b_2", "2"),
                ("a_b_3", "3"),
                ("exported_check", "c"),
                ("exported_check_2", "e"),
                ("exported_kind", "k"),
            ]
        );
    }

    #[test]
    fn info_labels_escape_values() {
        let got = info_labels("http", &labels(&[("env", "a\"b"), ("team", "web")]));
        assert_eq!(got, ",kind=\"http\",env=\"a\\\"b\",team=\"web\"");
    }
}
