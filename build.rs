//! Cargo build script (not hoist's `build:` support, which is src/build.rs): stamps the git
//! commit into `hoist --version`, so a binary installed with `cargo install` says which code it
//! is. Builds without git, or outside a checkout (a source tarball), still work: they say
//! "commit unknown", or the commit a packager passes in HOIST_GIT_COMMIT.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    println!("cargo:rerun-if-env-changed=HOIST_GIT_COMMIT");
    let commit = match std::env::var("HOIST_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => Some(c.trim().to_string()),
        _ => from_git(),
    };
    let text = match commit {
        Some(commit) => format!("{version} (commit {commit})"),
        None => format!("{version} (commit unknown: not built from a git checkout)"),
    };
    println!("cargo:rustc-env=HOIST_VERSION={text}");
}

/// `abcdef123456 2026-12-01`, with `+dirty` when tracked files had uncommitted changes.
fn from_git() -> Option<String> {
    // Only this crate's own checkout: a source tarball unpacked inside some other repository
    // must not take that repository's commit.
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").ok()?);
    if top.canonicalize().ok()? != here.canonicalize().ok()? {
        return None;
    }
    let hash = git(&["rev-parse", "--short=12", "HEAD"])?;
    // And when the code changes, for the +dirty mark.
    for path in ["src", "templates", "Cargo.toml", "Cargo.lock", "build.rs"] {
        println!("cargo:rerun-if-changed={path}");
    }
    // Run again when HEAD moves: a commit, a checkout, a pull. In a worktree HEAD lives in its
    // own git dir and the branches in the common one.
    for dir in ["--git-dir", "--git-common-dir"] {
        if let Some(d) = git(&["rev-parse", dir]) {
            let d = PathBuf::from(d);
            for f in ["HEAD", "index", "packed-refs"] {
                if d.join(f).exists() {
                    println!("cargo:rerun-if-changed={}", d.join(f).display());
                }
            }
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
                && d.join(&branch).exists()
            {
                println!("cargo:rerun-if-changed={}", d.join(&branch).display());
            }
        }
    }
    let date = git(&["show", "-s", "--format=%cs", "HEAD"]).unwrap_or_default();
    let dirty = Command::new("git")
        .args(["diff", "--quiet", "HEAD", "--"])
        .status()
        .map(|s| !s.success())
        .unwrap_or(false);
    Some(format!(
        "{hash} {date}{}",
        if dirty { " +dirty" } else { "" }
    ))
}
