//! Streamlit: the one place that knows its paths and its WebSocket protocol.
//!
//! - Session socket: `<base>/_stcore/stream`. The page names the session it wants to resume
//!   in the third entry of `Sec-WebSocket-Protocol` (`streamlit, <xsrf>, <session id>`).
//! - Browser→app messages are `BackMsg` protobufs: a `rerun_script` without
//!   `is_auto_rerun` is a person (except the page's own rerun right after it connects),
//!   `is_auto_rerun` is a fragment timer; stop, clear-cache, file and data requests are a
//!   person; heartbeats are not.
//! - App→browser messages are `ForwardMsg`s: `new_session` carries the session id and
//!   `session_status_changed` says whether the script runs.
//! - Ending: `ForwardMsg{auth_redirect{url}}` navigates the page away without any client
//!   script. Streamlit keeps a closed session for `server.disconnectedSessionTTL` and only
//!   drops expired ones when some later connection closes, so [`reclaim`] opens and closes
//!   one connection after that time.

pub mod collect;
pub mod launch;
pub mod message;
pub mod protowire;
pub mod reclaim;

use std::time::Duration;

use http::{HeaderMap, Method};
use tokio::time::Instant;

use super::{App, DecodeError, MessageDecoder, UploadEvent};
use crate::tracker::{Release, RunCause, Signal};
use message::{BackMsgKind, BackMsgScanner, ForwardMsgScanner};

/// A page's rerun request this soon after its socket opened is the page's own automatic rerun.
const CONNECT_RERUN_WINDOW: Duration = Duration::from_secs(5);
/// `ForwardMsg.session_status_changed`.
const FORWARD_SESSION_STATUS_CHANGED: u32 = 9;

/// Streamlit behind idlegate.
pub struct Streamlit {
    base_path: String,
    stream_path: String,
    upload_prefix: String,
    reclaimer: Option<reclaim::Reclaimer>,
}

impl Streamlit {
    /// `base_path` is `""` or `"/prefix"`. `reclaimer` is `None` only in tests that do not
    /// need memory reclaim.
    pub fn new(base_path: &str, reclaimer: Option<reclaim::Reclaimer>) -> Self {
        Self {
            base_path: base_path.to_owned(),
            stream_path: format!("{base_path}/_stcore/stream"),
            upload_prefix: format!("{base_path}/_stcore/upload_file/"),
            reclaimer,
        }
    }

    /// The app session an upload request (`PUT`/`DELETE` of an uploaded file) is for.
    fn upload_session(&self, method: &Method, path: &str) -> Option<String> {
        if method != Method::PUT && method != Method::DELETE {
            return None;
        }
        let rest = path.strip_prefix(&self.upload_prefix)?;
        let session = rest.split('/').next()?;
        (!session.is_empty()).then(|| session.to_owned())
    }
}

impl App for Streamlit {
    fn is_session_socket(&self, path: &str) -> bool {
        path == self.stream_path
    }

    fn session_socket_path(&self) -> &str {
        &self.stream_path
    }

    fn resume_id(&self, headers: &HeaderMap) -> Option<String> {
        resume_id(headers)
    }

    fn decoders(&self) -> (Box<dyn MessageDecoder>, Box<dyn MessageDecoder>) {
        (
            Box::new(BrowserDecoder {
                scanner: BackMsgScanner::new(),
                opened: Instant::now(),
                reran: false,
            }),
            Box::new(AppDecoder {
                scanner: ForwardMsgScanner::new(),
            }),
        )
    }

    fn upload_event(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<UploadEvent> {
        let app_session = self.upload_session(method, path)?;
        if method == Method::DELETE {
            return Some(UploadEvent::Removed {
                app_session,
                path: path.to_owned(),
            });
        }
        Some(UploadEvent::Stored {
            app_session,
            release: Release {
                method: Method::DELETE,
                path: path.to_owned(),
                headers: xsrf_headers(headers),
            },
        })
    }

    fn redirect_message(&self, url: &str) -> Option<Vec<u8>> {
        Some(message::encode_auth_redirect(url))
    }

    fn health_path(&self) -> String {
        format!("{}/_stcore/health", self.base_path)
    }

    fn is_health_poll(&self, path: &str) -> bool {
        path.ends_with("/_stcore/health") || path.ends_with("/_stcore/host-config")
    }

    fn session_closed(&self) {
        if let Some(reclaimer) = &self.reclaimer {
            reclaimer.session_closed();
        }
    }
}

/// Name of Streamlit's XSRF cookie, which its upload routes compare with `X-Xsrftoken`.
const XSRF_COOKIE: &str = "_streamlit_xsrf";

/// The page's XSRF token and cookie, which an upload's `DELETE` needs too. Only these: no
/// other cookie of the person is kept.
fn xsrf_headers(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    if let Some(token) = headers.get("x-xsrftoken") {
        kept.insert("x-xsrftoken", token.clone());
    }
    let cookie = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .find(|c| {
            c.strip_prefix(XSRF_COOKIE)
                .is_some_and(|rest| rest.starts_with('='))
        });
    if let Some(value) = cookie.and_then(|c| http::HeaderValue::from_str(c).ok()) {
        kept.insert(http::header::COOKIE, value);
    }
    kept
}

/// Third entry of `Sec-WebSocket-Protocol`: the session the page wants to resume.
fn resume_id(headers: &HeaderMap) -> Option<String> {
    let mut entries = headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    let id = entries.nth(2)?;
    let plausible = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    plausible.then(|| id.to_owned())
}

fn decode_error(e: impl std::fmt::Display) -> DecodeError {
    DecodeError(e.to_string())
}

/// Browser→app: `BackMsg`.
struct BrowserDecoder {
    scanner: BackMsgScanner,
    opened: Instant,
    reran: bool,
}

impl MessageDecoder for BrowserDecoder {
    fn begin(&mut self) {
        self.scanner.reset();
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        self.scanner.feed(bytes).map_err(decode_error)
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Signal)) -> Result<(), DecodeError> {
        let kind = self.scanner.finish().map_err(decode_error)?;
        match kind {
            BackMsgKind::RerunScript {
                is_auto_rerun: true,
            } => emit(Signal::RunRequested(RunCause::Timer)),
            BackMsgKind::RerunScript {
                is_auto_rerun: false,
            } => {
                let first = !std::mem::replace(&mut self.reran, true);
                let cause = if first && self.opened.elapsed() < CONNECT_RERUN_WINDOW {
                    RunCause::Reconnect
                } else {
                    RunCause::Person
                };
                emit(Signal::RunRequested(cause));
            }
            BackMsgKind::StopScript
            | BackMsgKind::ClearCache
            | BackMsgKind::SetRunOnSave
            | BackMsgKind::LoadGitInfo
            | BackMsgKind::FileUrlsRequest
            | BackMsgKind::BackendOperationRequest => emit(Signal::Activity),
            BackMsgKind::AppHeartbeat
            | BackMsgKind::DebugDisconnectWebsocket
            | BackMsgKind::DebugShutdownRuntime
            | BackMsgKind::Unknown(_)
            | BackMsgKind::Empty => {}
        }
        Ok(())
    }
}

/// App→browser: `ForwardMsg`.
struct AppDecoder {
    scanner: ForwardMsgScanner,
}

impl MessageDecoder for AppDecoder {
    fn begin(&mut self) {
        self.scanner.reset();
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        self.scanner.feed(bytes).map_err(decode_error)
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Signal)) -> Result<(), DecodeError> {
        let summary = self.scanner.finish().map_err(decode_error)?;
        if let Some(id) = summary.session_id {
            emit(Signal::SessionId(id));
        }
        if summary.kind == Some(FORWARD_SESSION_STATUS_CHANGED) {
            if let Some(running) = summary.script_is_running {
                emit(Signal::Running(running));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
