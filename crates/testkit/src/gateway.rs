//! idlegate gateways for tests: in-process ([`TestGateway`]) and as the real binary
//! ([`GatewayProcess`], for launcher mode, signals and exit codes).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use idlegate::config::{Config, Sources};
use idlegate::tracker::{EndReason, Tracker};
use idlegate::Server;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::ports::free_port;
use crate::proc::wait_for;

/// A gateway running inside the test process on `127.0.0.1:<ephemeral>`. Stops when dropped.
pub struct TestGateway {
    addr: SocketAddr,
    tracker: Tracker,
    shutdown: Option<oneshot::Sender<EndReason>>,
    task: Option<JoinHandle<()>>,
}

impl TestGateway {
    /// Starts a gateway in front of `upstream` (like `http://127.0.0.1:8501`), with extra
    /// config in TOML (sections such as `[tabs]`; top-level keys are not allowed here).
    pub async fn start(upstream: &str, toml: &str) -> Result<TestGateway> {
        let text = format!("listen = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\n{toml}");
        let config = Config::load(&Sources {
            toml: Some(text),
            ..Sources::default()
        })
        .context("test gateway config")?;
        let server = Server::bind(config)
            .await
            .context("binding the test gateway")?;
        let addr = server.local_addr()?;
        let tracker = server.tracker();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server.run(async move { rx.await.unwrap_or(EndReason::Shutdown) }));
        Ok(TestGateway {
            addr,
            tracker,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The gateway's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The gateway's tab registry.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Shuts down, ending every tab with `reason`, and waits until the server has stopped.
    pub async fn stop(mut self, reason: EndReason) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(reason);
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(EndReason::Shutdown);
        }
    }
}

/// The `idlegate` binary running as a child process, killed when dropped.
pub struct GatewayProcess {
    child: Child,
    port: u16,
    output: Arc<Mutex<String>>,
    /// The tasks reading its standard output and error, done at end of file.
    readers: Vec<JoinHandle<()>>,
}

impl GatewayProcess {
    /// Runs `binary --listen 127.0.0.1:<free> ARGS…` and waits until `/_idlegate/readyz`
    /// answers 200 (so in launcher mode the app is up too).
    pub async fn start(binary: &Path, args: &[&str]) -> Result<GatewayProcess> {
        let mut process = Self::spawn(binary, args, &[])?;
        let url = format!("{}/_idlegate/readyz", process.url());
        let ready = wait_for(Duration::from_secs(90), Duration::from_millis(200), || {
            let url = url.clone();
            async move {
                let response = crate::http::get(&url).await?;
                anyhow::ensure!(
                    response.status == 200,
                    "readyz answered {}",
                    response.status
                );
                Ok(())
            }
        })
        .await;
        if let Err(e) = ready {
            let exited = process.child.try_wait().ok().flatten();
            bail!(
                "idlegate did not become ready ({e}); exit status {exited:?}; output:\n{}",
                process.output()
            );
        }
        Ok(process)
    }

    /// Runs the binary without waiting for readiness (for tests of failing starts).
    pub fn spawn(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<GatewayProcess> {
        let port = free_port();
        let mut command = Command::new(binary);
        // Its own process group: the app it launches inherits it, so dropping the guard can
        // stop both even though idlegate, killed outright, cannot stop its child itself.
        command
            .process_group(0)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(collect(out, output.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(collect(err, output.clone()));
        }
        Ok(GatewayProcess {
            child,
            port,
            output,
            readers,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Process id of idlegate.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Everything it printed so far (stdout and stderr, interleaved by line).
    pub fn output(&self) -> String {
        self.output.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Sends a signal by name (`"TERM"`, `"INT"`, `"KILL"`) to a process.
    pub fn signal(pid: u32, name: &str) -> Result<()> {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{name} {pid} failed");
        }
        Ok(())
    }

    /// Waits for idlegate to exit, and for everything it printed to be read (so
    /// [`GatewayProcess::output`] is complete afterwards).
    pub async fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        let status = tokio::time::timeout_at(deadline, self.child.wait())
            .await
            .with_context(|| {
                format!(
                    "idlegate did not exit within {limit:?}; output:\n{}",
                    self.output()
                )
            })?
            .context("waiting for idlegate")?;
        // A child of idlegate (the app) may still hold the pipes open; its output is not
        // waited for past the deadline.
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout_at(deadline, reader).await;
        }
        Ok(status)
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn collect<R: AsyncRead + Unpin + Send + 'static>(
    reader: R,
    sink: Arc<Mutex<String>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let echo = std::env::var_os(crate::streamlit::ECHO_ENV).is_some();
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if echo {
                eprintln!("[idlegate] {line}");
            }
            if let Ok(mut s) = sink.lock() {
                s.push_str(&line);
                s.push('\n');
            }
        }
    })
}
