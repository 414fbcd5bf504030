//! An app of another Python framework (Shiny, Panel, Gradio) running from its own virtualenv
//! (`<repo>/.venv-<kind>`, made by `scripts/python-env.sh <kind>`), on a free loopback port.
//! Killed, with its whole process group, on drop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::streamlit::{spawn_logged, OutputLog};
use crate::{http, ports, venv};

/// How long an app may take to answer its health check.
const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// A running app.
#[derive(Debug)]
pub struct PyApp {
    child: Child,
    pid: u32,
    port: u16,
    output: OutputLog,
}

/// The virtualenv of `kind`: `$TESTKIT_VENV_<KIND>`, else `<repo>/.venv-<kind>`.
///
/// # Panics
/// With instructions, when it has not been made.
pub fn kind_venv(kind: &str) -> PathBuf {
    let variable = format!("TESTKIT_VENV_{}", kind.to_uppercase());
    let dir = match std::env::var_os(&variable) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => venv::workspace_root().join(format!(".venv-{kind}")),
    };
    assert!(
        dir.join("bin/python").is_file(),
        "{} has no Python: run `scripts/python-env.sh {kind}` from the repository root (or \
         set {variable})",
        dir.display()
    );
    dir
}

impl PyApp {
    /// `shiny run <app>` (a path under the repository) on a free port.
    pub async fn shiny(app: &str) -> Result<PyApp> {
        let app = venv::repo_path(app);
        let program = kind_venv("shiny").join("bin/shiny");
        Self::start(
            &program,
            &["run"],
            &app,
            &["--host", "127.0.0.1", "--port"],
            "/",
        )
        .await
    }

    /// `panel serve <app>` (a path under the repository) on a free port, accepting sockets
    /// from any origin (the gateway's address is not known yet).
    pub async fn panel(app: &str) -> Result<PyApp> {
        let app = venv::repo_path(app);
        let program = kind_venv("panel").join("bin/panel");
        let options = [
            "--address",
            "127.0.0.1",
            "--allow-websocket-origin=*",
            "--port",
        ];
        Self::start(&program, &["serve"], &app, &options, "/favicon.ico").await
    }

    /// `python <app>` (a path under the repository) calling Gradio's `launch()`, told its
    /// port by `GRADIO_SERVER_PORT`, without analytics (no network).
    pub async fn gradio(app: &str) -> Result<PyApp> {
        let app = venv::repo_path(app);
        let python = kind_venv("gradio").join("bin/python");
        let port = ports::free_port();
        let mut command = Command::new(python);
        command
            .arg(&app)
            .env("GRADIO_SERVER_NAME", "127.0.0.1")
            .env("GRADIO_SERVER_PORT", port.to_string())
            .env("GRADIO_ANALYTICS_ENABLED", "False");
        Self::run(command, &app, port, "/gradio_api/app_id").await
    }

    /// Runs `program <before…> <after…> <port> <app>` in the app's folder and waits until
    /// `GET <health>` answers 200.
    async fn start(
        program: &Path,
        before: &[&str],
        app: &Path,
        after: &[&str],
        health: &str,
    ) -> Result<PyApp> {
        let port = ports::free_port();
        let mut command = Command::new(program);
        command
            .args(before)
            .args(after)
            .arg(port.to_string())
            .arg(app);
        Self::run(command, app, port, health).await
    }

    /// Runs `command` for the app at `app`, listening on `port`, in the app's folder, and
    /// waits until `GET <health>` answers 200.
    async fn run(mut command: Command, app: &Path, port: u16, health: &str) -> Result<PyApp> {
        command
            .env("PYTHONUNBUFFERED", "1")
            .current_dir(app.parent().unwrap_or(Path::new("/")));
        let (child, pid, output) = spawn_logged(&mut command, format!("app:{port}"))?;
        let mut app = PyApp {
            child,
            pid,
            port,
            output,
        };
        app.wait_healthy(health).await?;
        Ok(app)
    }

    async fn wait_healthy(&mut self, path: &str) -> Result<()> {
        let url = format!("{}{path}", self.base_url());
        let deadline = tokio::time::Instant::now() + STARTUP_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait()? {
                tokio::time::sleep(Duration::from_millis(200)).await;
                bail!("the app exited with {status}; output:\n{}", self.output());
            }
            if matches!(http::get(&url).await, Ok(response) if response.status == 200) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the app did not answer {url} within {STARTUP_DEADLINE:?}; output:\n{}",
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The app's process id (the Python process holding every session).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The app's resident memory in bytes.
    pub fn rss_bytes(&self) -> u64 {
        crate::proc::rss_bytes(self.pid)
    }

    /// Everything the app printed so far.
    pub fn output(&self) -> String {
        self.output.contents()
    }
}

impl Drop for PyApp {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        let _ = self.child.start_kill();
    }
}
