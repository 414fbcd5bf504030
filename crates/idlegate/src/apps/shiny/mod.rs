//! Shiny for Python: the one place that knows its paths and its WebSocket protocol.
//!
//! - Session socket: `<page path>/websocket/`, which the page derives from its own location
//!   (`shinyapp.ts`, `createSocket`). A page that reconnects starts a new app session (py-shiny
//!   has no resume), so idlegate's tab token alone ties a reconnect to its tab.
//! - Messages are JSON text ([`decode`]).
//! - Ending: closing the socket ends the app session at once
//!   (`session/_session.py`, `_run_session_ended_tasks`: `on_ended` callbacks, the reactive
//!   graph destroyed, uploads removed). Before it closes, `{"javascript": …}` sends the page
//!   to the "session ended" page without any client script (`shiny.js`, the `javascript`
//!   message handler), and `{"modal": …}` shows the notice in a page framed in another.
//! - Identity: the app reads `session.user` and `session.groups` from the socket's
//!   `shiny-server-credentials` header, JSON `{"user":…,"groups":[…]}` (`_session.py`),
//!   falling back to `rstudio-connect-credentials`; idlegate removes both from what browsers
//!   send and sets the first for a signed-in person.
//! - Memory: an ended session's objects are in reference cycles (the server function's
//!   closures and the session), which only Python's cycle collector frees. In launcher mode
//!   idlegate asks the app's process for a full collection ([`crate::apps::collect`]) a
//!   moment after session sockets close.
//! - Base path: `shiny run` serves at the root and its pages use relative URLs, so idlegate
//!   takes `app.base_path` off each request before passing it on.

pub mod decode;
mod kind;
pub mod page;

pub use kind::{ShinyKind, KIND};

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use serde_json::{json, Value};

use super::kind::Runtime;
use super::later::CollectLater;
use super::{
    served_at_root, App, EndText, Farewell, Message, MessageDecoder, PageHints, Person, Placement,
};

/// The header py-shiny reads a person's identity from (`session/_session.py`).
pub const CREDENTIALS: HeaderName = HeaderName::from_static("shiny-server-credentials");
/// Its fallback, also read by py-shiny: removed from browsers' requests too.
pub const CONNECT_CREDENTIALS: HeaderName = HeaderName::from_static("rstudio-connect-credentials");

/// How long after a session socket closed the app's process is asked to collect garbage:
/// Shiny ends the session on its event loop first (`_run_session_ended_tasks`). Sockets that
/// close meanwhile share the one collection.
const COLLECT_AFTER: Duration = Duration::from_secs(1);

/// Shiny behind idlegate.
pub struct Shiny {
    base_path: String,
    socket_path: String,
    collect: Option<CollectLater>,
}

impl Shiny {
    /// `base_path` is `""` or `"/prefix"`.
    pub fn new(base_path: &str) -> Self {
        Self {
            base_path: base_path.to_owned(),
            socket_path: format!("{base_path}/websocket/"),
            collect: None,
        }
    }

    /// Collects garbage in the app's process after sessions end, when idlegate launched it.
    pub fn with_runtime(mut self, runtime: Option<Arc<dyn Runtime>>) -> Self {
        self.collect = runtime.map(CollectLater::new);
        self
    }

    /// The notice drawn in the page: a Bootstrap modal, as `ui.modal()` renders one, that
    /// cannot be dismissed.
    fn notice(text: &EndText<'_>) -> Message {
        let escape = crate::pages::escape;
        let html = format!(
            "<div id=\"shiny-modal\" class=\"modal fade\" tabindex=\"-1\" \
             data-backdrop=\"static\" data-bs-backdrop=\"static\" data-keyboard=\"false\" \
             data-bs-keyboard=\"false\"><div class=\"modal-dialog\"><div \
             class=\"modal-content\"><div class=\"modal-header\"><h4 class=\"modal-title\">{}\
             </h4></div><div class=\"modal-body\"><p>{}</p><p>{}</p><p><a href=\"{}\" \
             target=\"_top\">{}</a></p></div></div></div><script>if (window.bootstrap && \
             !window.bootstrap.Modal.VERSION.match(/^4\\. /)) {{ new \
             bootstrap.Modal(document.getElementById('shiny-modal')).show() }} else {{ \
             $('#shiny-modal').modal().focus() }}</script></div>",
            escape(text.title),
            escape(text.message),
            escape(text.note),
            escape(text.start_href),
            escape(text.start_label),
        );
        Message::Text(
            json!({"modal": {"type": "show", "message": {"html": html, "deps": []}}}).to_string(),
        )
    }
}

impl App for Shiny {
    fn is_session_socket(&self, path: &str) -> bool {
        path == self.socket_path
    }

    fn decoders(&self) -> (Box<dyn MessageDecoder>, Box<dyn MessageDecoder>) {
        let page = decode::Shared::default();
        (
            Box::new(decode::Inputs::new(page.clone())),
            Box::new(decode::Outputs::new(page)),
        )
    }

    fn redirect_message(&self, url: &str) -> Option<Message> {
        // Evaluated by the page (`shiny.js`: `addMessageHandler("javascript", indirectEval)`).
        let script = format!("window.location.replace({})", Value::from(url));
        Some(Message::Text(json!({ "javascript": script }).to_string()))
    }

    fn farewell(&self, url: &str, place: Placement, text: &EndText<'_>) -> Farewell {
        let redirect = self.redirect_message(url).into_iter();
        match place {
            Placement::TopLevel => Farewell {
                messages: redirect.collect(),
                ..Farewell::default()
            },
            // The socket stays open: a closed one greys the page over the notice.
            Placement::Embedded => Farewell {
                messages: vec![Self::notice(text)],
                hold: true,
                again: Vec::new(),
            },
            Placement::Unknown => Farewell {
                messages: std::iter::once(Self::notice(text))
                    .chain(redirect)
                    .collect(),
                hold: true,
                again: Vec::new(),
            },
        }
    }

    fn app_target<'a>(&self, target: &'a str) -> Option<Cow<'a, str>> {
        served_at_root(&self.base_path, target)
    }

    fn checks_socket_origin(&self) -> bool {
        // Shiny accepts a socket from any page (py-shiny checks no `Origin`).
        true
    }

    fn identity_headers(&self, headers: &mut HeaderMap, person: Option<&Person<'_>>) {
        headers.remove(CREDENTIALS);
        headers.remove(CONNECT_CREDENTIALS);
        let Some(person) = person else {
            return;
        };
        // ASCII only: Starlette reads header values as Latin-1, and a header cannot carry
        // control characters; JSON's `\uXXXX` escapes carry the rest.
        let credentials = ascii_json(&json!({ "user": person.user, "groups": person.groups }));
        if let Ok(value) = HeaderValue::from_str(&credentials) {
            headers.insert(CREDENTIALS, value);
        }
    }

    fn session_closed(&self) {
        if let Some(collect) = &self.collect {
            collect.request(COLLECT_AFTER);
        }
    }

    fn page_hints(&self) -> PageHints {
        PageHints {
            socket_path: self.socket_path.clone(),
            // Bootstrap's body carries the theme's colours and font.
            session_requests: Vec::new(),
            theme_root: None,
        }
    }

    fn health_path(&self) -> String {
        // Asked of the app itself, which serves at the root.
        "/".to_owned()
    }
}

/// `value` as JSON text in printable ASCII: every other character as `\uXXXX` (UTF-16,
/// RFC 8259 §7).
pub fn ascii_json(value: &Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if (' '..='~').contains(&c) {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
