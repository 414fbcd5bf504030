//! Gradio: the one place that knows its paths and its request-shaped sessions
//! (`gradio/routes.py`, `gradio/data_classes.py`, `client/js/src`).
//!
//! - A tab is a `session_hash` the page makes at load (`client.ts`: a new one per load, no
//!   resume). Every request of the tab names it: `GET /gradio_api/heartbeat/{hash}` (an
//!   event stream the page holds open while the app keeps state for the tab: `gr.State`,
//!   `unload` listeners, streams), `POST /gradio_api/queue/join` and `/gradio_api/run/…`
//!   (JSON `PredictBody` with `session_hash`, `fn_index`, `trigger_id`), `POST
//!   /gradio_api/cancel`, and `GET /gradio_api/queue/data?session_hash=…` (the results'
//!   event stream, [`events`]).
//! - Who asked for a run: the dependency's event ([`layout`]), read from the app's `/config`.
//! - Ending: when the heartbeat's connection closes, Gradio runs the `unload` listeners,
//!   clears the session's caches, ends its streaming events and marks its state closed
//!   (`routes.py`, `heartbeat`). It deletes a closed session's `gr.State` values only an hour
//!   later (`state_holder.py`, `STATE_TTL_WHEN_CLOSED`, whatever their `time_to_live`); in
//!   launcher mode idlegate has it delete them at once ([`crate::apps::collect`]).
//! - A request of an ended session is answered as a lost connection (a run request: an error
//!   status with `{"error": "Connection errored out. "}`; the results stream: `{"msg":
//!   "unexpected_error", "session_not_found": true, …}`): the page says the connection was
//!   lost and reloads once `/gradio_api/app_id` answers (`js/core/src/Blocks.svelte`).
//! - Base path: Gradio serves at the root (`GRADIO_ROOT_PATH` only names the public URL), so
//!   idlegate takes `app.base_path` off each request.

pub mod events;
mod kind;
pub mod layout;

pub use kind::{GradioKind, KIND};

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use futures_util::future::BoxFuture;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::json::parse_lenient;
use super::kind::Runtime;
use super::probe::get_body;
use super::{
    served_at_root, Answer, App, BodySession, EndText, Farewell, MessageDecoder, PageHints,
    Placement, RequestHead, SessionKey, SessionRequest, SessionShape,
};
use crate::config::Upstream;
use crate::lifecycle::Signal;
use events::QueueEvents;
use layout::{Cause, Layout};

/// Gradio's API prefix (`route_utils.py`, `API_PREFIX`).
const API: &str = "/gradio_api";
/// Largest `/config` read, in bytes.
const CONFIG_MAX: usize = 16 << 20;
/// Largest run request read for its session id, in bytes (also capped by
/// `proxy.max_message_bytes`).
const BODY_MAX: usize = 16 << 20;
/// A new tab refreshes the app's listeners when they are older than this (the app may have
/// restarted with other code).
const LAYOUT_FRESH: Duration = Duration::from_secs(10);

/// Gradio behind idlegate.
pub struct Gradio {
    base_path: String,
    upstream: Upstream,
    layout: Arc<Learned>,
    /// The app's process, when idlegate launched it.
    runtime: Option<Arc<dyn Runtime>>,
}

/// The app's event listeners, as last read.
#[derive(Default)]
struct Learned {
    layout: ArcSwapOption<Layout>,
    /// When they were last asked for; held while asking.
    asked: Mutex<Option<Instant>>,
}

impl Gradio {
    /// Gradio at `upstream`, served under `base_path` (`""` or `"/prefix"`).
    pub fn new(base_path: &str, upstream: &Upstream) -> Self {
        Self {
            base_path: base_path.to_owned(),
            upstream: upstream.clone(),
            layout: Arc::default(),
            runtime: None,
        }
    }

    /// Has the app's process delete ended sessions' state at once, when idlegate launched it.
    pub fn with_runtime(mut self, runtime: Option<Arc<dyn Runtime>>) -> Self {
        self.runtime = runtime;
        self
    }

    /// The path as the app sees it, for a path under the base path.
    fn app_path<'a>(&self, path: &'a str) -> Option<&'a str> {
        path.strip_prefix(self.base_path.as_str())
            .filter(|rest| rest.starts_with('/'))
    }

    /// The API route (after `/gradio_api`) a request is for.
    fn api_route<'a>(&self, path: &'a str) -> Option<&'a str> {
        self.app_path(path)?.strip_prefix(API)
    }
}

/// The `session_hash` of a query string: `None` without one, and an empty (invalid) id when
/// it is there more than once (idlegate and the app might read different ones).
fn query_session(query: Option<&str>) -> Option<String> {
    let mut hashes = serde_urlencoded::from_str::<Vec<(String, String)>>(query?)
        .ok()?
        .into_iter()
        .filter(|(name, _)| name == "session_hash")
        .map(|(_, value)| value);
    let first = hashes.next()?;
    Some(if hashes.next().is_some() {
        String::new()
    } else {
        first
    })
}

/// Whether an API route runs an event: `queue/join`, or `run/<api name>` and
/// `api/<api name>` (one handler, `routes.py`).
fn runs_event(route: &str) -> bool {
    route == "/queue/join" || route.starts_with("/run/") || route.starts_with("/api/")
}

impl App for Gradio {
    fn shape(&self) -> SessionShape {
        SessionShape::Requests
    }

    fn is_session_socket(&self, _path: &str) -> bool {
        // Gradio's pages open no WebSocket.
        false
    }

    fn decoders(&self) -> (Box<dyn MessageDecoder>, Box<dyn MessageDecoder>) {
        (Box::<QueueEvents>::default(), Box::<QueueEvents>::default())
    }

    fn farewell(&self, _url: &str, _place: Placement, _text: &EndText<'_>) -> Farewell {
        Farewell::default()
    }

    fn session_request(&self, head: &RequestHead<'_>) -> Option<SessionRequest> {
        let route = self.api_route(head.path)?;
        if let Some(hash) = route.strip_prefix("/heartbeat/") {
            return (head.method == Method::GET).then(|| SessionRequest {
                key: SessionKey::Known(hash.to_owned()),
                holds_session: true,
            });
        }
        let key = match (head.method, route) {
            (&Method::POST, route) if runs_event(route) || route == "/cancel" => {
                SessionKey::InBody { limit: BODY_MAX }
            }
            (&Method::GET, "/queue/data") => SessionKey::Known(query_session(head.query)?),
            _ => return None,
        };
        Some(SessionRequest {
            key,
            holds_session: false,
        })
    }

    fn session_in_body(&self, _head: &RequestHead<'_>, body: &[u8]) -> BodySession {
        // Read as the app reads it (Python's `json`: the last of repeated keys wins).
        let Some(body) = parse_lenient(body) else {
            return BodySession::Unreadable;
        };
        match body.get("session_hash") {
            Some(Value::String(hash)) => BodySession::Named(hash.clone()),
            None | Some(Value::Null) => BodySession::Absent,
            Some(_) => BodySession::Unreadable,
        }
    }

    fn learn(&self) -> BoxFuture<'static, ()> {
        let learned = self.layout.clone();
        let upstream = self.upstream.clone();
        Box::pin(async move {
            let mut asked = learned.asked.lock().await;
            if asked.is_some_and(|at| at.elapsed() < LAYOUT_FRESH) {
                return;
            }
            *asked = Some(Instant::now());
            match get_body(&upstream, "/config", CONFIG_MAX).await {
                Ok(config) => match Layout::parse(&config) {
                    Ok(layout) => {
                        tracing::debug!(
                            listeners = layout.listeners(),
                            "read the app's event listeners"
                        );
                        learned.layout.store(Some(Arc::new(layout)));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the app's /config is not a Gradio config; its events count as unclear")
                    }
                },
                Err(why) => {
                    tracing::warn!(%why, "cannot read the app's /config (an app with its own auth= keeps it from idlegate); its events count as unclear")
                }
            }
        })
    }

    fn classify_request(&self, head: &RequestHead<'_>, body: &[u8], emit: &mut dyn FnMut(Signal)) {
        if !self.api_route(head.path).is_some_and(runs_event) {
            return;
        }
        let Some(body) = parse_lenient(body) else {
            return;
        };
        let fn_index = body.get("fn_index").and_then(Value::as_u64);
        let trigger_id = body.get("trigger_id").and_then(Value::as_u64);
        let layout = self.layout.layout.load();
        let cause = match (fn_index, layout.as_deref()) {
            (Some(index), Some(layout)) => layout.cause(index, trigger_id),
            _ => Cause::Unclear,
        };
        // Runs overlap (a timer's tick while a click's work runs): none replaces another.
        emit(match cause {
            Cause::Automatic => Signal::RunRequested {
                automatic: true,
                fragment: true,
            },
            Cause::Person => Signal::RunRequested {
                automatic: false,
                fragment: true,
            },
            Cause::Unclear => Signal::RunRequestedUnclear { fragment: true },
        });
    }

    fn ended_answer(&self, head: &RequestHead<'_>, _url: &str) -> Option<Answer> {
        // The page takes these as a lost connection: it says so, polls `/gradio_api/app_id`
        // every 2 s and reloads once that answers (`js/core/src/Blocks.svelte`; the
        // client's `submit`: a run request's error must be this one, and not with a 200,
        // which it would wait on forever). idlegate shows the reloaded page why its
        // session ended (the proxy's `requests` module).
        let route = self.api_route(head.path)?;
        if head.method == Method::POST && runs_event(route) {
            return Some(Answer {
                status: StatusCode::GONE,
                content_type: "application/json",
                body: json!({ "error": "Connection errored out. " })
                    .to_string()
                    .into_bytes(),
            });
        }
        let message = json!({
            "msg": "unexpected_error",
            "event_id": null,
            "message": "This session ended.",
            "session_not_found": true,
            "success": false,
        });
        (route == "/queue/data").then(|| Answer {
            status: StatusCode::OK,
            content_type: "text/event-stream",
            body: format!("data: {message}\n\n").into_bytes(),
        })
    }

    fn page_hints(&self) -> PageHints {
        PageHints {
            socket_path: String::new(),
            session_requests: vec![
                format!("{API}/heartbeat/"),
                format!("{API}/queue/join"),
                format!("{API}/run/"),
            ],
            theme_root: Some(".gradio-container".to_owned()),
        }
    }

    fn sign_out_path(&self) -> Option<String> {
        // Where `gr.LogoutButton` sends people (`routes.py`, `/logout`).
        Some(format!("{}/logout", self.base_path))
    }

    fn app_target<'a>(&self, target: &'a str) -> Option<Cow<'a, str>> {
        served_at_root(&self.base_path, target)
    }

    fn health_path(&self) -> String {
        // Asked of the app itself, which serves at the root.
        format!("{API}/app_id")
    }

    fn session_ended(&self, id: &str) {
        if let Some(runtime) = &self.runtime {
            if runtime.close_sessions(&[id]) {
                tracing::debug!(app_session = %crate::redact::short_hash(id), "asked the app to delete the session's state");
            }
        }
    }

    fn is_health_poll(&self, path: &str) -> bool {
        // The page polls it while it says the connection was lost.
        self.api_route(path) == Some("/app_id")
    }
}

#[cfg(test)]
mod tests;
