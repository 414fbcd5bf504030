//! Locating the Python virtualenv and repository files used by tests.
//!
//! Tests run Streamlit from the project's own virtualenv, created by
//! `scripts/python-env.sh`, so that every developer and CI uses the same
//! pinned Streamlit version. `TESTKIT_VENV` overrides the location (the
//! test script sets it explicitly so that the tests do not depend on their
//! working directory).

use std::path::{Path, PathBuf};

/// Environment variable naming the virtualenv directory to use.
pub const VENV_ENV: &str = "TESTKIT_VENV";

/// Root of the cargo workspace (the repository root).
pub fn workspace_root() -> PathBuf {
    // This crate lives at <root>/crates/testkit; the path is fixed at compile
    // time, which is what we want: tests always refer to this checkout.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root containing crates/testkit exists")
}

/// Absolute path of `rel`, interpreted relative to the repository root.
///
/// # Panics
///
/// Panics if the file does not exist, naming the missing path, because a test
/// that refers to a missing app would otherwise fail later with an obscure
/// Streamlit error.
pub fn repo_path(rel: impl AsRef<Path>) -> PathBuf {
    let path = workspace_root().join(rel.as_ref());
    assert!(
        path.exists(),
        "repository file {} does not exist",
        path.display()
    );
    path
}

/// The virtualenv directory: `$TESTKIT_VENV`, else `<repo>/.venv`.
///
/// This does not check that the directory exists; see [`streamlit_bin`] and
/// [`python_bin`], which do.
pub fn venv_dir() -> PathBuf {
    match std::env::var_os(VENV_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join(".venv"),
    }
}

/// The `streamlit` executable inside the virtualenv.
///
/// # Panics
///
/// Panics with instructions when the virtualenv has not been created.
pub fn streamlit_bin() -> PathBuf {
    venv_executable("streamlit")
}

/// The Python interpreter inside the virtualenv.
///
/// # Panics
///
/// Panics with instructions when the virtualenv has not been created.
pub fn python_bin() -> PathBuf {
    venv_executable("python")
}

fn venv_executable(name: &str) -> PathBuf {
    let dir = venv_dir();
    let path = dir.join("bin").join(name);
    if !path.is_file() {
        panic!(
            "{} not found: the Python virtualenv for tests is missing.\n\
             Run `scripts/python-env.sh` from the repository root to create {}\n\
             (or set {VENV_ENV} to an existing virtualenv with the packages from \
             examples/requirements.txt).",
            path.display(),
            dir.display(),
        );
    }
    path
}
