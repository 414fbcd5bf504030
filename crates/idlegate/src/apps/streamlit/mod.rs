//! Streamlit: the one place that knows its paths and its WebSocket protocol.
//!
//! - Session socket: `<base>/_stcore/stream`. The page names the session it wants to resume
//!   in the third entry of `Sec-WebSocket-Protocol` (`streamlit, <xsrf>, <session id>`).
//! - Browser→app messages are `BackMsg` protobufs: `rerun_script` is a run request,
//!   automatic when `is_auto_rerun` is set (a fragment timer); whether the others are a
//!   person is the tracker's call. Stop and clear-cache are a person's; heartbeats, git info,
//!   upload URLs and lazy-table rows are not (the page sends them by itself).
//! - App→browser messages are `ForwardMsg`s: `new_session` carries the session id and
//!   `session_status_changed` says whether the script runs.
//! - Ending: `ForwardMsg{auth_redirect{url}}` navigates the page away without any client
//!   script. Streamlit keeps a closed session for `server.disconnectedSessionTTL` and only
//!   drops expired ones when some later connection closes, so [`reclaim`] opens and closes
//!   one connection after that time.

pub mod collect;
mod kind;
pub mod launch;
pub mod message;
pub mod options;
pub mod probe;
pub mod protowire;
pub mod reclaim;

pub use kind::{StreamlitKind, KIND};

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use http::{HeaderMap, Method};

use super::kind::Runtime;
use super::{
    App, DecodeError, EndText, Farewell, Message, MessageDecoder, MessageKind, PageHints,
    UploadEvent,
};
use crate::config::Upstream;
use crate::lifecycle::{Release, Signal};
use message::{BackMsgKind, BackMsgScanner, ForwardMsgScanner};

/// `ForwardMsg.session_status_changed`.
const FORWARD_SESSION_STATUS_CHANGED: u32 = 9;
/// `ForwardMsg.auto_rerun`: the page is to ask for a fragment run on a timer.
const FORWARD_AUTO_RERUN: u32 = 21;

/// Streamlit behind idlegate.
pub struct Streamlit {
    base_path: String,
    stream_path: String,
    upload_prefix: String,
    reclaimer: Option<reclaim::Reclaimer>,
    probe: Option<Arc<probe::ResumeProbe>>,
    runtime: Option<Arc<dyn Runtime>>,
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
            probe: None,
            runtime: None,
        }
    }

    /// Ends sessions for good in the app's runtime, when idlegate launched it.
    pub fn with_runtime(mut self, runtime: Option<Arc<dyn Runtime>>) -> Self {
        self.runtime = runtime;
        self
    }

    /// Checks reconnects against the app at `upstream` (see [`probe`]).
    pub fn with_resume_probe(mut self, upstream: Upstream) -> Self {
        self.probe = Some(Arc::new(probe::ResumeProbe::new(upstream, &self.base_path)));
        self
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

    fn other_base_path(&self, path: &str) -> Option<String> {
        let base = path.strip_suffix("/_stcore/stream")?;
        (base != self.base_path).then(|| base.to_owned())
    }

    fn page_hints(&self) -> PageHints {
        PageHints {
            socket_path: self.stream_path.clone(),
            // The app's root element carries the theme's colours and font (`frontend/app`).
            theme_root: Some(".stApp".to_owned()),
        }
    }

    fn resume_id(&self, headers: &HeaderMap) -> Option<String> {
        resume_id(headers)
    }

    fn forget_resume(&self, headers: &mut HeaderMap) {
        forget_resume(headers);
    }

    fn decoders(&self) -> (Box<dyn MessageDecoder>, Box<dyn MessageDecoder>) {
        (
            Box::new(BrowserDecoder {
                scanner: BackMsgScanner::new(),
                sorts: Sorts::default(),
                page: None,
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

    fn redirect_message(&self, url: &str) -> Option<Message> {
        Some(Message::Binary(message::encode_auth_redirect(url)))
    }

    fn farewell(&self, url: &str, embedded: bool, text: &EndText<'_>) -> Farewell {
        if !embedded {
            return Farewell {
                messages: vec![Message::Binary(message::encode_auth_redirect(url))],
                ..Farewell::default()
            };
        }
        // In an iframe Streamlit posts the redirect to the parent page instead of navigating,
        // so the notice replaces the page, and the socket stays open so it does not reconnect.
        let markdown = format!(
            "### {}\n\n{}\n\n[{}]({})",
            escape_markdown(text.title),
            escape_markdown(text.message),
            escape_markdown(text.start_label),
            text.start_href.replace(['(', ')', ' '], "")
        );
        let mut again = vec![message::encode_running()];
        again.extend(message::encode_page_replacement(
            "idlegate-ended-again",
            text.title,
            &markdown,
        ));
        let binary = |messages: Vec<Vec<u8>>| messages.into_iter().map(Message::Binary).collect();
        Farewell {
            messages: binary(message::encode_page_replacement(
                "idlegate-ended",
                text.title,
                &markdown,
            )),
            hold: true,
            again: binary(again),
        }
    }

    fn sign_out_path(&self) -> Option<String> {
        // `st.logout()` sends the page here (`auth_redirect`, `user_info.py`).
        Some(format!("{}/auth/logout", self.base_path))
    }

    fn sign_in_cookies(&self, present: &[String]) -> Vec<String> {
        // `st.login()` keeps the person in `_streamlit_user`, its tokens in
        // `_streamlit_user_tokens`, each split into numbered chunks when large
        // (`web/server/oidc_mixin.py`, `cookie_utils.py`).
        let mut names: Vec<String> =
            vec!["_streamlit_user".into(), "_streamlit_user_tokens".into()];
        for name in present {
            if name.starts_with("_streamlit_user") && !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    fn health_path(&self) -> String {
        format!("{}/_stcore/health", self.base_path)
    }

    fn is_health_poll(&self, path: &str) -> bool {
        path.ends_with("/_stcore/health") || path.ends_with("/_stcore/host-config")
    }

    fn resumed(&self, id: &str) -> BoxFuture<'static, Option<bool>> {
        let Some(probe) = self.probe.clone() else {
            return Box::pin(async { None });
        };
        let id = id.to_owned();
        Box::pin(async move {
            match probe.resumed(&id).await {
                Ok(resumed) => Some(resumed == probe::Resumed::Yes),
                Err(e) => {
                    tracing::debug!(error = %e, "could not tell whether a page got its session back");
                    None
                }
            }
        })
    }

    fn session_ended(&self, id: &str) {
        if let Some(runtime) = &self.runtime {
            if runtime.close_sessions(&[id]) {
                tracing::debug!(app_session = %crate::redact::short_hash(id), "asked the app to end the session for good");
                // Let go of the reference the app's message loop keeps to the last session
                // it served, once the session is gone.
                if let Some(reclaimer) = &self.reclaimer {
                    reclaimer.soon();
                }
            }
        }
    }

    fn accepted_host(&self, host: &str) {
        if let Some(reclaimer) = &self.reclaimer {
            reclaimer.accepted_host(host);
        }
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

/// Keeps the first two entries of `Sec-WebSocket-Protocol` (subprotocol and XSRF token) and
/// drops the session id after them.
fn forget_resume(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|entry| entry.trim().to_owned())
        .take(2)
        .collect();
    headers.remove(http::header::SEC_WEBSOCKET_PROTOCOL);
    if let Ok(value) = http::HeaderValue::from_str(&kept.join(", ")) {
        if !kept.is_empty() {
            headers.insert(http::header::SEC_WEBSOCKET_PROTOCOL, value);
        }
    }
}

/// The path and query a page is at: the path of its URL, and the query string the page
/// names apart (Streamlit keeps the query out of `context_info.url`).
fn page_path(page: &message::PageContext) -> Option<String> {
    let path = path_and_query(&page.url)?;
    if page.query.is_empty() {
        return Some(path);
    }
    let path = path.split('?').next().unwrap_or(&path);
    Some(format!("{path}?{}", page.query))
}

/// The path and query of a page URL as the browser shows it (`http://host/p?q#f` →
/// `/p?q`); `None` for anything that is not an absolute http(s) URL.
fn path_and_query(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let path = &rest[rest.find('/')?..];
    let path = path.split('#').next().unwrap_or(path);
    (!path.is_empty()).then(|| path.to_owned())
}

/// Text for Streamlit's markdown with every markdown and HTML sign escaped.
fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\`*_{}[]()#+-.!|<>~$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn decode_error(e: impl std::fmt::Display) -> DecodeError {
    DecodeError(e.to_string())
}

/// At most this many table sources and sort orders are remembered per connection.
const SORT_MEMORY: usize = 16;

/// Browser→app: `BackMsg`.
struct BrowserDecoder {
    scanner: BackMsgScanner,
    sorts: Sorts,
    /// The page last reported to the tracker.
    page: Option<message::PageContext>,
}

/// The sort orders a page's lazily loaded tables asked for. A page asks for rows by itself
/// (after a refresh its tables get new sources and fetch again, in the same order), and when
/// a person scrolls; only a person changes how a table is sorted. So a request for rows is a
/// person's when it sorts a known source differently from before, or sorts a new source in an
/// order none of the page's recent requests used.
#[derive(Default)]
struct Sorts {
    /// Recent sources and the sort each last asked for, oldest first.
    by_source: VecDeque<(u64, u64)>,
    /// Recent sort orders of any source, oldest first.
    orders: VecDeque<u64>,
}

impl Sorts {
    /// Records a request; returns whether it changed a sort (a person did).
    fn changed(&mut self, chunk: message::ChunkRequest) -> bool {
        let known = self
            .by_source
            .iter()
            .position(|(source, _)| *source == chunk.source);
        let changed = match known {
            Some(index) => self
                .by_source
                .remove(index)
                .is_some_and(|(_, sort)| sort != chunk.sort),
            // A new source: the page loading or refreshing a table, unless it asks for an
            // order the page has not used (a person sorted a table it just loaded).
            None => chunk.sort != 0 && !self.orders.contains(&chunk.sort),
        };
        remember(&mut self.by_source, (chunk.source, chunk.sort));
        if !self.orders.contains(&chunk.sort) {
            remember(&mut self.orders, chunk.sort);
        }
        changed
    }
}

fn remember<T>(queue: &mut VecDeque<T>, item: T) {
    if queue.len() == SORT_MEMORY {
        queue.pop_front();
    }
    queue.push_back(item);
}

impl MessageDecoder for BrowserDecoder {
    fn begin(&mut self, _kind: MessageKind) {
        self.scanner.reset();
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        self.scanner.feed(bytes).map_err(decode_error)
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Signal)) -> Result<(), DecodeError> {
        match self.scanner.finish().map_err(decode_error)? {
            BackMsgKind::RerunScript {
                is_auto_rerun,
                fragment,
            } => {
                // Where the page is, from the URL its rerun names (`context_info.url`).
                if self.scanner.page() != self.page.as_ref() {
                    self.page = self.scanner.page().cloned();
                    if let Some(page) = &self.page {
                        if let Some(path) = page_path(page) {
                            emit(Signal::Page {
                                path,
                                embedded: page.embedded,
                            });
                        }
                    }
                }
                emit(Signal::RunRequested {
                    automatic: is_auto_rerun,
                    fragment,
                });
            }
            // Only a person stops a run or clears the cache (the page's menu).
            BackMsgKind::StopScript | BackMsgKind::ClearCache => emit(Signal::PersonMessage),
            // Table rows: a person's only when they change a sort (see `Sorts`).
            BackMsgKind::BackendOperationRequest => {
                if let Some(chunk) = self.scanner.chunk() {
                    if self.sorts.changed(chunk) {
                        emit(Signal::PersonMessage);
                    }
                }
            }
            // The page sends these by itself too: a settings toggle the page restores, the
            // deploy button's git info, upload URLs before an upload (the upload counts),
            // heartbeats, debug messages.
            BackMsgKind::SetRunOnSave
            | BackMsgKind::LoadGitInfo
            | BackMsgKind::FileUrlsRequest
            | BackMsgKind::AppHeartbeat
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
    fn begin(&mut self, _kind: MessageKind) {
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
        if summary.kind == Some(FORWARD_AUTO_RERUN) {
            emit(Signal::TimerSet);
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
