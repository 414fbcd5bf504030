//! Asking Streamlit whether a reconnecting page got its own session back.
//!
//! A page that reconnects names the session it had (`Sec-WebSocket-Protocol`, third entry).
//! When Streamlit no longer has it (the app restarted, or dropped it from its store of 128
//! closed sessions), it silently makes a new, empty session, and the page keeps its old
//! screen over it. Nothing on the socket says which happened. The upload route does: a `PUT
//! /_stcore/upload_file/<session>/<file>` answers 400 ("Invalid session_id") for a session
//! that is not connected before it checks the body's size, and 413 for a connected one whose
//! announced body is over `server.maxUploadSize` (`web/server/starlette/starlette_routes.py`,
//! `_upload_put`). So the probe announces a body far over any limit and sends none: it stores
//! nothing, and reads only the status line. It needs the page's XSRF pair, which any
//! `/_stcore/health` answer hands out.

use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::apps::probe::exchange_all;
use crate::config::Upstream;

/// Longest a probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// A body size no app accepts (a petabyte); uvicorn parses it, Streamlit refuses it.
const TOO_LARGE: u64 = 1_000_000_000_000_000;
/// Name of Streamlit's XSRF cookie.
const XSRF_COOKIE: &str = "_streamlit_xsrf";

/// What a probe found about a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// The app has the session connected: the page got it back.
    Yes,
    /// The app does not have it: the page got a new, empty session.
    No,
}

/// Probes one app; keeps the XSRF pair between probes.
pub struct ResumeProbe {
    upstream: Upstream,
    base_path: String,
    xsrf: Mutex<Option<String>>,
}

impl ResumeProbe {
    pub fn new(upstream: Upstream, base_path: &str) -> Self {
        Self {
            upstream,
            base_path: base_path.to_owned(),
            xsrf: Mutex::new(None),
        }
    }

    /// Whether the app has session `id` connected. `Err` when the app could not tell (down,
    /// an answer of another kind).
    pub async fn resumed(&self, id: &str) -> std::io::Result<Resumed> {
        let xsrf = match self.cached_xsrf() {
            Some(xsrf) => xsrf,
            None => self.fetch_xsrf().await?,
        };
        match timeout(PROBE_TIMEOUT, self.put_probe(id, &xsrf)).await {
            Ok(Ok(413)) => Ok(Resumed::Yes),
            Ok(Ok(400)) => Ok(Resumed::No),
            Ok(Ok(403)) => {
                // The pair went stale: forget it for next time.
                *self.xsrf.lock().unwrap_or_else(|p| p.into_inner()) = None;
                Err(std::io::Error::other(
                    "the app refused the probe's XSRF token",
                ))
            }
            Ok(Ok(status)) => Err(std::io::Error::other(format!(
                "the app answered the probe with {status}"
            ))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::other("the probe timed out")),
        }
    }

    fn cached_xsrf(&self) -> Option<String> {
        self.xsrf.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn fetch_xsrf(&self) -> std::io::Result<String> {
        let request = format!(
            "GET {}/_stcore/health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.base_path,
            self.upstream.authority()
        );
        let head = timeout(PROBE_TIMEOUT, exchange(&self.upstream, &request))
            .await
            .map_err(|_| std::io::Error::other("the health check timed out"))??;
        let xsrf = head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .filter(|(name, _)| name.trim().eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, value)| value.trim().split(';').next())
            .find_map(|cookie| cookie.strip_prefix(XSRF_COOKIE)?.strip_prefix('='))
            .map(str::to_owned)
            .ok_or_else(|| std::io::Error::other("the app set no XSRF cookie"))?;
        *self.xsrf.lock().unwrap_or_else(|p| p.into_inner()) = Some(xsrf.clone());
        Ok(xsrf)
    }

    async fn put_probe(&self, id: &str, xsrf: &str) -> std::io::Result<u16> {
        let request = format!(
            "PUT {}/_stcore/upload_file/{id}/idlegate-resume-probe HTTP/1.1\r\nHost: {}\r\n\
             X-Xsrftoken: {xsrf}\r\nCookie: {XSRF_COOKIE}={xsrf}\r\n\
             Content-Type: multipart/form-data; boundary=idlegate\r\n\
             Content-Length: {TOO_LARGE}\r\nConnection: close\r\n\r\n",
            self.base_path,
            self.upstream.authority()
        );
        let head = exchange(&self.upstream, &request).await?;
        head.split(' ')
            .nth(1)
            .and_then(|status| status.parse().ok())
            .ok_or_else(|| std::io::Error::other("the app's answer has no status"))
    }
}

/// Sends `request` and reads the answer's head (status line and headers).
async fn exchange(upstream: &Upstream, request: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect((upstream.host.as_str(), upstream.port)).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 64 * 1024 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// What the app answers under a base path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BasePathCheck {
    /// The app's health check answers under it.
    Serves,
    /// The app answers, but not under it: it serves under another base path. `at_root` says
    /// whether it serves with no base path at all.
    Elsewhere { at_root: bool },
    /// The app does not answer (yet).
    Unreachable(String),
}

/// Whether Streamlit at `upstream` serves under `base_path`. Its health check answers `ok`
/// under its own base path; anywhere else a page path gets 404 or, under a base path it
/// has, the page itself (`web/server/starlette/starlette_static_routes.py`).
pub async fn check_base_path(upstream: &Upstream, base_path: &str) -> BasePathCheck {
    let health = |base: &str| {
        format!(
            "GET {base}/_stcore/health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            upstream.authority()
        )
    };
    let ok = |answer: &str| {
        answer.starts_with("HTTP/1.1 200") && answer.trim_end().ends_with("\r\n\r\nok")
    };
    let answer = match timeout(PROBE_TIMEOUT, exchange_all(upstream, &health(base_path))).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => return BasePathCheck::Unreachable(e.to_string()),
        Err(_) => return BasePathCheck::Unreachable("no answer within 5 s".to_owned()),
    };
    if ok(&answer) {
        return BasePathCheck::Serves;
    }
    let at_root = !base_path.is_empty()
        && matches!(
            timeout(PROBE_TIMEOUT, exchange_all(upstream, &health(""))).await,
            Ok(Ok(answer)) if ok(&answer)
        );
    BasePathCheck::Elsewhere { at_root }
}
