//! App kinds: everything idlegate knows about one framework's protocol, behind [`App`].
//!
//! The proxy and the tracker never look at an app's paths or messages themselves; they ask
//! the [`App`]. Adding Gradio, Panel/Bokeh or Shiny means adding a module here, not touching
//! the tracker or the relay.

pub mod streamlit;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use http::{HeaderMap, Method};
use tokio::sync::mpsc;

use crate::lifecycle::{Event, Release, Signal, Subscriber};

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

/// What a page is told when its tab ends, in the app's own messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Farewell {
    /// Binary messages to send, in order.
    pub messages: Vec<Vec<u8>>,
    /// Keep the socket open afterwards for a while (a page that cannot navigate away would
    /// otherwise reconnect forever), sending `again` whenever the page sends a message.
    pub hold: bool,
    pub again: Vec<Vec<u8>>,
}

/// The words of an end notice drawn in the page itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndText<'a> {
    /// The browser tab's title and the notice's heading.
    pub title: &'a str,
    /// Why the session ended.
    pub message: &'a str,
    /// The link that starts a new session, and where it goes.
    pub start_label: &'a str,
    pub start_href: &'a str,
}

/// A malformed app message.
#[derive(Debug, thiserror::Error)]
#[error("malformed app message: {0}")]
pub struct DecodeError(pub String);

/// Reads one direction of an app's session socket, one message at a time, and says what each
/// message means for idleness. Fed the payload of data messages only (already unmasked),
/// in pieces of any size.
pub trait MessageDecoder: Send {
    /// A new message starts.
    fn begin(&mut self);
    /// The next piece of the current message.
    fn feed(&mut self, bytes: &[u8]) -> Result<(), DecodeError>;
    /// The message is complete: report what it means.
    fn finish(&mut self, emit: &mut dyn FnMut(Signal)) -> Result<(), DecodeError>;
}

/// One app framework.
pub trait App: Send + Sync + 'static {
    /// Whether a WebSocket upgrade to `path` (canonical, see [`crate::paths`]) opens a tab
    /// session. Upgrades anywhere else are refused.
    fn is_session_socket(&self, path: &str) -> bool;
    /// The base path a page that asks for a session socket at `path` believes the app has,
    /// when `path` is the session socket under another base path than idlegate's (the app
    /// and `app.base_path` disagree).
    fn other_base_path(&self, path: &str) -> Option<String>;
    /// The path of the session socket (for the page script, which tags it).
    fn session_socket_path(&self) -> &str;
    /// The app session a connecting page asks to resume, if any.
    fn resume_id(&self, headers: &HeaderMap) -> Option<String>;
    /// Takes the app session to resume out of a connecting page's handshake, so the app
    /// starts a new session instead (the id belongs to another login's tab).
    fn forget_resume(&self, headers: &mut HeaderMap);
    /// Decoders for a new session socket: browser→app, then app→browser.
    fn decoders(&self) -> (Box<dyn MessageDecoder>, Box<dyn MessageDecoder>);
    /// What the request (its path canonical) does to a tab's uploaded files, if anything.
    /// For `Stored`, the caller records the release only once the app accepted the upload.
    fn upload_event(&self, method: &Method, path: &str, headers: &HeaderMap)
        -> Option<UploadEvent>;
    /// The app message that makes the page navigate to `url`, if the app has one.
    fn redirect_message(&self, url: &str) -> Option<Vec<u8>>;
    /// What a page whose tab ended is told: sent to `url` (the "session ended" page), or,
    /// when it is `embedded` in another page and cannot navigate, shown `text` in place.
    fn farewell(&self, url: &str, embedded: bool, text: &EndText<'_>) -> Farewell;
    /// Path of the app's own sign-out route, where its pages send people to sign out (it
    /// signs them out of idlegate too).
    fn sign_out_path(&self) -> Option<String>;
    /// The names of the app's own sign-in cookies, among `present` (the names of a
    /// request's cookies) and the ones it always uses: deleted when a person signs out, so
    /// the app does not sign them in again by itself.
    fn sign_in_cookies(&self, present: &[String]) -> Vec<String>;
    /// Path of the app's health check.
    fn health_path(&self) -> String;
    /// Whether a request to this (canonical) path is the page's own health poll (answered in
    /// a form the page can show when the app is down).
    fn is_health_poll(&self, path: &str) -> bool;
    /// A session socket to the app has closed: make the app release what it holds for it.
    fn session_closed(&self);
    /// The app accepted a page's session socket that named this `Host` (a host the app
    /// allows; idlegate's own connections to the app name it too).
    fn accepted_host(&self, host: &str);
    /// The tab session of app session `id` ended: make the app end it for good, where it
    /// can (the app's runtime is reachable in launcher mode).
    fn session_ended(&self, id: &str);
    /// Whether the app gave a page that reconnected asking for session `id` that session
    /// back (`Some(true)`), or silently a new one (`Some(false)`, after the app restarted
    /// or dropped it); `None` when it cannot tell.
    fn resumed(&self, id: &str) -> BoxFuture<'static, Option<bool>>;
}

/// Tells the app each ended tab's session id ([`App::session_ended`]), on a task of its own:
/// ending a session for good may write files and signal the app's process.
pub struct SessionEnds(mpsc::UnboundedSender<String>);

impl SessionEnds {
    /// A subscriber that tells `app`.
    pub fn start(app: Arc<dyn App>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(id) = rx.recv().await {
                app.session_ended(&id);
            }
        });
        Self(tx)
    }
}

impl Subscriber for SessionEnds {
    fn on_event(&self, event: &Event) {
        if let Event::TabEnded(end) = event {
            if let Some(id) = &end.app_session {
                // The task stops only with the runtime; nothing is left to end then.
                let _ = self.0.send(id.clone());
            }
        }
    }
}
