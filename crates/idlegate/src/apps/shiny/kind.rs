//! Shiny as a [`Kind`]: its launch command (`shiny run`, `shiny/_main/_run.py`), the app for
//! a running one, and the check that one answers.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::Shiny;
use crate::apps::collect::python_launch;
use crate::apps::kind::{
    program_position, subcommand_position, BasePathCheck, Kind, LaunchPlan, LaunchRequest, Runtime,
};
use crate::apps::probe::serves_at_root;
use crate::apps::App;
use crate::config::{Config, Upstream};

/// The Shiny kind.
pub struct ShinyKind;

/// The one instance.
pub static KIND: ShinyKind = ShinyKind;

/// Where idlegate's settings go in the person's command: right after `shiny run` (also
/// `python -m shiny run`), or after `uvicorn` for an app served by uvicorn itself (only with
/// `app.kind = "shiny"`: uvicorn could serve any framework).
fn insert_position(command: &[String]) -> Option<usize> {
    run_position(command).or_else(|| program_position(command, "uvicorn"))
}

/// The index of `run` in `shiny run …`.
fn run_position(command: &[String]) -> Option<usize> {
    subcommand_position(command, "shiny", "run")
}

/// Whether `arg` sets what idlegate owns: the address or port (`--host`, `--port`, `--uds`,
/// `--fd`, with `=value` or not, or a short option or cluster naming `-h` or `-p`: click
/// takes `-rh 0.0.0.0`, and the last value given wins), or serving from other processes
/// than the one idlegate started (`--reload`, `-r`, `--workers`), whose sessions' garbage
/// idlegate could not have collected.
fn sets_address(arg: &str) -> Option<&'static str> {
    for long in ["--host", "--port", "--uds", "--fd", "--reload", "--workers"] {
        if arg == long || arg.starts_with(&format!("{long}=")) {
            return Some(long);
        }
    }
    let short = arg
        .strip_prefix('-')
        .filter(|rest| !rest.starts_with('-'))?;
    if short.contains(['h', 'p', 'r']) {
        return Some("-h/-p/-r");
    }
    None
}

/// Inserts idlegate's settings into the command (see [`insert_position`]).
///
/// # Errors
/// The command runs neither `shiny run` nor `uvicorn`, or sets what idlegate sets.
pub fn command(command: &[String], port: u16) -> Result<Vec<String>, String> {
    let at = insert_position(command).ok_or_else(|| {
        "the command must be `shiny run <app> [options]` (or `uvicorn <module>:app` with \
         app.kind = \"shiny\")"
            .to_owned()
    })?;
    for arg in &command[at..] {
        if arg == "--" {
            break;
        }
        if sets_address(arg).is_some() {
            return Err(format!(
                "remove {arg} from the command: idlegate sets the app's address and port \
                 (see `listen`), and runs the app in the one process it starts (to free \
                 ended sessions' memory)"
            ));
        }
    }
    let mut full = command[..=at].to_vec();
    full.extend([
        "--host".to_owned(),
        "127.0.0.1".to_owned(),
        "--port".to_owned(),
        port.to_string(),
    ]);
    full.extend_from_slice(&command[at + 1..]);
    Ok(full)
}

impl Kind for ShinyKind {
    fn name(&self) -> &'static str {
        "shiny"
    }

    fn recognizes(&self, command: &[String]) -> bool {
        run_position(command).is_some()
    }

    fn plan_launch(&self, request: &LaunchRequest<'_>) -> Result<LaunchPlan, String> {
        let command = command(request.command, request.port)?;
        let (env, hook) = python_launch(request)?;
        Ok(LaunchPlan {
            command,
            env,
            base_path: request.config.app.base_path.clone(),
            health_path: "/".to_owned(),
            hook,
        })
    }

    fn app(
        &self,
        config: &Config,
        _upstream: &Upstream,
        runtime: Option<Arc<dyn Runtime>>,
    ) -> Arc<dyn App> {
        Arc::new(Shiny::new(&config.app.base_path).with_runtime(runtime))
    }

    fn check_base_path<'a>(
        &'a self,
        upstream: &'a Upstream,
        _base_path: &'a str,
    ) -> BoxFuture<'a, BasePathCheck> {
        // The app serves at the root whatever app.base_path is: idlegate takes the base
        // path off. Only whether it answers is checked.
        Box::pin(serves_at_root(upstream, "/", "Shiny"))
    }
}
