//! Records the commit idlegate is built from, for `idlegate --version`.
//!
//! `GIT_COMMIT` wins when set (builds from a source archive have no `.git`; CI systems such
//! as Jenkins set it), shortened to 12 characters; otherwise `git rev-parse --short=12 HEAD`;
//! otherwise "unknown". The result reaches the code as `IG_BUILD_COMMIT`: Cargo also sets it
//! for `cargo run` and `cargo test`, so it must not start with `IDLEGATE_`, which idlegate
//! reads as config keys.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=GIT_COMMIT");
    let commit = std::env::var("GIT_COMMIT")
        .ok()
        .map(|commit| commit.trim().chars().take(12).collect::<String>())
        .filter(|commit| !commit.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    // Build again when HEAD moves: HEAD itself (a checkout), the branch it names (a commit)
    // and packed-refs (a branch packed by `git gc`).
    for file in ["HEAD", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", file]) {
            rerun_if_exists(&path);
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(&["rev-parse", "--git-path", &branch]) {
            rerun_if_exists(&path);
        }
    }
    println!("cargo:rustc-env=IG_BUILD_COMMIT={commit}");
}

fn rerun_if_exists(path: &str) {
    if Path::new(path).exists() {
        println!("cargo:rerun-if-changed={path}");
    }
}
