//! The module graph of `src/` has no cycle: every top-level module sits in a
//! layer and imports only from layers below it (docs/development.md, "Layout"). Read
//! from the source itself, so a new upward import fails here with the file
//! and line, and a new top-level module must be given its layer. Sizes are
//! kept here too: no file over 600 lines, no function over 80 (tests aside).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bottom up. A module may import from any layer below its own, never from
/// its own layer (siblings stay independent) or above.
const LAYERS: &[&[&str]] = &[
    &["core", "telemetry"],
    &["classify"],
    &["state"],
    &["incident"],
    &["store"],
    &["probe", "notify"],
    &["watchdog"],
    &["config", "metrics"],
    &["engine", "report"],
    &["cluster"],
    &["scheduler", "http"],
    &["app"],
    &["cli"],
];

/// Parts held to less than their layer allows: a probe and a channel speak
/// `core` only (what else they need comes through their context at build
/// time), so adding one never pulls in the store or the engine. In `notify`,
/// only the outbox worker (the store) and the policy (incidents, state)
/// reach further.
fn core_only(file: &str) -> bool {
    file.starts_with("probe/")
        || (file.starts_with("notify/")
            && !file.starts_with("notify/outbox/")
            && !file.starts_with("notify/policy/"))
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// One import that breaks the layering, or a module with no layer.
#[derive(Debug, PartialEq)]
struct Violation {
    file: String,
    line: usize,
    from: String,
    to: String,
}

/// The code of a file without its comments and its trailing `#[cfg(test)]`
/// module (tests may reach anywhere). Line numbers are kept.
fn code_of(source: &str) -> String {
    let source = match source.find("#[cfg(test)]") {
        Some(at) => &source[..at],
        None => source,
    };
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `code` names through `crate::…` (including every
/// branch of a `crate::{a, b::c}` group) or through enough `super::` to
/// leave its own top-level module, with the line of each.
fn references(code: &str, depth: usize) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (index, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                for name in group_heads(group) {
                    found.push((index + 1, name));
                }
            } else {
                found.push((index + 1, ident(after)));
            }
            rest = after;
        }
        // `super::super::x` from a file `depth` levels below its top-level
        // module reaches the crate root after `depth` supers.
        if depth > 0 {
            let supers = "super::".repeat(depth + 1);
            let mut rest = line;
            while let Some(at) = rest.find(&supers) {
                let after = &rest[at + supers.len()..];
                found.push((index + 1, ident(after)));
                rest = after;
            }
        }
    }
    // A group may span lines: read the rest of it from the whole text.
    let mut rest = code;
    while let Some(at) = rest.find("crate::{") {
        let start_line = code[..code.len() - rest.len() + at].lines().count().max(1);
        let after = &rest[at + "crate::{".len()..];
        for name in group_heads(after) {
            if !found.contains(&(start_line, name.clone())) {
                found.push((start_line, name));
            }
        }
        rest = after;
    }
    found.retain(|(_, name)| !name.is_empty() && name != "self");
    found
}

fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The first path segment of each item of a `{…}` group (its text starts
/// just after the opening brace).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut at_item_start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_item_start = true,
            c if at_item_start && (c.is_ascii_alphanumeric() || c == '_') => {
                heads.push(ident(&group[i..]));
                at_item_start = false;
            }
            _ => {}
        }
    }
    heads
}

/// Every file of `src/` except the crate roots and other binaries, with
/// its top-level module and how deep below it the file sits.
fn modules(src: &Path) -> Vec<(PathBuf, String, usize)> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                if path != src.join("bin") {
                    dirs.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
                continue;
            }
            // src/a/b/c.rs is a::b::c: two levels below `a`; src/a/b/mod.rs one.
            let mut depth = parts.len() - 1;
            if parts.last().is_some_and(|p| p == "mod") {
                depth -= 1;
            }
            files.push((path.clone(), parts[0].clone(), depth));
        }
    }
    files.sort();
    files
}

fn check(file: &str, module: &str, depth: usize, source: &str) -> Vec<Violation> {
    let Some(own) = layer_of(module) else {
        return vec![Violation {
            file: file.into(),
            line: 0,
            from: module.into(),
            to: "(no layer: add it to LAYERS and docs/development.md's Layout)".into(),
        }];
    };
    references(&code_of(source), depth)
        .into_iter()
        .filter(|(_, to)| to != module)
        .filter(|(_, to)| {
            layer_of(to).is_none_or(|theirs| theirs >= own) || (core_only(file) && to != "core")
        })
        .map(|(line, to)| Violation {
            file: file.into(),
            line,
            from: module.into(),
            to,
        })
        .collect()
}

#[test]
fn every_import_points_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = modules(&src);
    assert!(
        files.len() > 50,
        "read only {} files of {src:?}",
        files.len()
    );
    let mut violations = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (path, module, depth) in &files {
        let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let name = path.strip_prefix(&src).expect("under src").display();
        violations.extend(check(&name.to_string(), module, *depth, &source));
        *seen.entry(module.clone()).or_default() += 1;
    }
    for layer in LAYERS {
        for module in *layer {
            assert!(
                seen.contains_key(*module),
                "LAYERS names {module}, which src/ does not have"
            );
        }
    }
    let report: Vec<String> = violations
        .iter()
        .map(|v| format!("src/{}:{}: {} imports {}", v.file, v.line, v.from, v.to))
        .collect();
    assert!(
        report.is_empty(),
        "imports against the layering (LAYERS, bottom up: {LAYERS:?}):\n{}",
        report.join("\n")
    );
}

#[test]
fn an_upward_import_is_reported_with_its_line() {
    let source = "//! doc naming crate::engine is fine\n\
                  use crate::core::Sample;\n\
                  use crate::{\n    incident::Incident,\n    engine::Engine,\n};\n\
                  fn f() { crate::http::serve(); }\n\
                  #[cfg(test)]\nmod tests { use crate::app::start; }\n";
    let found = check("store/mod.rs", "store", 0, source);
    let to: Vec<(usize, &str)> = found.iter().map(|v| (v.line, v.to.as_str())).collect();
    assert_eq!(to, vec![(7, "http"), (3, "engine")], "{found:?}");

    // A sibling in the same layer is refused too, and so is leaving through `super`.
    let found = check(
        "probe/log/feeds.rs",
        "probe",
        2,
        "use super::super::super::notify::X;",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].to, "notify");
    assert!(
        check(
            "probe/log/feeds.rs",
            "probe",
            2,
            "use super::super::Sample;"
        )
        .is_empty()
    );

    // A probe or a channel may not reach the store, though its layer is above it.
    let found = check(
        "probe/heartbeat/registry.rs",
        "probe",
        2,
        "use crate::store::Store;",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        check(
            "notify/outbox/mod.rs",
            "notify",
            2,
            "use crate::store::Store;"
        )
        .is_empty()
    );

    let found = check("newthing.rs", "newthing", 0, "");
    assert_eq!(found.len(), 1, "a module with no layer is reported");
}

/// Files over this many lines (their `#[cfg(test)]` module aside) are asking
/// to be split along a seam the design names (STYLE.md, "Size").
const MAX_FILE_LINES: usize = 600;
/// Functions over this many lines, likewise.
const MAX_FN_LINES: usize = 80;

/// `(what, lines)` for the file and each function of `source` past the limits.
fn oversized(source: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = source.lines().collect();
    let code = lines
        .iter()
        .position(|l| l.trim() == "#[cfg(test)]")
        .map_or(&lines[..], |end| &lines[..end]);
    let mut found = Vec::new();
    if code.len() > MAX_FILE_LINES {
        found.push(("the file".to_string(), code.len()));
    }
    for (start, line) in code.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let Some(at) = trimmed.find("fn ") else {
            continue;
        };
        let head = &trimmed[..at];
        let is_fn = head
            .split_whitespace()
            .all(|w| w.starts_with("pub") || ["const", "async", "unsafe"].contains(&w));
        if !is_fn || trimmed.ends_with(';') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(len) = code[start + 1..].iter().position(|l| *l == close) {
            let len = len + 2;
            if len > MAX_FN_LINES {
                found.push((format!("fn {}", ident(&trimmed[at + 3..])), len));
            }
        }
    }
    found
}

#[test]
fn no_file_or_function_is_too_long_to_hold_in_the_head() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut report = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let source =
                    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
                for (what, lines) in oversized(&source) {
                    report.push(format!("{}: {what}: {lines} lines", path.display()));
                }
            }
        }
    }
    assert!(
        report.is_empty(),
        "over {MAX_FILE_LINES} lines a file or {MAX_FN_LINES} a function:\n{}",
        report.join("\n")
    );
}

#[test]
fn a_long_function_is_reported_by_name() {
    let body = "    let x = 1;\n".repeat(MAX_FN_LINES);
    let source = format!("pub async fn long() {{\n{body}}}\n\nfn short() {{\n}}\n");
    assert_eq!(
        oversized(&source),
        vec![("fn long".to_string(), MAX_FN_LINES + 2)]
    );
    let tests = format!("fn a() {{}}\n#[cfg(test)]\nmod tests {{\nfn long() {{\n{body}}}\n}}\n");
    assert!(oversized(&tests).is_empty(), "tests are aside");
}
