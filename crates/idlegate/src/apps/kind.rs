//! What idlegate needs from a framework beyond one app's traffic ([`super::App`]): how to
//! start it (launcher mode), how to build the [`App`](super::App) for one that runs, and how
//! to check that a running one serves where idlegate expects. [`kind`] picks the
//! implementation for `app.kind`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::App;
use crate::config::{Config, Upstream};

/// One framework.
pub trait Kind: Send + Sync {
    /// The name `app.kind` gives it.
    fn name(&self) -> &'static str;

    /// Whether the person's launcher `command` runs this framework's own program (its
    /// `serve`/`run` subcommand, directly or as `python -m …`), for `app.kind = "auto"`.
    fn recognizes(&self, command: &[String]) -> bool;

    /// How to start the app the person's `command` runs, listening on loopback `port`
    /// (launcher mode).
    ///
    /// # Errors
    /// A message for the person when the command is not one idlegate can run (another
    /// program, or one that sets what idlegate owns).
    fn plan_launch(&self, launch: &LaunchRequest<'_>) -> Result<LaunchPlan, String>;

    /// The app at `upstream`; `runtime` reaches into its process when idlegate started it.
    fn app(
        &self,
        config: &Config,
        upstream: &Upstream,
        runtime: Option<Arc<dyn Runtime>>,
    ) -> Arc<dyn App>;

    /// Whether the app at `upstream` answers as only this framework does (to name the kind
    /// for a person who left `app.kind` at `"auto"` with `--upstream`). Default: it cannot
    /// tell (its checks would pass for other apps too).
    fn identifies<'a>(&'a self, _upstream: &'a Upstream) -> BoxFuture<'a, bool> {
        Box::pin(async { false })
    }

    /// Whether the app at `upstream` serves under `base_path` (`--upstream` mode, before
    /// serving).
    fn check_base_path<'a>(
        &'a self,
        upstream: &'a Upstream,
        base_path: &'a str,
    ) -> BoxFuture<'a, BasePathCheck>;
}

/// What the launcher knows when it asks for a plan.
pub struct LaunchRequest<'a> {
    /// The person's command, after `--`.
    pub command: &'a [String],
    /// The loopback port the app must listen on.
    pub port: u16,
    pub config: &'a Config,
    /// The process environment, for settings the app reads from it.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The working directory and home directory, for settings the app reads from files.
    pub cwd: PathBuf,
    pub home: Option<PathBuf>,
}

/// How to start the app.
pub struct LaunchPlan {
    /// The whole command: the person's, with the settings idlegate needs added.
    pub command: Vec<String>,
    /// Environment variables to set for it.
    pub env: Vec<(String, OsString)>,
    /// The base path it will serve under (`app.base_path`, or the app's own).
    pub base_path: String,
    /// The path of its health check, answered once it is ready.
    pub health_path: String,
    /// What reaches into its process once it runs (`launcher.collect_garbage`), if anything.
    pub hook: Option<Arc<dyn ProcessHook>>,
}

impl std::fmt::Debug for LaunchPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchPlan")
            .field("command", &self.command)
            .field("base_path", &self.base_path)
            .field("health_path", &self.health_path)
            .field("hook", &self.hook.is_some())
            .finish_non_exhaustive()
    }
}

/// Prepared before the app starts; attached to its process once it runs.
pub trait ProcessHook: Send + Sync {
    /// The runtime of the process `pid`.
    fn runtime(self: Arc<Self>, pid: u32) -> Arc<dyn Runtime>;
}

/// A handle on the app's own process (launcher mode), to free memory inside it.
pub trait Runtime: Send + Sync {
    /// Ends the app sessions `ids` for good. Returns whether the request was made.
    fn close_sessions(&self, ids: &[&str]) -> bool;
    /// Asks for a full garbage collection. Returns whether the request was made.
    fn collect(&self) -> bool;
    /// The framework's version the process runs, when it says (before any session does).
    fn version(&self) -> Option<String> {
        None
    }
    /// The resident memory of the app's process tree, in bytes, when it can be read.
    fn resident_bytes(&self) -> Option<u64> {
        None
    }
}

/// What the app at an upstream answers under a base path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BasePathCheck {
    /// It serves there.
    Serves,
    /// It answers, but serves under another base path; the message says how to fix it.
    Elsewhere(String),
    /// It does not answer (yet).
    Unreachable(String),
}

/// How many arguments are looked at for the program: wrappers like `env`, `uv run --with
/// x` or `python -m` come first.
const PROGRAM_WITHIN: usize = 8;

/// The index of the argument that runs `program` in `command`: the program itself (by its
/// file name, any directory) or `python -m program`. The first such argument among the
/// first [`PROGRAM_WITHIN`].
pub fn program_position(command: &[String], program: &str) -> Option<usize> {
    program_positions(command, program).next()
}

/// The index of `sub` in `program sub …` (also `python -m program sub`): the first place in
/// the command where the program is followed by that subcommand.
pub fn subcommand_position(command: &[String], program: &str, sub: &str) -> Option<usize> {
    program_positions(command, program)
        .find(|at| command.get(at + 1).map(String::as_str) == Some(sub))
        .map(|at| at + 1)
}

/// Every index of the first [`PROGRAM_WITHIN`] arguments that runs `program` (see
/// [`program_position`]).
pub fn program_positions<'a>(
    command: &'a [String],
    program: &'a str,
) -> impl Iterator<Item = usize> + 'a {
    command
        .iter()
        .take(PROGRAM_WITHIN)
        .enumerate()
        .filter_map(move |(i, arg)| {
            let name = arg.rsplit('/').next().unwrap_or(arg);
            let name = name.strip_suffix(".exe").unwrap_or(name);
            let by_module = arg == program && i > 0 && command[i - 1] == "-m";
            (name == program || by_module).then_some(i)
        })
}
