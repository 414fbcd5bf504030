//! Starting the app as a child process: `idlegate [options] -- <the app's command>`.
//!
//! The app listens on a free loopback port chosen here, with the settings idlegate needs
//! (the app kind's [`LaunchPlan`](crate::apps::LaunchPlan)). Its output goes to idlegate's
//! own standard output and error, with its private address shown as idlegate's
//! ([`output`]). idlegate serves once the app's health check answers, stops it on SIGTERM or
//! SIGINT, and exits with its exit code if it dies.

pub mod output;

use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};

use crate::apps::{self, LaunchRequest, ProcessHook, Runtime};
use crate::config::{Config, Upstream};
use crate::proxy::{upstream_client, Body};

/// The app could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{0}")]
    Command(String),
    #[error("cannot find a free port for the app")]
    Port(#[source] std::io::Error),
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
    hook: Option<Arc<dyn ProcessHook>>,
    /// The tasks copying the app's standard output and error.
    relays: Vec<JoinHandle<()>>,
    /// Where it listens.
    pub upstream: Upstream,
    /// The base path it serves under (`app.base_path`, or the app's own).
    pub base_path: String,
}

/// Starts the app and waits until its health check answers.
pub async fn launch(command: &[String], config: &Config) -> Result<LaunchedApp, LaunchError> {
    let port = free_port().map_err(LaunchError::Port)?;
    let env = |name: &str| std::env::var(name).ok();
    let plan = apps::kind(config.app.kind)
        .plan_launch(&LaunchRequest {
            command,
            port,
            config,
            env: &env,
            cwd: std::env::current_dir().unwrap_or_default(),
            home: std::env::var_os("HOME").map(Into::into),
        })
        .map_err(LaunchError::Command)?;
    let (program, args) = plan
        .command
        .split_first()
        .ok_or_else(|| LaunchError::Command("no command given after --".to_owned()))?;
    tracing::info!(command = %plan.command.join(" "), "starting the app");
    let mut child = Command::new(program)
        .args(args)
        .envs(plan.env.iter().map(|(name, value)| (name, value)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| LaunchError::Spawn {
            program: program.clone(),
            source,
        })?;
    let rewrite = output::AddressRewrite::new(port, &output::public_host_port(config.listen));
    let mut relays = Vec::new();
    if let Some(out) = child.stdout.take() {
        relays.push(output::relay(out, tokio::io::stdout(), rewrite.clone()));
    }
    if let Some(err) = child.stderr.take() {
        relays.push(output::relay(err, tokio::io::stderr(), rewrite));
    }
    let mut app = LaunchedApp {
        child,
        hook: plan.hook,
        relays,
        upstream: Upstream {
            host: "127.0.0.1".to_owned(),
            port,
        },
        base_path: plan.base_path,
    };
    let health = format!("http://127.0.0.1:{port}{}", plan.health_path);
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
                output::drain(&mut self.relays).await;
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

    /// The app's runtime, when the kind has a hook in it (`launcher.collect_garbage`): ended
    /// sessions are shut down in it at once, and garbage collected after reclaims.
    pub fn runtime(&self) -> Option<Arc<dyn Runtime>> {
        Some(self.hook.clone()?.runtime(self.child.id()?))
    }

    /// Resolves when the app exits on its own, once what it printed last is relayed.
    pub async fn exited(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait().await;
        output::drain(&mut self.relays).await;
        status
    }

    /// Sends `signal`, waits up to `limit` for the app to exit, then kills it; returns once
    /// what it printed last is relayed.
    pub async fn stop(&mut self, signal: Signal, limit: Duration) -> std::io::Result<ExitStatus> {
        let status = self.stop_process(signal, limit).await;
        output::drain(&mut self.relays).await;
        status
    }

    async fn stop_process(
        &mut self,
        signal: Signal,
        limit: Duration,
    ) -> std::io::Result<ExitStatus> {
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
