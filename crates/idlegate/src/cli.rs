//! Command-line flags. Flags override the config file and `IDLEGATE_*` variables.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use clap_complete::Shell;

/// What `idlegate --version` prints after the name: the crate's version and the commit it was
/// built from (`GIT_COMMIT` at build time, else `git rev-parse --short=12 HEAD`, else "unknown";
/// see `build.rs`), e.g. `0.2.0 (commit 1a2b3c4d5e6f)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("IG_BUILD_COMMIT"),
    ")"
);

/// Session time-to-live for Streamlit, Shiny and Panel apps: ends browser tabs nobody uses,
/// warns first, and makes the app free their memory.
#[derive(Debug, Parser)]
#[command(
    name = "idlegate",
    version = VERSION,
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  idlegate --idle-timeout 15m -- streamlit run app.py\n  \
                  idlegate --idle-timeout 15m -- shiny run app.py\n  \
                  idlegate --idle-timeout 15m -- panel serve app.py\n  \
                  idlegate --idle-timeout 15m --app-kind gradio -- python app.py\n  \
                  idlegate --upstream http://127.0.0.1:8501 --listen 0.0.0.0:8080\n  \
                  idlegate hash-password < password.txt\n  \
                  idlegate completions bash > ~/.local/share/bash-completion/completions/idlegate\n\n\
                  Every config key can also be set in a TOML file (--config) or as an \
                  environment variable: IDLEGATE_TABS__IDLE_TIMEOUT=15m sets tabs.idle_timeout."
)]
pub struct Cli {
    /// TOML config file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on (`listen`), e.g. 0.0.0.0:8080.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// URL of an app that is already running (`upstream`), e.g. http://127.0.0.1:8501.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// End a tab after this long without human activity (`tabs.idle_timeout`), e.g. 15m; "off" disables.
    #[arg(long, value_name = "DURATION")]
    pub idle_timeout: Option<String>,
    /// End a tab this long after it started (`tabs.max_lifetime`), e.g. 8h; "off" disables.
    #[arg(long, value_name = "DURATION")]
    pub max_lifetime: Option<String>,
    /// How long a disconnected tab may come back (`tabs.reconnect_grace`), e.g. 15s.
    #[arg(long, value_name = "DURATION")]
    pub reconnect_grace: Option<String>,
    /// The app's framework (`app.kind`): auto (the command tells), streamlit, shiny, panel, bokeh or gradio.
    #[arg(long, value_name = "KIND")]
    pub app_kind: Option<String>,
    /// URL path prefix of the app (`app.base_path`), e.g. /analytics.
    #[arg(long, value_name = "PATH")]
    pub base_path: Option<String>,
    /// Log format (`log.format`): text or json.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log level or filter (`log.level`), e.g. info or debug.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Command that starts the app, after `--`: idlegate runs it on a free loopback port.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
    #[command(subcommand)]
    pub action: Option<Action>,
}

/// Things idlegate does besides running.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Reads a password from standard input (one line) and prints its Argon2id hash, for a
    /// `name:hash` line of `login.users_file`.
    HashPassword,
    /// Checks a config file, with the `IDLEGATE_*` environment variables on top as at start,
    /// and prints the effective configuration as TOML with secrets redacted. Exits 0 when it
    /// is valid, 2 with a line naming the bad key when not. For CI pipelines and Helm or
    /// Kustomize users.
    CheckConfig {
        /// The config file to check.
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
    },
    /// Prints the shell completion script for SHELL (bash, zsh, fish, elvish or powershell)
    /// to standard output. The wheel and the container image install them already.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum, value_name = "SHELL")]
        shell: Shell,
    },
}

/// The command-line definition, for generating completions and the man page.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// The completion script for `shell`, generated from [`command`].
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    // Writing into memory cannot fail (the generator panics on a failed write).
    clap_complete::generate(shell, &mut command(), "idlegate", &mut script);
    script
}

impl Cli {
    /// The flags that were given, as `(config key, value)` pairs.
    pub fn flag_values(&self) -> Vec<(&'static str, String)> {
        [
            ("listen", &self.listen),
            ("upstream", &self.upstream),
            ("tabs.idle_timeout", &self.idle_timeout),
            ("tabs.max_lifetime", &self.max_lifetime),
            ("tabs.reconnect_grace", &self.reconnect_grace),
            ("app.kind", &self.app_kind),
            ("app.base_path", &self.base_path),
            ("log.format", &self.log_format),
            ("log.level", &self.log_level),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.clone().map(|v| (key, v)))
        .collect()
    }
}
