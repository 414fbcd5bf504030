//! Command-line and configuration errors: exit code 2 with one line naming the key.

use std::path::Path;
use std::process::Output;

fn idlegate(args: &[&str], env: &[(&str, &str)]) -> Output {
    std::process::Command::new(Path::new(env!("CARGO_BIN_EXE_idlegate")))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .expect("idlegate runs")
}

fn assert_usage_error(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn a_bad_flag_value_names_the_key() {
    let out = idlegate(
        &[
            "--upstream",
            "http://127.0.0.1:9",
            "--idle-timeout",
            "15 min utes",
        ],
        &[],
    );
    assert_usage_error(&out, "tabs.idle_timeout");
    let out = idlegate(&["--upstream", "127.0.0.1:9"], &[]);
    assert_usage_error(&out, "upstream");
    let out = idlegate(
        &["--upstream", "http://127.0.0.1:9", "--listen", "nowhere"],
        &[],
    );
    assert_usage_error(&out, "listen");
}

#[test]
fn a_bad_environment_value_names_the_key() {
    let out = idlegate(
        &["--upstream", "http://127.0.0.1:9"],
        &[("IDLEGATE_TABS__MAX_LIFETIME", "forever")],
    );
    assert_usage_error(&out, "tabs.max_lifetime");
    let out = idlegate(
        &["--upstream", "http://127.0.0.1:9"],
        &[("IDLEGATE_TABZ__X", "1")],
    );
    assert_usage_error(&out, "tabz");
}

#[test]
fn memory_pressure_that_cannot_work_here_is_a_configuration_error() {
    // Nothing to measure: the app's processes without starting the app.
    let out = idlegate(
        &["--upstream", "http://127.0.0.1:9"],
        &[
            ("IDLEGATE_CAPACITY__MEMORY_HIGH", "1GiB"),
            ("IDLEGATE_CAPACITY__MEASURE", "app"),
        ],
    );
    assert_usage_error(&out, "capacity.measure");
}

#[test]
fn a_bad_config_file_names_the_key() {
    let dir = std::env::temp_dir().join(format!("idlegate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "upstream = \"http://127.0.0.1:9\"\n[tabs]\nidle_timout = \"5m\"\n",
    )
    .unwrap();
    let out = idlegate(&["--config", file.to_str().unwrap()], &[]);
    assert_usage_error(&out, "tabs.idle_timout: unknown key");
    std::fs::write(&file, "[tabs\n").unwrap();
    let out = idlegate(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = idlegate(&["--config", "/nonexistent/idlegate.toml"], &[]);
    assert_usage_error(&out, "does not exist");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_app_must_be_named_exactly_once() {
    let out = idlegate(&[], &[]);
    assert_usage_error(&out, "--upstream");
    let out = idlegate(
        &[
            "--upstream",
            "http://127.0.0.1:9",
            "--",
            "streamlit",
            "run",
            "a.py",
        ],
        &[],
    );
    assert_usage_error(&out, "not both");
    let out = idlegate(&["--", "python", "app.py"], &[]);
    assert_usage_error(&out, "streamlit run");
}

#[test]
fn help_lists_the_flags() {
    let out = idlegate(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--upstream",
        "--idle-timeout",
        "--max-lifetime",
        "--config",
        "--log-format",
    ] {
        assert!(text.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn version_names_the_release_and_the_commit_it_was_built_from() {
    let out = idlegate(&["--version"], &[]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected_commit = std::env::var("GIT_COMMIT")
        .ok()
        .map(|commit| commit.trim().chars().take(12).collect::<String>())
        .filter(|commit| !commit.is_empty())
        .or_else(|| {
            let git = std::process::Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .ok()?;
            git.status
                .success()
                .then(|| String::from_utf8_lossy(&git.stdout).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    assert_eq!(
        stdout.trim(),
        format!(
            "idlegate {} (commit {expected_commit})",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn completions_are_printed_for_each_shell_and_an_unknown_shell_is_a_usage_error() {
    for (shell, needle) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef idlegate"),
        ("fish", "complete -c idlegate"),
    ] {
        let out = idlegate(&["completions", shell], &[]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(needle), "{shell}: {script}");
        assert!(
            script.contains("idle-timeout"),
            "{shell} completes the flags"
        );
    }
    let out = idlegate(&["completions", "tcsh"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn number_keys_are_read_from_environment_variables_and_bad_numbers_name_the_key() {
    // A good number passes the config and stops at the next check (both --upstream and a
    // command given), not at the number.
    let out = idlegate(
        &["--upstream", "http://127.0.0.1:9", "--", "streamlit"],
        &[("IDLEGATE_LIMITS__MAX_CONNECTIONS", "100")],
    );
    assert_usage_error(&out, "either --upstream or a command");
    let out = idlegate(
        &["--upstream", "http://127.0.0.1:9"],
        &[("IDLEGATE_LIMITS__MAX_CONNECTIONS", "many")],
    );
    assert_usage_error(&out, "limits.max_connections");
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("idlegate.toml");
    let secret = "ops:0123456789abcdef0123456789abcdef-secret";
    std::fs::write(
        &file,
        format!("[tabs]\nidle_timeout = \"5m\"\n[admin]\nlisten = \"127.0.0.1:9090\"\ntokens = \"{secret}\"\n"),
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let output = idlegate(
        &["check-config", path],
        &[("IDLEGATE_TABS__WARN_BEFORE", "1m")],
    );
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let effective: toml::Table = toml::from_str(&text).expect("TOML");
    assert_eq!(effective["tabs"]["idle_timeout"].as_str(), Some("5m"));
    assert_eq!(
        effective["tabs"]["warn_before"].as_str(),
        Some("1m"),
        "the environment applies"
    );
    assert_eq!(
        effective["tabs"]["max_lifetime"].as_str(),
        Some("12h"),
        "defaults are shown"
    );
    assert_eq!(effective["admin"]["tokens"].as_str(), Some("<redacted>"));
    assert!(!text.contains("secret"), "{text}");

    std::fs::write(&file, "[tabs]\nidle_timeout = \"5x\"\n").unwrap();
    let output = idlegate(&["check-config", path], &[]);
    assert_usage_error(&output, "tabs.idle_timeout");
    assert!(output.stdout.is_empty());
    let output = idlegate(&["check-config", "/nonexistent/idlegate.toml"], &[]);
    assert_usage_error(&output, "/nonexistent/idlegate.toml");
}
