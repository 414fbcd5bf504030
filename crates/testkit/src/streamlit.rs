//! A real Streamlit server running one app, for tests.
//!
//! [`StreamlitApp::start`] launches `streamlit run` from the project's
//! virtualenv on an ephemeral loopback port, waits until its health endpoint
//! answers, and keeps the server's console output so a failing test can show
//! it. Dropping the [`StreamlitApp`] kills the server.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::{http, ports, venv};

/// How long Streamlit may take to become healthy. Its first start imports
/// numpy, pandas and pyarrow, which takes several seconds on a busy 2-core
/// machine.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// Interval between health checks while waiting for startup.
const HEALTH_POLL: Duration = Duration::from_millis(100);

/// Set this environment variable to `1` to echo server output to stderr live.
pub const ECHO_ENV: &str = "TESTKIT_ECHO";

/// How many times to retry when the chosen port turned out to be taken.
const PORT_ATTEMPTS: usize = 3;

/// Options for [`StreamlitApp::start`]; `Default` gives a plain server.
#[derive(Debug, Clone, Default)]
pub struct StreamlitOptions {
    /// `--server.disconnectedSessionTTL`: seconds Streamlit keeps a session
    /// after its WebSocket closes, so that a reconnecting tab can resume it.
    pub disconnected_session_ttl_secs: Option<u64>,
    /// `--server.baseUrlPath`, with or without surrounding slashes.
    pub base_url_path: Option<String>,
    /// Further command-line arguments, appended last so they can override
    /// the defaults.
    pub extra_args: Vec<String>,
    /// Extra environment variables for the server (and so for the app script).
    pub env: Vec<(String, String)>,
    /// Listen on this port instead of a free one (to restart an app where it was).
    pub port: Option<u16>,
}

/// Console output of a child process, shared with the tasks that read it.
#[derive(Debug, Clone, Default)]
pub struct OutputLog(Arc<Mutex<String>>);

impl OutputLog {
    /// Everything captured so far.
    pub fn contents(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn push_line(&self, line: &str) {
        let mut buf = self.0.lock().unwrap_or_else(|e| e.into_inner());
        buf.push_str(line);
        buf.push('\n');
    }

    /// Starts a task that appends each line of `stream` to this log, and
    /// echoes it to stderr prefixed with `label` when [`ECHO_ENV`] is `1`.
    pub fn capture(&self, stream: impl AsyncRead + Unpin + Send + 'static, label: String) {
        let log = self.clone();
        let echo = std::env::var(ECHO_ENV).is_ok_and(|v| v == "1");
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if echo {
                    eprintln!("[{label}] {line}");
                }
                log.push_line(&line);
            }
        });
    }
}

/// Spawns `command` as a process group of its own (so that dropping its guard also kills
/// anything it started), with no standard input and its output captured, line by line,
/// under `label`. Returns the child, its pid and its output.
pub fn spawn_logged(command: &mut Command, label: String) -> Result<(Child, u32, OutputLog)> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let mut child = command
        .spawn()
        .with_context(|| format!("spawning {program}"))?;
    let pid = child
        .id()
        .with_context(|| format!("{program} exited immediately"))?;
    let output = OutputLog::default();
    if let Some(stdout) = child.stdout.take() {
        output.capture(stdout, label.clone());
    }
    if let Some(stderr) = child.stderr.take() {
        output.capture(stderr, label);
    }
    Ok((child, pid, output))
}

/// A running Streamlit server. Killed (with its whole process group) on drop.
#[derive(Debug)]
pub struct StreamlitApp {
    child: Child,
    pid: u32,
    port: u16,
    /// Normalized base path: empty, or `/segment[/segment...]` without a
    /// trailing slash.
    base_path: String,
    app: PathBuf,
    output: OutputLog,
}

impl StreamlitApp {
    /// Starts one of the test apps in `tests/apps/` (like `"counter.py"`), under `base_path`
    /// if given, with `server.disconnectedSessionTTL` at 20 s: what idlegate's launcher sets
    /// by default (`app.disconnected_session_ttl`).
    pub async fn test_app(app: &str, base_path: Option<&str>) -> Result<StreamlitApp> {
        Self::start(
            &crate::venv::repo_path(format!("tests/apps/{app}")),
            StreamlitOptions {
                disconnected_session_ttl_secs: Some(20),
                base_url_path: base_path.map(str::to_owned),
                ..StreamlitOptions::default()
            },
        )
        .await
        .with_context(|| format!("starting Streamlit with tests/apps/{app}"))
    }

    /// Starts `streamlit run <app>` on a free port and waits until
    /// `GET <base>/_stcore/health` returns 200.
    ///
    /// Fails (including the server's output in the error) if the server exits
    /// early or is not healthy within [`STARTUP_DEADLINE`].
    pub async fn start(app: &Path, opts: StreamlitOptions) -> Result<StreamlitApp> {
        let mut attempt = 1;
        loop {
            match Self::start_once(app, &opts).await {
                Ok(server) => return Ok(server),
                // Another process may have grabbed the port between
                // free_port() and Streamlit binding it; try another port.
                Err(e)
                    if attempt < PORT_ATTEMPTS && format!("{e:#}").contains("is not available") =>
                {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn start_once(app: &Path, opts: &StreamlitOptions) -> Result<StreamlitApp> {
        let app = app
            .canonicalize()
            .with_context(|| format!("Streamlit app {} not found", app.display()))?;
        let port = opts.port.unwrap_or_else(ports::free_port);
        let base_path = normalize_base_path(opts.base_url_path.as_deref());

        let mut cmd = Command::new(venv::streamlit_bin());
        cmd.arg("run")
            .arg(&app)
            .args(["--server.port", &port.to_string()])
            .args(["--server.address", "127.0.0.1"])
            .args(["--server.headless", "true"])
            .args(["--browser.gatherUsageStats", "false"])
            // Tests never edit the app while it runs; a file watcher would only
            // cost CPU on small CI machines.
            .args(["--server.fileWatcherType", "none"]);
        if let Some(ttl) = opts.disconnected_session_ttl_secs {
            cmd.args(["--server.disconnectedSessionTTL", &ttl.to_string()]);
        }
        if !base_path.is_empty() {
            cmd.args(["--server.baseUrlPath", &base_path[1..]]);
        }
        cmd.args(&opts.extra_args)
            // Python buffers stdout when it is a pipe; unbuffered output means
            // the captured log is complete when a test prints it.
            .env("PYTHONUNBUFFERED", "1")
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .current_dir(app.parent().unwrap_or(Path::new("/")));
        let (child, pid, output) = spawn_logged(&mut cmd, format!("streamlit:{port}"))?;

        let mut server = StreamlitApp {
            child,
            pid,
            port,
            base_path,
            app,
            output,
        };
        server.wait_healthy().await?;
        Ok(server)
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let health = format!("{}/_stcore/health", self.base_url());
        let deadline = tokio::time::Instant::now() + STARTUP_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait()? {
                // Give the reader tasks a moment to drain the pipes so the
                // error shows why the server died.
                tokio::time::sleep(Duration::from_millis(200)).await;
                bail!(
                    "Streamlit exited with {status} before becoming healthy; output:\n{}",
                    self.output()
                );
            }
            if let Ok(response) = http::get(&health).await {
                if response.status == 200 {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "Streamlit not healthy at {health} within {STARTUP_DEADLINE:?}; output:\n{}",
                    self.output()
                );
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` followed by the base path, if any, without a
    /// trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.port, self.base_path)
    }

    /// The base path (`""` or `/something`), without a trailing slash.
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// The app script being served.
    pub fn app(&self) -> &Path {
        &self.app
    }

    /// Process id of the server.
    ///
    /// `streamlit` is a Python console script whose shebang names the
    /// virtualenv's interpreter, so the kernel runs Python directly and this
    /// is the Python process that holds every session's memory.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Resident memory of the server process in bytes.
    ///
    /// # Panics
    ///
    /// Panics if the server is no longer running.
    pub fn rss_bytes(&self) -> u64 {
        crate::proc::rss_bytes(self.pid)
    }

    /// Everything the server printed so far (stdout and stderr interleaved
    /// line by line).
    pub fn output(&self) -> String {
        self.output.contents()
    }

    /// Whether the server process has exited.
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Asks the server to shut down with SIGTERM, as a process manager would,
    /// and waits up to `grace` for it to exit before killing it.
    pub async fn terminate(mut self, grace: Duration) -> Result<ExitStatus> {
        if self.child.try_wait()?.is_none() {
            let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                self.child.kill().await?;
                bail!("Streamlit did not exit within {grace:?} of SIGTERM; killed it")
            }
        }
    }
}

impl Drop for StreamlitApp {
    fn drop(&mut self) {
        // The group id is the server's pid (it was started as a group leader).
        // The kernel does not reuse a pid while it still names a process
        // group, so this reaches only processes this guard started.
        let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        let _ = self.child.start_kill();
    }
}

/// Turns `"foo/"`, `"/foo"` or `"foo"` into `"/foo"`, and `None`/`"/"` into `""`.
fn normalize_base_path(path: Option<&str>) -> String {
    match path.map(|p| p.trim_matches('/')) {
        Some(p) if !p.is_empty() => format!("/{p}"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_base_path;

    #[test]
    fn base_path_normalization() {
        assert_eq!(normalize_base_path(None), "");
        assert_eq!(normalize_base_path(Some("/")), "");
        assert_eq!(normalize_base_path(Some("app")), "/app");
        assert_eq!(normalize_base_path(Some("/a/b/")), "/a/b");
    }
}
