//! A real OpenID provider for tests: the npm package `oidc-provider` (in `tests/idp/`, its
//! packages installed by `scripts/test.sh` with `npm ci`), run with Node.js on a loopback port.
//!
//! It has one client and oidc-provider's development sign-in pages: any password is taken
//! and the login name becomes the user (`sub` and `preferred_username`, `email` =
//! `<name>@example.com` verified, `groups` = `["analysts"]`); [`Idp::start_with_accounts`]
//! replaces claims per login. Its signing key is new at each start, so [`Idp::rotate_keys`]
//! (a restart on the same port) is a key rotation. [`Browserless`] signs in through it over
//! plain HTTP, following redirects and submitting its forms, with a cookie jar.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::venv::repo_path;

mod browserless;
pub use browserless::Browserless;

/// The test client's id.
pub const CLIENT_ID: &str = "idlegate-tests";
/// The test client's secret.
pub const CLIENT_SECRET: &str = "idlegate-tests-secret";

/// A running provider; killed on drop.
pub struct Idp {
    child: Child,
    port: u16,
    redirect_uri: String,
    accounts: String,
    output: Arc<Mutex<String>>,
}

impl Idp {
    /// A free port to give [`Idp::start`]: the gateway's config needs the issuer before the
    /// provider can be told the gateway's redirect URL.
    pub fn reserve_port() -> u16 {
        crate::free_port()
    }

    /// Starts the provider on `port`, accepting only `redirect_uri` for its client, and waits
    /// until it serves its discovery document.
    pub async fn start(port: u16, redirect_uri: &str) -> Result<Idp> {
        Self::start_with_accounts(port, redirect_uri, serde_json::json!({})).await
    }

    /// Like [`Idp::start`], with `accounts`: a JSON object from login name to claims that
    /// replace that login's default claims (`{"u-1": {"preferred_username": "alice",
    /// "email_verified": false}}`). The login name is always the `sub`.
    pub async fn start_with_accounts(
        port: u16,
        redirect_uri: &str,
        accounts: serde_json::Value,
    ) -> Result<Idp> {
        let output = Arc::new(Mutex::new(String::new()));
        let accounts = accounts.to_string();
        let child = spawn(port, redirect_uri, &accounts, &output)?;
        let mut idp = Idp {
            child,
            port,
            redirect_uri: redirect_uri.to_owned(),
            accounts,
            output,
        };
        idp.ready().await?;
        Ok(idp)
    }

    /// Rotates the provider's signing key: stops it and starts it again on the same port with
    /// a new key (and a new `kid`). Its sessions and codes are lost, as in a restart.
    pub async fn rotate_keys(&mut self) -> Result<()> {
        self.child
            .kill()
            .await
            .context("stopping the OpenID provider")?;
        self.child = spawn(self.port, &self.redirect_uri, &self.accounts, &self.output)?;
        self.ready().await
    }

    async fn ready(&mut self) -> Result<()> {
        let discovery = format!("{}/.well-known/openid-configuration", self.issuer());
        let ready = crate::wait_until(
            Duration::from_secs(30),
            Duration::from_millis(100),
            async || {
                let response = crate::http::get(&discovery).await?;
                anyhow::ensure!(
                    response.status == 200,
                    "discovery answered {}",
                    response.status
                );
                Ok(())
            },
        )
        .await;
        if let Err(e) = ready {
            bail!(
                "the OpenID provider did not start: {e:#}\n{}",
                self.output()
            );
        }
        Ok(())
    }

    /// `http://127.0.0.1:<port>`.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the provider printed so far.
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn spawn(
    port: u16,
    redirect_uri: &str,
    accounts: &str,
    output: &Arc<Mutex<String>>,
) -> Result<Child> {
    let dir = repo_path("tests/idp");
    if !dir.join("node_modules/oidc-provider").is_dir() {
        bail!(
            "tests/idp/node_modules is missing: run scripts/test.sh \
             (npm ci in tests/idp)"
        );
    }
    let mut child = Command::new("node")
        .arg("idp.mjs")
        .current_dir(&dir)
        .env("IDP_PORT", port.to_string())
        .env("IDP_REDIRECT_URI", redirect_uri)
        .env("IDP_CLIENT_ID", CLIENT_ID)
        .env("IDP_CLIENT_SECRET", CLIENT_SECRET)
        .env("IDP_ACCOUNTS", accounts)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting node tests/idp/idp.mjs (is Node.js installed?)")?;
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
    ]
    .into_iter()
    .flatten()
    {
        let output = output.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut out = output.lock().unwrap_or_else(|e| e.into_inner());
                out.push_str(&line);
                out.push('\n');
            }
        });
    }
    Ok(child)
}
