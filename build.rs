//! Rebuilds when a migration changes: `sqlx::migrate!` embeds `migrations/` at compile time.
//!
//! Stamps the build with the git commit it comes from, for
//! `keeper_build_info{revision}`: the repository's HEAD when built inside
//! one, else the `GIT_REVISION` environment variable (a container build
//! without `.git`), else `unknown`. Never fails the build.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=GIT_REVISION");
    let revision = git(&["rev-parse", "--short=12", "HEAD"])
        .or_else(|| std::env::var("GIT_REVISION").ok())
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "unknown".into());
    // A new commit changes HEAD or the branch it points to.
    // (Only files that exist: a missing one would rerun this, and rebuild
    // keeper, on every build.)
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    let paths = ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref());
    for path in paths {
        if let Some(file) = git(&["rev-parse", "--git-path", path.trim()])
            && std::path::Path::new(file.trim()).exists()
        {
            println!("cargo:rerun-if-changed={}", file.trim());
        }
    }
    println!("cargo:rustc-env=KEEPER_REVISION={revision}");
}

/// `git args…`'s output, or `None` when git is missing or fails (no repository).
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).ok())
        .flatten()
}
