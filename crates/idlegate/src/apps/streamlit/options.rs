//! Reading a Streamlit option the way Streamlit itself will, before it starts.
//!
//! Streamlit takes each option from, highest first (`streamlit/config.py`,
//! `streamlit/web/cli.py`): a `--server.<name>` flag after `run`, a `STREAMLIT_SERVER_<NAME>`
//! environment variable, and the `[server]` table of `.streamlit/config.toml` next to the
//! main script, in the working directory, and in the home directory. idlegate reads the app's
//! base path this way, so it serves under the same one, or says at once that they differ.

use std::path::{Path, PathBuf};

/// Where an option's value came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env(&'static str),
    File(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flag => f.write_str("its --server.baseUrlPath flag"),
            Self::Env(name) => write!(f, "the {name} environment variable"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What the app will be started with.
pub struct Launch<'a> {
    /// The command (`streamlit run app.py …`).
    pub command: &'a [String],
    /// An environment variable of idlegate's (which the app inherits).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The working directory and the home directory.
    pub cwd: PathBuf,
    pub home: Option<PathBuf>,
}

const BASE_URL_PATH_FLAG: &str = "--server.baseUrlPath";
const BASE_URL_PATH_ENV: &str = "STREAMLIT_SERVER_BASE_URL_PATH";

/// The app's own `server.baseUrlPath`, if anything sets it, and where from. The value is as
/// given (`"analytics"`, `"/analytics/"`).
pub fn base_url_path(launch: &Launch<'_>) -> Option<(String, Source)> {
    if let Some(value) = flag(launch.command, BASE_URL_PATH_FLAG) {
        return Some((value, Source::Flag));
    }
    if let Some(value) = (launch.env)(BASE_URL_PATH_ENV) {
        return Some((value, Source::Env(BASE_URL_PATH_ENV)));
    }
    config_files(launch)
        .into_iter()
        .find_map(|path| Some((server_option(&path, "baseUrlPath")?, Source::File(path))))
}

/// The value of `--name value` or `--name=value` among the options after `run` (the last
/// one, as Streamlit's option parser takes it), before a `--`.
pub fn flag(command: &[String], name: &str) -> Option<String> {
    let run = command.iter().position(|arg| arg == "run")?;
    let mut found = None;
    let mut args = command[run + 1..].iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if arg == name {
            found = args.next().cloned();
        } else if let Some(value) = arg.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            found = Some(value.to_owned());
        }
    }
    found
}

/// The config files Streamlit reads, highest precedence first.
fn config_files(launch: &Launch<'_>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(script) = script(launch.command) {
        let dir = launch.cwd.join(script);
        if let Some(dir) = dir.parent() {
            files.push(dir.join(".streamlit/config.toml"));
        }
    }
    files.push(launch.cwd.join(".streamlit/config.toml"));
    if let Some(home) = &launch.home {
        files.push(home.join(".streamlit/config.toml"));
    }
    files.dedup();
    files
}

/// The main script: the first argument after `run` that is not an option.
fn script(command: &[String]) -> Option<&str> {
    let run = command.iter().position(|arg| arg == "run")?;
    let mut args = command[run + 1..].iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            return None;
        }
        if !arg.starts_with("--") {
            return Some(arg);
        }
        // `--name value` takes the next argument too.
        if !arg.contains('=') {
            args.next();
        }
    }
    None
}

/// `[server] <name>` of a Streamlit config file, when it is a string. An unreadable file is
/// one Streamlit cannot use either.
fn server_option(path: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let table: toml::Table = text.parse().ok()?;
    table.get("server")?.get(name)?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn launch<'a>(
        command: &'a [String],
        env: &'a dyn Fn(&str) -> Option<String>,
        cwd: &Path,
    ) -> Launch<'a> {
        Launch {
            command,
            env,
            cwd: cwd.to_owned(),
            home: None,
        }
    }

    #[test]
    fn a_flag_beats_the_environment_which_beats_config_files() {
        let dir = tempfile::tempdir().unwrap();
        let no_env = |_: &str| None;
        let command = args("streamlit run app.py");
        assert_eq!(base_url_path(&launch(&command, &no_env, dir.path())), None);

        std::fs::create_dir(dir.path().join(".streamlit")).unwrap();
        std::fs::write(
            dir.path().join(".streamlit/config.toml"),
            "[server]\nbaseUrlPath = \"from-file\"\n",
        )
        .unwrap();
        let (value, source) = base_url_path(&launch(&command, &no_env, dir.path())).unwrap();
        assert_eq!(value, "from-file");
        assert!(matches!(source, Source::File(_)), "{source}");

        let env = |name: &str| (name == BASE_URL_PATH_ENV).then(|| "from-env".to_owned());
        let (value, source) = base_url_path(&launch(&command, &env, dir.path())).unwrap();
        assert_eq!(
            (value.as_str(), source),
            ("from-env", Source::Env(BASE_URL_PATH_ENV))
        );

        let flagged = args("streamlit run --server.baseUrlPath=from-flag app.py");
        let (value, source) = base_url_path(&launch(&flagged, &env, dir.path())).unwrap();
        assert_eq!((value.as_str(), source), ("from-flag", Source::Flag));
    }

    #[test]
    fn a_config_file_next_to_the_script_comes_before_the_working_directorys() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("apps/report");
        std::fs::create_dir_all(app.join(".streamlit")).unwrap();
        std::fs::write(
            app.join(".streamlit/config.toml"),
            "[server]\nbaseUrlPath = \"/report/\"\n",
        )
        .unwrap();
        let no_env = |_: &str| None;
        let command = args("streamlit run --server.port 1 apps/report/main.py -- x");
        let (value, _) = base_url_path(&launch(&command, &no_env, dir.path())).unwrap();
        assert_eq!(value, "/report/");
    }

    #[test]
    fn flags_after_the_scripts_double_dash_are_the_scripts_own() {
        let command = args("streamlit run app.py -- --server.baseUrlPath x");
        assert_eq!(flag(&command, BASE_URL_PATH_FLAG), None);
        let command = args("python -m streamlit run --server.baseUrlPath a app.py");
        assert_eq!(flag(&command, BASE_URL_PATH_FLAG).as_deref(), Some("a"));
    }
}
