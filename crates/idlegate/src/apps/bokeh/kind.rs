//! Bokeh and Panel as [`Kind`]s: their launch commands (`bokeh serve` and `panel serve`,
//! `bokeh/command/subcommands/serve.py`), the app for a running one, and the check that one
//! serves under the base path.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::Bokeh;
use crate::apps::collect::python_launch;
use crate::apps::kind::{
    subcommand_position, BasePathCheck, Kind, LaunchPlan, LaunchRequest, Runtime,
};
use crate::apps::probe::get_status;
use crate::apps::App;
use crate::config::{Config, Upstream};

/// How often the launched server looks for unused sessions to discard
/// (`--check-unused-sessions`; Bokeh's default is 17 s).
pub const CHECK_UNUSED: Duration = Duration::from_secs(2);

/// Bokeh's server, run as `bokeh serve` (`name` "bokeh") or `panel serve` ("panel").
pub struct BokehKind {
    name: &'static str,
    /// The secret the launched server signs with, once planned.
    launch_secret: Mutex<Option<String>>,
}

/// `bokeh serve`.
pub static BOKEH: BokehKind = BokehKind {
    name: "bokeh",
    launch_secret: Mutex::new(None),
};
/// `panel serve`.
pub static PANEL: BokehKind = BokehKind {
    name: "panel",
    launch_secret: Mutex::new(None),
};

/// Settings idlegate passes and the person's command must not repeat. `--num-procs` is
/// one process: a page's GET and its socket must reach the same process, which holds the
/// session.
const OWNED: [&str; 8] = [
    "--port",
    "--address",
    "--allow-websocket-origin",
    "--unused-session-lifetime",
    "--check-unused-sessions",
    "--prefix",
    "--session-ids",
    "--num-procs",
];

/// The secret Bokeh signs session ids and tokens with: the person's `BOKEH_SECRET_KEY` when
/// set (several servers of one app share it), else 32 random bytes for this launch.
fn secret_key(env: &dyn Fn(&str) -> Option<String>) -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    if let Some(key) = env("BOKEH_SECRET_KEY").filter(|key| !key.is_empty()) {
        return key;
    }
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

/// The option of [`OWNED`] that `arg` sets, if any: the whole name, or (as argparse takes
/// them) an abbreviation of it, with or without `=value`.
fn owned_option(arg: &str) -> Option<&'static str> {
    let name = arg.split('=').next().unwrap_or(arg);
    if name.len() < 3 || !name.starts_with("--") {
        return None;
    }
    OWNED.iter().copied().find(|owned| owned.starts_with(name))
}

impl BokehKind {
    /// The index of `serve` in `<name> serve …` (also `python -m <name> serve …`).
    fn serve_position(&self, command: &[String]) -> Option<usize> {
        subcommand_position(command, self.name, "serve")
    }

    /// Inserts idlegate's settings right after `serve`.
    ///
    /// # Errors
    /// The command does not run `<name> serve`, or sets what idlegate sets.
    pub fn command(
        &self,
        command: &[String],
        port: u16,
        base_path: &str,
        unused_session_lifetime: Duration,
    ) -> Result<Vec<String>, String> {
        let serve = self
            .serve_position(command)
            .ok_or_else(|| format!("the command must be `{} serve <app> [options]`", self.name))?;
        for arg in &command[serve..] {
            // What follows `--args` is the app's own (`bokeh serve … --args …`).
            if arg == "--args" {
                break;
            }
            if let Some(owned) = owned_option(arg) {
                let why = if owned == "--num-procs" {
                    "the app must run in one process (a page and its socket must reach the \
                     process that holds its session)"
                } else {
                    "idlegate sets it (see `listen`, `app.base_path` and \
                     `app.disconnected_session_ttl`)"
                };
                return Err(format!("remove {arg} from the command: {why}"));
            }
        }
        let mut full = command[..=serve].to_vec();
        full.extend([
            "--port".to_owned(),
            port.to_string(),
            "--address".to_owned(),
            "127.0.0.1".to_owned(),
            // Browsers reach the app only through idlegate, which checks each session
            // socket's Origin itself.
            "--allow-websocket-origin=*".to_owned(),
            "--unused-session-lifetime".to_owned(),
            unused_session_lifetime.as_millis().to_string(),
            "--check-unused-sessions".to_owned(),
            CHECK_UNUSED.as_millis().to_string(),
            // Signed: a page cannot make up a session, nor the request headers its token
            // carries into it (which the app reads the person's identity from).
            "--session-ids".to_owned(),
            "signed".to_owned(),
        ]);
        if !base_path.is_empty() {
            full.push("--prefix".to_owned());
            full.push(base_path.to_owned());
        }
        full.extend_from_slice(&command[serve + 1..]);
        Ok(full)
    }
}

impl Kind for BokehKind {
    fn name(&self) -> &'static str {
        self.name
    }

    fn recognizes(&self, command: &[String]) -> bool {
        self.serve_position(command).is_some()
    }

    fn plan_launch(&self, request: &LaunchRequest<'_>) -> Result<LaunchPlan, String> {
        let config = request.config;
        let base_path = config.app.base_path.clone();
        let command = self.command(
            request.command,
            request.port,
            &base_path,
            config.app.disconnected_session_ttl,
        )?;
        let (mut env, hook) = python_launch(request)?;
        let secret = secret_key(request.env);
        *self.launch_secret.lock().unwrap_or_else(|p| p.into_inner()) = Some(secret.clone());
        env.push(("BOKEH_SECRET_KEY".to_owned(), secret.into()));
        env.push(("BOKEH_SIGN_SESSIONS".to_owned(), "yes".into()));
        Ok(LaunchPlan {
            command,
            env,
            health_path: format!("{base_path}/favicon.ico"),
            base_path,
            hook,
        })
    }

    fn app(
        &self,
        config: &Config,
        _upstream: &Upstream,
        runtime: Option<Arc<dyn Runtime>>,
    ) -> Arc<dyn App> {
        // The server discards an unused session at its first check after the lifetime.
        let discarded_after =
            config.app.disconnected_session_ttl + CHECK_UNUSED + Duration::from_secs(1);
        // The secret tokens are signed with: the launched server's, or the one idlegate's
        // own environment shares with a server it fronts.
        let secret = if config.app.launched {
            self.launch_secret
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        } else {
            std::env::var("BOKEH_SECRET_KEY")
                .ok()
                .filter(|key| !key.is_empty())
        };
        Arc::new(
            Bokeh::new(&config.app.base_path, discarded_after)
                .with_runtime(runtime)
                .with_secret(secret.map(String::into_bytes))
                // Launched by idlegate, it accepts any Origin.
                .with_any_origin(config.app.launched),
        )
    }

    fn check_base_path<'a>(
        &'a self,
        upstream: &'a Upstream,
        base: &'a str,
    ) -> BoxFuture<'a, BasePathCheck> {
        Box::pin(async move {
            match get_status(upstream, &format!("{base}/favicon.ico")).await {
                Ok(200) => BasePathCheck::Serves,
                Ok(_) if !base.is_empty() => match get_status(upstream, "/favicon.ico").await {
                    Ok(200) => BasePathCheck::Elsewhere(format!(
                        "app.base_path is {base:?} but the Bokeh server at {upstream} serves \
                         at the root; set app.base_path to \"\" or start it with --prefix {base}"
                    )),
                    _ => BasePathCheck::Elsewhere(format!(
                        "the Bokeh server at {upstream} does not serve under app.base_path \
                         {base:?}: give it --prefix {base}"
                    )),
                },
                Ok(status) => BasePathCheck::Elsewhere(format!(
                    "the app at {upstream} answers {base}/favicon.ico with {status}; is it a \
                     Bokeh or Panel server (with --prefix matching app.base_path)?"
                )),
                Err(why) => BasePathCheck::Unreachable(why),
            }
        })
    }
}
