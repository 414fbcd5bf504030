//! A real `redis-server` (Debian's) on an ephemeral loopback port, killed when dropped.
//!
//! It keeps nothing on disk (`--save ""`, no append-only file), so a restart comes back
//! empty, like a Redis without persistence that crashed.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::ports::free_port;
use crate::proc::wait_until;

/// A running `redis-server`.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// More `redis-server` arguments (like `--requirepass`).
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers `PING`.
    pub async fn start() -> Result<Self> {
        Self::start_with(&[]).await
    }

    /// Starts one with more `redis-server` arguments, like `["--requirepass", "secret"]`.
    pub async fn start_with(extra: &[&str]) -> Result<Self> {
        let mut server = Self {
            port: free_port(),
            child: None,
            extra: extra.iter().map(|arg| (*arg).to_owned()).collect(),
        };
        server.restart().await?;
        Ok(server)
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills it (SIGKILL): connections drop at once, as when a Redis pod dies.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.context("killing redis-server")?;
        }
        Ok(())
    }

    /// Starts it again on the same port (empty), and waits until it answers.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill().await?;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .args(&self.extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server (Debian package redis-server)")?;
        self.child = Some(child);
        let port = self.port;
        wait_until(
            Duration::from_secs(10),
            Duration::from_millis(50),
            async || {
                command(port, "PING").await.and_then(|answer| {
                    // Answering at all is up; one with a password asks for it first.
                    if answer.starts_with("+PONG") || answer.starts_with("-NOAUTH") {
                        Ok(())
                    } else {
                        bail!("redis-server answered {answer:?}")
                    }
                })
            },
        )
        .await
    }

    /// Sends one inline command (like `DBSIZE`) and returns the raw answer.
    pub async fn command(&self, line: &str) -> Result<String> {
        command(self.port, line).await
    }
}

async fn command(port: u16, line: &str) -> Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(format!("{line}\r\n").as_bytes()).await?;
    let mut buffer = vec![0u8; 64 * 1024];
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer))
        .await
        .context("redis-server did not answer")??;
    Ok(String::from_utf8_lossy(&buffer[..read]).into_owned())
}
