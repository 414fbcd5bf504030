//! Starting the app as a child process: `idlegate [options] -- streamlit run app.py`.
//!
//! The app listens on a free loopback port chosen here, with the settings idlegate needs
//! ([`crate::apps::streamlit::launch`]). Its output goes to idlegate's own standard output
//! and error. idlegate serves once the app's health check answers, stops it on SIGTERM or
//! SIGINT, and exits with its exit code if it dies.

use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::time::{sleep, Instant};

use crate::apps::streamlit::collect::{AppRuntime, GcHook};
use crate::apps::streamlit::{launch, options};
use crate::config::{normalize_base_path, AppKind, Config, Upstream};
use crate::proxy::{upstream_client, Body};

/// The app could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{0}")]
    Command(String),
    #[error("cannot find a free port for the app")]
    Port(#[source] std::io::Error),
    #[error("cannot prepare the garbage-collection hook")]
    Hook(#[source] std::io::Error),
    #[error("cannot start {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the app exited during startup ({0})")]
    Exited(ExitStatus),
    #[error("the app did not answer its health check at {url} within {seconds} s")]
    Timeout { url: String, seconds: u64 },
}

/// The running app.
pub struct LaunchedApp {
    child: Child,
    gc_hook: Option<Arc<GcHook>>,
    /// Where it listens.
    pub upstream: Upstream,
    /// The base path it serves under (`app.base_path`, or the app's own).
    pub base_path: String,
}

/// The base path the app will serve under: idlegate's `app.base_path`, or the app's own
/// when only the app sets one ([`options`]). Differing values that idlegate cannot override
/// (the app's own flag) are an error naming both.
fn base_path(command: &[String], config: &Config) -> Result<String, LaunchError> {
    let env = |name: &str| std::env::var(name).ok();
    let launch = options::Launch {
        command,
        env: &env,
        cwd: std::env::current_dir().unwrap_or_default(),
        home: std::env::var_os("HOME").map(Into::into),
    };
    let ours = &config.app.base_path;
    let Some((value, source)) = options::base_url_path(&launch) else {
        return Ok(ours.clone());
    };
    let theirs = normalize_base_path(&value).map_err(|reason| {
        LaunchError::Command(format!(
            "the app's server.baseUrlPath from {source}: {reason}"
        ))
    })?;
    match (ours.as_str(), source) {
        (ours, _) if ours == theirs => Ok(theirs),
        ("", source) => {
            tracing::info!(base_path = %theirs, from = %source, "serving under the app's own base path");
            Ok(theirs)
        }
        (ours, options::Source::Flag) => Err(LaunchError::Command(format!(
            "app.base_path is {ours:?} but the app's command sets --server.baseUrlPath to \
             {theirs:?}; give the base path once, in either"
        ))),
        (ours, source) => {
            tracing::info!(base_path = %ours, app_value = %theirs, from = %source, "app.base_path overrides the app's own server.baseUrlPath");
            Ok(ours.to_owned())
        }
    }
}

/// Starts the app and waits until its health check answers.
pub async fn launch(command: &[String], config: &Config) -> Result<LaunchedApp, LaunchError> {
    let port = free_port().map_err(LaunchError::Port)?;
    let base_path = base_path(command, config)?;
    let full = match config.app.kind {
        AppKind::Streamlit => launch::command(
            command,
            port,
            &base_path,
            config.app.disconnected_session_ttl,
        )
        .and_then(|full| {
            if config.login.enabled() {
                launch::with_identity_headers(full, &config.login.headers)
            } else {
                Ok(full)
            }
        })
        .map_err(LaunchError::Command)?,
    };
    let (program, args) = full
        .split_first()
        .ok_or_else(|| LaunchError::Command("no command given after --".to_owned()))?;
    tracing::info!(command = %full.join(" "), "starting the app");
    let gc_hook = if config.launcher.collect_garbage {
        Some(Arc::new(GcHook::create().map_err(LaunchError::Hook)?))
    } else {
        None
    };
    let mut command = Command::new(program);
    if let Some(hook) = &gc_hook {
        let existing = std::env::var_os("PYTHONPATH");
        command.env("PYTHONPATH", hook.python_path(existing.as_deref()));
    }
    let child = command
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| LaunchError::Spawn {
            program: program.clone(),
            source,
        })?;
    let mut app = LaunchedApp {
        child,
        gc_hook,
        upstream: Upstream {
            host: "127.0.0.1".to_owned(),
            port,
        },
        base_path: base_path.clone(),
    };
    let health = format!("http://127.0.0.1:{port}{base_path}/_stcore/health");
    app.wait_healthy(&health, config.launcher.startup_timeout)
        .await?;
    tracing::info!(upstream = %app.upstream, "the app is ready");
    Ok(app)
}

impl LaunchedApp {
    async fn wait_healthy(&mut self, url: &str, limit: Duration) -> Result<(), LaunchError> {
        let client = upstream_client(Duration::from_secs(1));
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().ok().flatten() {
                return Err(LaunchError::Exited(status));
            }
            if let Ok(request) = http::Request::get(url).body(Body::empty()) {
                let answer = tokio::time::timeout(Duration::from_secs(2), client.request(request));
                if let Ok(Ok(response)) = answer.await {
                    if response.status().is_success() {
                        return Ok(());
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(LaunchError::Timeout {
                    url: url.to_owned(),
                    seconds: limit.as_secs(),
                });
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    /// The app's Python runtime, when the hook is on (`launcher.collect_garbage`): ended
    /// sessions are shut down in it at once, and garbage collected after reclaims.
    pub fn runtime(&self) -> Option<AppRuntime> {
        Some(AppRuntime::new(self.gc_hook.clone()?, self.child.id()?))
    }

    /// Resolves when the app exits on its own.
    pub async fn exited(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Sends `signal`, waits up to `limit` for the app to exit, then kills it.
    pub async fn stop(&mut self, signal: Signal, limit: Duration) -> std::io::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        if let Some(pid) = self.child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = kill(Pid::from_raw(pid), signal);
        }
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                tracing::warn!(
                    seconds = limit.as_secs(),
                    "the app did not stop in time; killing it"
                );
                self.child.kill().await?;
                self.child.wait().await
            }
        }
    }
}

/// The exit code idlegate reports for the app's exit status.
pub fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        (None, None) => 1,
    }
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
