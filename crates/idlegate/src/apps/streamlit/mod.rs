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

mod decode;
mod kind;
pub mod launch;
pub mod message;
pub mod options;
pub mod probe;
pub mod protowire;
pub mod reclaim;

pub use kind::{StreamlitKind, KIND};

use std::sync::Arc;

use futures_util::future::BoxFuture;

use http::{HeaderMap, Method};

use super::kind::Runtime;
use super::{App, EndText, Farewell, Message, MessageDecoder, PageHints, Placement, UploadEvent};
use crate::config::Upstream;
use crate::lifecycle::Release;
use decode::{AppDecoder, BrowserDecoder};

/// The app's Streamlit version, once learned. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(super) struct Version(Arc<std::sync::Mutex<Option<String>>>);

impl Version {
    fn learn(&self, version: String) {
        let mut known = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if known.as_deref() != Some(version.as_str()) {
            *known = Some(version);
        }
    }

    fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Streamlit behind idlegate.
pub struct Streamlit {
    /// The app's Streamlit version, as its `new_session` messages say: a page drawn in place
    /// on a new connection must name it, or the page reloads (`App.tsx`,
    /// `hasStreamlitVersionChanged`).
    version: Version,
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
            version: Version::default(),
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
            session_requests: Vec::new(),
            theme_root: Some(".stApp".to_owned()),
        }
    }

    fn resume_id(&self, headers: &HeaderMap) -> Option<String> {
        resume_id(headers)
    }

    fn forget_resume(&self, headers: &mut HeaderMap) -> bool {
        forget_resume(headers);
        true
    }

    fn decoders(&self) -> (Box<dyn MessageDecoder>, Box<dyn MessageDecoder>) {
        (
            Box::<BrowserDecoder>::default(),
            Box::new(AppDecoder::learning(self.version.clone())),
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

    fn farewell(&self, url: &str, place: Placement, text: &EndText<'_>) -> Farewell {
        let redirect = Message::Binary(message::encode_auth_redirect(url));
        if place == Placement::TopLevel {
            return Farewell {
                messages: vec![redirect],
                ..Farewell::default()
            };
        }
        // In an iframe (`window.parent !== window`) Streamlit's frontend posts the redirect to
        // the parent page as `REDIRECT_TO_URL` instead of navigating, so the notice replaces the page,
        // and the socket stays open so it does not reconnect. A page whose placement is
        // unknown gets the redirect after the notice: a top-level page leaves, a framed one
        // stays on the notice.
        let markdown = format!(
            "### {}\n\n{}\n\n{}\n\n[{}]({})",
            escape_markdown(text.title),
            escape_markdown(text.message),
            escape_markdown(text.note),
            escape_markdown(text.start_label),
            text.start_href.replace(['(', ')', ' '], "")
        );
        let version = self.version.get().or_else(|| {
            let learned = self.runtime.as_ref()?.version()?;
            self.version.learn(learned.clone());
            Some(learned)
        });
        if version.is_none() && place == Placement::Unknown {
            // A page on a new connection cannot be drawn without the app's version (it
            // would show an error over its old screen): sent away, and held so that a
            // framed page, which stays, does not reconnect in a loop.
            return Farewell {
                messages: vec![redirect],
                hold: true,
                again: Vec::new(),
            };
        }
        let mut again = vec![message::encode_running()];
        again.extend(message::encode_page_replacement(
            "idlegate-ended-again",
            text.title,
            &markdown,
            version.as_deref(),
        ));
        let binary = |messages: Vec<Vec<u8>>| messages.into_iter().map(Message::Binary).collect();
        let mut messages: Vec<Message> = binary(message::encode_page_replacement(
            "idlegate-ended",
            text.title,
            &markdown,
            version.as_deref(),
        ));
        if place == Placement::Unknown {
            messages.push(redirect);
        }
        Farewell {
            messages,
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

#[cfg(test)]
mod tests;
