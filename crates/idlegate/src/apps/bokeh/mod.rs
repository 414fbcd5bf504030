//! Bokeh server apps, and Panel apps (which Bokeh's server runs): the one place that knows
//! their paths and their WebSocket protocol.
//!
//! - Session socket: `<base><app path>/ws`. The page GET creates the app session (and runs
//!   the app's code for it); the page then opens the socket offering the subprotocols
//!   `bokeh, <token>`, where the token's payload (base64url JSON before the first `.`)
//!   names the session: `session_id` (`bokeh/server/views/ws.py`, `bokeh/util/token.py`).
//!   Every connection names its session, the first one too, and a page that reconnects
//!   (Bokeh 3.8+, or Panel with `reconnect`) names the same one.
//! - Messages: [`decode`].
//! - Ending: closing the socket leaves the session unused, and the server discards it (its
//!   `on_session_destroyed` callbacks run, Panel stops its periodic callbacks) once it was
//!   unused for `--unused-session-lifetime`, at its next check (`--check-unused-sessions`),
//!   unless the page reconnects first: idlegate refuses the reconnects of an ended tab's
//!   session, so it is discarded. Bokeh has no message that navigates the page: the end
//!   notice needs the page script.
//! - The server checks each socket's `Origin` against `--allow-websocket-origin`; the
//!   launcher allows any, and idlegate refuses session sockets opened by another site's
//!   page itself.

pub mod decode;
mod kind;

pub use kind::{BokehKind, BOKEH, PANEL};

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::header::SEC_WEBSOCKET_PROTOCOL;
use http::HeaderMap;

use super::kind::Runtime;
use super::later::CollectLater;
use super::{App, EndText, Farewell, MessageDecoder, PageHints, Placement};

/// Bokeh (or Panel) behind idlegate.
pub struct Bokeh {
    base_path: String,
    collect: Option<CollectLater>,
    /// How long after a tab ends the server has discarded its session: its unused-session
    /// lifetime and one check interval.
    discarded_after: Duration,
    /// The app accepts any `Origin` (launcher mode: `--allow-websocket-origin=*`).
    any_origin: bool,
    /// The secret the server signs tokens with (`BOKEH_SECRET_KEY`), when idlegate knows
    /// it: a token it does not sign is refused here.
    secret: Option<Vec<u8>>,
}

impl Bokeh {
    /// `base_path` is `""` or `"/prefix"`; `discarded_after` as for the field.
    pub fn new(base_path: &str, discarded_after: Duration) -> Self {
        Self {
            base_path: base_path.to_owned(),
            collect: None,
            discarded_after,
            any_origin: false,
            secret: None,
        }
    }

    /// Refuses sockets whose token `secret` did not sign.
    pub fn with_secret(mut self, secret: Option<Vec<u8>>) -> Self {
        self.secret = secret;
        self
    }

    /// The app accepts any `Origin`: idlegate checks it instead.
    pub fn with_any_origin(mut self, any_origin: bool) -> Self {
        self.any_origin = any_origin;
        self
    }

    /// Collects garbage in the app's process once ended sessions were discarded, when
    /// idlegate launched it.
    pub fn with_runtime(mut self, runtime: Option<Arc<dyn Runtime>>) -> Self {
        self.collect = runtime.map(CollectLater::new);
        self
    }
}

/// The session id a Bokeh token names: `session_id` in the JSON payload before the first
/// `.`, base64url without padding (`bokeh/util/token.py`, `get_session_id`).
pub fn token_session_id(token: &str) -> Option<String> {
    let payload = token.split('.').next()?;
    if payload.len() > 64 * 1024 {
        return None;
    }
    // Strictly: Bokeh's decoder skips characters outside the alphabet, so a token idlegate
    // reads less leniently is refused rather than read differently.
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let id = value["session_id"].as_str()?;
    (!id.is_empty() && id.len() <= 256).then(|| id.to_owned())
}

/// Whether `token` carries its payload's signature by `secret`: `<payload>.<signature>`,
/// the signature HMAC-SHA256 of the payload text, base64url without padding
/// (`bokeh/util/token.py`, `generate_jwt_token`, `_signature`). Compared in constant time.
pub fn token_signed(token: &str, secret: &[u8]) -> bool {
    use hmac::{Hmac, Mac};
    let Some((payload, signature)) = token.split_once('.') else {
        return false;
    };
    let Ok(signature) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret) else {
        return false;
    };
    mac.update(payload.as_bytes());
    mac.verify_slice(&signature).is_ok()
}

impl App for Bokeh {
    fn is_session_socket(&self, path: &str) -> bool {
        path.strip_prefix(self.base_path.as_str())
            .is_some_and(|rest| rest.starts_with('/') && rest.ends_with("/ws"))
    }

    fn resume_id(&self, headers: &HeaderMap) -> Option<String> {
        // `bokeh, <token>`: exactly two entries, the first `bokeh` (`ws.py`,
        // `select_subprotocol`), over every line of the header, as Tornado joins them.
        let mut entries = Vec::new();
        for line in headers.get_all(SEC_WEBSOCKET_PROTOCOL) {
            entries.extend(line.to_str().ok()?.split(',').map(str::trim));
        }
        match entries.as_slice() {
            ["bokeh", token]
                if self
                    .secret
                    .as_deref()
                    .is_none_or(|secret| token_signed(token, secret)) =>
            {
                token_session_id(token)
            }
            _ => None,
        }
    }

    fn forget_resume(&self, _headers: &mut HeaderMap) -> bool {
        // The token opens its session: without it, no socket at all.
        false
    }

    fn checks_socket_origin(&self) -> bool {
        self.any_origin
    }

    fn names_session_on_open(&self) -> bool {
        true
    }

    fn decoders(&self) -> (Box<dyn MessageDecoder>, Box<dyn MessageDecoder>) {
        let pending = decode::Pending::default();
        (
            Box::new(decode::Protocol::new(true, pending.clone())),
            Box::new(decode::Protocol::new(false, pending)),
        )
    }

    fn farewell(&self, _url: &str, _place: Placement, _text: &EndText<'_>) -> Farewell {
        // Nothing in Bokeh's protocol navigates the page or draws a notice: the socket
        // closes, and the page script shows the ended page.
        Farewell::default()
    }

    fn session_ended(&self, _id: &str) {
        if let Some(collect) = &self.collect {
            collect.request(self.discarded_after);
        }
    }

    fn page_hints(&self) -> PageHints {
        PageHints {
            socket_path: "/ws".to_owned(),
            session_requests: Vec::new(),
            theme_root: None,
        }
    }

    fn health_path(&self) -> String {
        // Served by every Bokeh server, whatever its apps (`ico_handler.py`).
        format!("{}/favicon.ico", self.base_path)
    }
}

#[cfg(test)]
mod tests;
