//! [`App`]: one framework's protocol as idlegate needs it, for both shapes of tab session
//! found in the field ([`SessionShape`]):
//!
//! - **one WebSocket per tab** (Streamlit, Bokeh/Panel, Shiny, Voilà): the socket's path
//!   and resume id, [`MessageDecoder`]s for each direction (binary or text messages), and
//!   the messages that tell the page its tab ended ([`Farewell`]);
//! - **several requests per tab** (Gradio, Dash: HTTP requests and event streams tied by an
//!   id in the query or the body): which requests belong to a session and where its id is
//!   ([`App::session_request`]), what each request means ([`App::classify_request`]), and
//!   the answer a request of an ended session gets ([`App::ended_answer`]).
//!
//! Either way the kind also owns what frees the app's memory, its sign-in cookies, its
//! sign-out and health paths; how it is launched is its [`Kind`](super::Kind)'s.

use std::borrow::Cow;

use futures_util::future::BoxFuture;
use http::{HeaderMap, Method, StatusCode};

use crate::lifecycle::{Release, Signal};

/// How a framework's tab session reaches the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionShape {
    /// One WebSocket per tab; the socket's life is the session's.
    Socket,
    /// Several HTTP requests and event streams per tab, tied by a session id the kind finds
    /// in each request.
    Requests,
}

/// One message on a session socket, as sent to the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Binary(Vec<u8>),
    Text(String),
}

/// Whether a message on a session socket is text or binary (RFC 6455 §5.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Binary,
    Text,
}

/// What a page is told when its tab ends, in the app's own messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Farewell {
    /// Messages to send, in order.
    pub messages: Vec<Message>,
    /// Keep the socket open afterwards for a while (a page that cannot navigate away would
    /// otherwise reconnect forever), sending `again` whenever the page sends a message.
    pub hold: bool,
    pub again: Vec<Message>,
}

/// Where a page being told that its tab ended sits, as far as idlegate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The page is the browser tab itself: it can be sent to the "session ended" page.
    TopLevel,
    /// The page is in another page (an iframe) or did not leave when sent away: it is told
    /// in place.
    Embedded,
    /// Nobody knows (a page from before a restart, which this process never saw): told in
    /// place and sent away, so that whichever it is, it stops.
    Unknown,
}

/// An answer idlegate gives in the app's own format (to a request of an ended session of
/// the request shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// The words of an end notice drawn in the page itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndText<'a> {
    /// The browser tab's title and the notice's heading.
    pub title: &'a str,
    /// Why the session ended, and what that means for the person's work.
    pub message: &'a str,
    pub note: &'a str,
    /// The link that starts a new session, and where it goes.
    pub start_label: &'a str,
    pub start_href: &'a str,
}

/// What the page script needs to know about the app's pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageHints {
    /// The path of the session socket (the script tags the socket whose path ends so).
    pub socket_path: String,
    /// The paths (their ends) of the requests that carry a request-shaped tab session: the
    /// script names its tab token on them, and counts those it sends right after a
    /// person's input as the person's. Empty for the socket shape.
    pub session_requests: Vec<String>,
    /// A CSS selector of the element whose colours and font are the app's theme (the
    /// warning dialog follows them); the page's body when `None`.
    pub theme_root: Option<String>,
}

/// The request target (path and query) an app that serves at the root gets for `target`
/// under `base_path` (`""` or `"/prefix"`): the target without the base path; `None` outside
/// it.
pub fn served_at_root<'a>(base_path: &str, target: &'a str) -> Option<Cow<'a, str>> {
    if base_path.is_empty() {
        return Some(Cow::Borrowed(target));
    }
    match target.strip_prefix(base_path) {
        Some(rest) if rest.starts_with('/') => Some(Cow::Borrowed(rest)),
        Some(rest) if rest.is_empty() || rest.starts_with('?') => {
            Some(Cow::Owned(format!("/{rest}")))
        }
        _ => None,
    }
}

/// What an HTTP request did to the files a tab uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadEvent {
    /// A file was stored for `app_session`; `release` frees it again.
    Stored {
        app_session: String,
        release: Release,
    },
    /// The page removed the file at `path` itself.
    Removed { app_session: String, path: String },
}

impl UploadEvent {
    /// The app session the upload belongs to.
    pub fn app_session(&self) -> &str {
        match self {
            Self::Stored { app_session, .. } | Self::Removed { app_session, .. } => app_session,
        }
    }
}

/// The person signed in, as an app kind passes them to the app.
#[derive(Debug, Clone, Copy)]
pub struct Person<'a> {
    /// The user's id (the login's subject or name).
    pub user: &'a str,
    pub groups: &'a [String],
}

/// A request as an app kind sees it (its path canonical, see [`crate::paths`]).
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

/// Where a request of a request-shaped session carries the session's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionKey {
    /// In the path, query or headers: this id.
    Known(String),
    /// In the body: read it whole (up to `limit` bytes) and ask [`App::session_in_body`].
    InBody { limit: usize },
}

/// What a request's body says of its session ([`App::session_in_body`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodySession {
    /// It names this session.
    Named(String),
    /// It names none (an API client's request, which is no tab's).
    Absent,
    /// It cannot be read the way the app reads it: refused, since the app might read a
    /// session in it that idlegate does not track.
    Unreadable,
}

/// A request that belongs to a tab session of the request shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    pub key: SessionKey,
    /// Whether the response is the tab's long-lived event stream, whose end makes the app
    /// free the session (Gradio's heartbeat): cutting it is how the tab's memory is freed.
    pub holds_session: bool,
}

/// A malformed app message, and why.
#[derive(Debug, thiserror::Error)]
#[error("malformed app message")]
pub struct DecodeError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl DecodeError {
    /// A decode error caused by `cause` (an error, or a message).
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(cause.into())
    }
}

/// Reads one direction of an app's session socket (or a request-shaped session's event
/// stream), one message at a time, and says what each message means for idleness. Fed the
/// payload of data messages only (already unmasked), in pieces of any size.
pub trait MessageDecoder: Send {
    /// Whether messages of this kind say anything; others are relayed unread. Default:
    /// binary messages only.
    fn reads(&self, kind: MessageKind) -> bool {
        kind == MessageKind::Binary
    }
    /// A new message of `kind` starts (only kinds it [`reads`](Self::reads)).
    fn begin(&mut self, kind: MessageKind);
    /// The next piece of the current message.
    fn feed(&mut self, bytes: &[u8]) -> Result<(), DecodeError>;
    /// The message is complete: report what it means.
    fn finish(&mut self, emit: &mut dyn FnMut(Signal)) -> Result<(), DecodeError>;
}

/// One app framework's protocol. Methods with a default are the ones a kind may not need.
pub trait App: Send + Sync + 'static {
    /// How its tab sessions reach the app.
    fn shape(&self) -> SessionShape {
        SessionShape::Socket
    }

    // ---- socket shape

    /// Whether a WebSocket upgrade to `path` (canonical) opens a tab session. Upgrades
    /// anywhere else are refused.
    fn is_session_socket(&self, path: &str) -> bool;
    /// The base path a page that asks for a session socket at `path` believes the app has,
    /// when `path` is the session socket under another base path than idlegate's (the app
    /// and `app.base_path` disagree).
    fn other_base_path(&self, _path: &str) -> Option<String> {
        None
    }
    /// The app session a connecting page asks to resume, if any.
    fn resume_id(&self, _headers: &HeaderMap) -> Option<String> {
        None
    }
    /// Whether idlegate refuses session sockets that another site's page opens (their
    /// `Origin` is not the address the browser reached idlegate at), because the app was
    /// told to accept any `Origin` and relies on idlegate for it.
    fn checks_socket_origin(&self) -> bool {
        false
    }
    /// Whether every connection names its app session, the first one too (Bokeh's token):
    /// an id idlegate never saw is then a new page's session, not one from before a restart
    /// to resume.
    fn names_session_on_open(&self) -> bool {
        false
    }
    /// Takes the app session to resume out of a connecting page's handshake, so the app
    /// starts a new session instead (the id belongs to another login's tab). Returns whether
    /// it could: `false` when the app cannot be kept from the named session (Bokeh's token
    /// is what opens it), and the connection is then refused.
    fn forget_resume(&self, _headers: &mut HeaderMap) -> bool {
        true
    }
    /// Whether an upgrade to a session socket that names no session idlegate can read is
    /// refused: where every connection names its session ([`App::names_session_on_open`]),
    /// one idlegate cannot read could still reach a session the app reads it as.
    fn needs_readable_session(&self) -> bool {
        self.names_session_on_open()
    }
    /// Decoders for a new session socket: browser→app, then app→browser.
    fn decoders(&self) -> (Box<dyn MessageDecoder>, Box<dyn MessageDecoder>);
    /// The message that makes the page navigate to `url`, if the app has one.
    fn redirect_message(&self, _url: &str) -> Option<Message> {
        None
    }
    /// What a page whose tab ended is told: sent to `url` (the "session ended" page), or,
    /// when it is [`Placement::Embedded`] in another page and cannot navigate, shown `text`
    /// in place; both when its placement is unknown.
    fn farewell(&self, url: &str, place: Placement, text: &EndText<'_>) -> Farewell;
    /// Whether the app gave a page that reconnected asking for session `id` that session
    /// back (`Some(true)`), or silently a new one (`Some(false)`, after the app restarted
    /// or dropped it); `None` when it cannot tell.
    fn resumed(&self, _id: &str) -> BoxFuture<'static, Option<bool>> {
        Box::pin(async { None })
    }

    // ---- request shape

    /// Whether this request belongs to a tab session, and where its id is.
    fn session_request(&self, _head: &RequestHead<'_>) -> Option<SessionRequest> {
        None
    }
    /// A request-shaped tab session opened: learn what classifying its requests needs
    /// (Gradio: the app's event listeners), if it is not known yet or may have changed.
    /// Awaited before the session's first request goes on; never fails (what it could not
    /// learn is unclear, see [`App::classify_request`]).
    fn learn(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
    /// The session a request's body names ([`SessionKey::InBody`]).
    fn session_in_body(&self, _head: &RequestHead<'_>, _body: &[u8]) -> BodySession {
        BodySession::Absent
    }
    /// What a session request means (a person's action, the page's own timer, a run that
    /// starts or ends), told as signals, like a socket message.
    fn classify_request(
        &self,
        _head: &RequestHead<'_>,
        _body: &[u8],
        _emit: &mut dyn FnMut(Signal),
    ) {
    }
    /// The answer a request of a session that ended gets, in the app's own format, so its
    /// page leaves for `url` (the "session ended" page) or reloads onto it.
    fn ended_answer(&self, _head: &RequestHead<'_>, _url: &str) -> Option<Answer> {
        None
    }

    // ---- either shape

    /// What the page script needs to know about the app's pages.
    fn page_hints(&self) -> PageHints;
    /// What the request does to a tab's uploaded files, if anything. For `Stored`, the
    /// caller records the release only once the app accepted the upload.
    fn upload_event(
        &self,
        _method: &Method,
        _path: &str,
        _headers: &HeaderMap,
    ) -> Option<UploadEvent> {
        None
    }
    /// Path of the app's own sign-out route, where its pages send people to sign out (it
    /// signs them out of idlegate too).
    fn sign_out_path(&self) -> Option<String> {
        None
    }
    /// The names of the app's own sign-in cookies, among `present` (the names of a
    /// request's cookies) and the ones it always uses: deleted when a person signs out, so
    /// the app does not sign them in again by itself.
    fn sign_in_cookies(&self, _present: &[String]) -> Vec<String> {
        Vec::new()
    }
    /// The request target (path and query) to send the app for `target`, as the browser
    /// sent it: the same, unless the app serves at the root behind `app.base_path`; `None`
    /// for a target the app does not serve (outside the base path it is served under).
    fn app_target<'a>(&self, target: &'a str) -> Option<Cow<'a, str>> {
        Some(Cow::Borrowed(target))
    }
    /// Sets the headers the app reads a signed-in person from, beyond the configured
    /// identity headers (`login.headers`), for `person` (`None`: nobody is signed in), after
    /// removing any a browser sent.
    fn identity_headers(&self, _headers: &mut HeaderMap, _person: Option<&Person<'_>>) {}
    /// Path of the app's health check, as the app itself serves it.
    fn health_path(&self) -> String;
    /// Whether a request to this (canonical) path is the page's own health poll (answered in
    /// a form the page can show when the app is down).
    fn is_health_poll(&self, _path: &str) -> bool {
        false
    }
    /// A session socket (or a session's event stream) to the app has closed: make the app
    /// release what it holds for it.
    fn session_closed(&self) {}
    /// The app accepted a page's session that named this `Host` (a host the app allows;
    /// idlegate's own connections to the app name it too).
    fn accepted_host(&self, _host: &str) {}
    /// The tab session of app session `id` ended: make the app end it for good, where it
    /// can (the app's runtime is reachable in launcher mode).
    fn session_ended(&self, _id: &str) {}
}
