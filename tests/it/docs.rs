//! The TOML in README.md and docs/*.md goes through keeper's config loader,
//! so the docs cannot drift from the parser.
//!
//! The rule for a fenced block in those files:
//! - info string exactly `toml`: a whole keeper config. It must load
//!   (`Config::parse`, every `${VAR}` answered with a placeholder), or the
//!   test fails naming the file, the block's line and every error.
//! - `toml` followed by a word (` ```toml fragment `: a piece of a larger
//!   keeper file; ` ```toml vector `: another program's config): not loaded
//!   as a config, but it must still be valid TOML.
//!
//! And the README's tour is `examples/tour.toml`, comments aside.

use std::path::{Path, PathBuf};

/// A fenced code block: where it starts, its info string and its text.
struct Block {
    file: PathBuf,
    line: usize,
    info: String,
    text: String,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("reading docs/")
        .map(|e| e.expect("a docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The fenced blocks of `file` whose info string starts with `toml`.
fn toml_blocks(file: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(file).expect("reading a document");
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(info)) => {
                open = Some(Block {
                    file: file.to_path_buf(),
                    line: i + 1,
                    info: info.trim().to_string(),
                    text: String::new(),
                })
            }
            (Some(_), Some(_)) => {
                let block = open.take().expect("open");
                if block.info == "toml" || block.info.starts_with("toml ") {
                    blocks.push(block);
                }
            }
            (Some(block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(
        open.is_none(),
        "{}: a fence is never closed",
        file.display()
    );
    blocks
}

fn placeholder(name: &str) -> Option<String> {
    Some(format!(
        "{}-docs-placeholder-0123456789",
        name.to_lowercase()
    ))
}

#[test]
fn every_toml_block_in_the_docs_is_a_config_keeper_loads() {
    let mut whole = 0;
    let mut failures = Vec::new();
    for file in documents() {
        for block in toml_blocks(&file) {
            let at = format!(
                "{}:{} (```{})",
                block
                    .file
                    .strip_prefix(root())
                    .unwrap_or(&block.file)
                    .display(),
                block.line,
                block.info
            );
            if block.info == "toml" {
                whole += 1;
                if let Err(errors) = keeper::config::Config::parse(
                    Path::new("keeper.toml"),
                    &block.text,
                    &placeholder,
                ) {
                    failures.push(format!("{at}:\n{errors}"));
                }
            } else if let Err(e) = block.text.parse::<toml::Table>() {
                failures.push(format!("{at}: not TOML: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        whole >= 5,
        "only {whole} whole configs found: is the fence rule still read?"
    );
}

#[test]
fn the_readme_tour_is_examples_tour_toml() {
    let readme = toml_blocks(&root().join("README.md"));
    let tour = readme
        .iter()
        .find(|b| b.text.contains("[channels.pager]"))
        .expect("the tour's config in README.md");
    let file =
        std::fs::read_to_string(root().join("examples/tour.toml")).expect("examples/tour.toml");
    let file: toml::Table = file.parse().expect("examples/tour.toml is TOML");
    let shown: toml::Table = tour.text.parse().expect("the README's tour is TOML");
    assert_eq!(
        shown, file,
        "README.md:{} differs from examples/tour.toml",
        tour.line
    );
    keeper::config::Config::parse(Path::new("tour.toml"), &tour.text, &|_| None)
        .expect("the tour needs no environment");
}
