//! Tab sessions of the request shape ([`SessionShape::Requests`](crate::apps::SessionShape::Requests), Gradio): no socket, but
//! HTTP requests and event streams tied by a session id the app kind finds in each.
//!
//! - The first request naming an id idlegate does not know opens a tab (a page load makes a
//!   new id); the tab's connection is held here, in a [`Link`], until the tab ends, or until
//!   the stream that holds the app's session ([`SessionRequest::holds_session`], Gradio's
//!   heartbeat) closes because the browser left.
//! - Each request is classified by the kind ([`App::classify_request`](crate::apps::App::classify_request)) before it goes on:
//!   a person's event, or the page's own timer. Event streams from the app are read as they
//!   pass ([`super::sse`]): the app's "started"/"finished" messages make the tab busy, across
//!   all of its streams.
//! - When the tab ends, its streams are cut (the app's end of the held stream makes it free
//!   the session), and every later request naming it gets the kind's answer for an ended
//!   session ([`App::ended_answer`](crate::apps::App::ended_answer)), or 410, with a short-lived cookie that sends the
//!   page's next load to the "session ended" page ([`ENDED_COOKIE`], [`ended_page`]): the
//!   notice without the page script.
//! - Requests naming another login's session get 403; a body idlegate must read for the id
//!   is read whole, up to `proxy.max_message_bytes` (413 beyond) and within
//!   `proxy.header_read_timeout` (408 after).
//!
//! The page script tags these requests with its tab token in [`TAB_HEADER`] (a header, not
//! the URL: URLs reach access logs); the app never sees it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::sync::watch;

use super::sse::EventStream;
use super::{Body, Context};
use crate::apps::{BodySession, RequestHead, SessionKey, SessionRequest};
use crate::error::ProxyError;
use crate::lifecycle::Signal;
use crate::store::LoginSession;
use crate::tracker::{EndReason, Ending, Refused, SessionLookup, TabConnection};
use crate::web::cookies;
use crate::ws::subprotocol::is_token;

pub use crate::ws::subprotocol::TAB_HEADER;

/// The cookie a page whose session ended (or that was refused a tab over a limit) is given
/// with the answer to its request: the page then reloads by itself (Gradio), and the reload
/// is sent to the "session ended" page, or the page that says which limit ([`ended_page`]).
/// Its value is the end's reason, `max_per_user` or `max_total`; it lives 30 s.
pub const ENDED_COOKIE: &str = "idlegate-ended";
/// How long the ended cookie lives: the page reloads within seconds.
const ENDED_COOKIE_AGE: std::time::Duration = std::time::Duration::from_secs(30);

/// Longest app session id accepted (Gradio's are 10 to 12 characters).
const ID_MAX: usize = 128;

/// The open tabs of the request shape, by app session id.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Arc<Link>>>,
}

/// One open tab's connection, shared by its requests and streams.
pub struct Link {
    conn: Mutex<Option<TabConnection>>,
    ending: watch::Receiver<Option<Ending>>,
    /// The app's events in progress, across the tab's streams.
    running: Mutex<usize>,
}

impl Link {
    fn signal(&self, signal: Signal) {
        if let Some(conn) = lock(&self.conn).as_ref() {
            conn.signal(signal);
        }
    }

    /// Counts an event start (`true`) or end; the tab is busy while any runs.
    fn running(&self, started: bool) {
        let mut running = lock(&self.running);
        let before = *running;
        *running = if started {
            before + 1
        } else {
            before.saturating_sub(1)
        };
        let now_running = *running > 0;
        drop(running);
        if (before > 0) != now_running {
            self.signal(Signal::Running(now_running));
        }
    }

    /// Whether the tab has ended (or was taken over).
    fn ended(&self) -> bool {
        self.ending.borrow().is_some()
    }

    /// The stream that held the app's session closed: the tab waits for the browser like
    /// a socket that closed.
    fn closed(&self) {
        if let Some(conn) = lock(&self.conn).take() {
            conn.closed();
        }
    }
}

mod streams;

use streams::Watch;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes the page script's tab token out of the request's headers (a malformed one is
/// dropped too).
pub fn take_tab_token(headers: &mut HeaderMap) -> Option<String> {
    let token = headers
        .remove(TAB_HEADER)?
        .to_str()
        .ok()
        .filter(|t| is_token(t))
        .map(str::to_owned);
    while headers.remove(TAB_HEADER).is_some() {}
    token
}

/// Relays one request of a request-shaped session (`found` says where its id is); `send`
/// sends a request to the app.
pub async fn relay(
    cx: &Context,
    req: Request<Incoming>,
    login: Option<&Arc<LoginSession>>,
    found: SessionRequest,
    send: impl AsyncFnOnce(Request<Body>) -> Result<Response<Incoming>, ProxyError>,
) -> Result<Response<Body>, ProxyError> {
    let (mut parts, body) = req.into_parts();
    let token = take_tab_token(&mut parts.headers);
    let head = RequestHead {
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
    };
    let (id, outgoing) = session_of(cx, &head, found.key, body).await?;
    let link = match &id {
        Some(id) => match cx.sessions.link(cx, id, token.as_deref(), login) {
            Ok((link, opened)) => {
                if opened {
                    cx.app.learn().await;
                }
                Some(link)
            }
            Err(Gone::Foreign) => return Err(ProxyError::ForeignSession),
            Err(Gone::Refused(refused)) => return Ok(gone(cx, &head, &refused)),
        },
        // No session named (an API client's request): the app answers it alone.
        None => None,
    };
    if let Some(link) = &link {
        let bytes = match &outgoing {
            Outgoing::Read(bytes) => bytes.as_ref(),
            Outgoing::Stream(_) => &[],
        };
        cx.app
            .classify_request(&head, bytes, &mut |signal| link.signal(signal));
    }
    let farewell = cx
        .app
        .ended_answer(&head, &cx.plain_ended_url())
        .filter(|answer| answer.content_type == EVENT_STREAM)
        .map(|answer| Bytes::from(answer.body));
    let body = match outgoing {
        Outgoing::Read(bytes) => Body::from(bytes),
        Outgoing::Stream(body) => Body::new(body),
    };
    let response = send(Request::from_parts(parts, body)).await?;
    let held = found.holds_session.then(|| id.unwrap_or_default());
    Ok(watch_response(cx, response, link, held, farewell))
}

/// The session a request names (from `key`), and its body as it goes on: read whole when
/// the id is in it.
///
/// # Errors
/// The body is too large (413), too slow (408), or names its session in a way idlegate
/// cannot read as the app would; or the id is malformed (400).
async fn session_of(
    cx: &Context,
    head: &RequestHead<'_>,
    key: SessionKey,
    body: Incoming,
) -> Result<(Option<String>, Outgoing), ProxyError> {
    let (id, outgoing) = match key {
        SessionKey::Known(id) => (Some(id), Outgoing::Stream(body)),
        SessionKey::InBody { limit } => {
            let limit = u64::try_from(limit)
                .unwrap_or(u64::MAX)
                .min(cx.config.proxy.max_message_bytes);
            let deadline = cx.config.proxy.header_read_timeout;
            let bytes = tokio::time::timeout(deadline, read_body(body, limit))
                .await
                .map_err(|_| ProxyError::SlowBody {
                    timeout_ms: deadline.as_millis(),
                })??;
            let id = match cx.app.session_in_body(head, &bytes) {
                BodySession::Named(id) => Some(id),
                BodySession::Absent => None,
                BodySession::Unreadable => {
                    return Err(ProxyError::BadRequest(
                        "the request body names its session in a way idlegate cannot read",
                    ))
                }
            };
            (id, Outgoing::Read(bytes))
        }
    };
    // An id idlegate cannot track might still be one the app accepts: refused.
    if id.as_deref().is_some_and(|id| !is_session_id(id)) {
        return Err(ProxyError::BadRequest(
            "the request names a malformed session id",
        ));
    }
    Ok((id, outgoing))
}

/// The app's answer, on its way to the browser: read for the tab `link` (when the request
/// named one) if it is an event stream, cut when the tab ends, and closing the tab when it
/// is the stream that holds app session `held`.
fn watch_response(
    cx: &Context,
    response: Response<Incoming>,
    link: Option<Arc<Link>>,
    held: Option<String>,
    farewell: Option<Bytes>,
) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    super::headers::remove_hop_by_hop(&mut parts.headers);
    let Some(link) = link else {
        return Response::from_parts(parts, Body::new(body));
    };
    let streams = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(EVENT_STREAM));
    let watch = Watch::new(
        link,
        streams.then(|| EventStream::new(cx.app.decoders().1)),
        held.map(|id| (cx.sessions.clone(), id)),
        farewell.filter(|_| streams),
    );
    Response::from_parts(parts, streams::watched(body, watch))
}

/// A request's body on its way to the app: read already, or still streaming.
enum Outgoing {
    Read(Bytes),
    Stream(Incoming),
}

/// The media type of an event stream.
const EVENT_STREAM: &str = "text/event-stream";

/// Why a request may not go on with the session it names.
enum Gone {
    /// Its tab ended, or a new tab is over a limit.
    Refused(Refused),
    /// Another login's tab has it.
    Foreign,
}

impl Sessions {
    /// The open tab of app session `id`, opened now when the id is new (`true` with it).
    fn link(
        self: &Arc<Self>,
        cx: &Context,
        id: &str,
        token: Option<&str>,
        login: Option<&Arc<LoginSession>>,
    ) -> Result<(Arc<Link>, bool), Gone> {
        // Held while a tab opens, so that two first requests of a page open one tab.
        let mut open = lock(&self.open);
        let known = match cx.tracker.lookup_session(id, login) {
            SessionLookup::Ended(notice) => return Err(Gone::Refused(Refused::Ended(notice))),
            SessionLookup::Foreign => return Err(Gone::Foreign),
            SessionLookup::Open => true,
            SessionLookup::Unknown => false,
        };
        if let Some(link) = open.get(id).filter(|link| known && !link.ended()) {
            return Ok((link.clone(), false));
        }
        let resume = known.then_some(id);
        let refused = |refused: Refused| {
            cx.tracker.refused(&refused, token);
            Gone::Refused(refused)
        };
        let entry = cx.tracker.admit(resume, token, login).map_err(refused)?;
        let conn = cx
            .tracker
            .connect(&entry, login.cloned())
            .map_err(refused)?;
        if !known {
            conn.signal(Signal::SessionId(id.to_owned()));
        }
        let mut ending = conn.ending();
        let link = Arc::new(Link {
            ending: ending.clone(),
            conn: Mutex::new(Some(conn)),
            running: Mutex::new(0),
        });
        open.insert(id.to_owned(), link.clone());
        drop(open);
        // Forget the tab once it ends (or is taken over, or dropped).
        let (sessions, id, watched) = (self.clone(), id.to_owned(), link.clone());
        tokio::spawn(async move {
            while ending.borrow_and_update().is_none() {
                if ending.changed().await.is_err() {
                    break;
                }
            }
            sessions.forget(&id, &watched);
        });
        Ok((link, !known))
    }

    /// Forgets `link` as the tab of app session `id` (if it still is); the tab's connection
    /// goes with it.
    fn forget(&self, id: &str, link: &Arc<Link>) {
        let mut open = lock(&self.open);
        if open.get(id).is_some_and(|open| Arc::ptr_eq(open, link)) {
            open.remove(id);
        }
    }
}

/// The answer a request of a session that may not go on gets: the kind's (so the page
/// leaves for the ended page or reloads), or a plain status.
fn gone(cx: &Context, head: &RequestHead<'_>, refused: &Refused) -> Response<Body> {
    let (url, status, text) = match refused {
        Refused::Ended(notice) => (
            cx.ended_url(notice),
            StatusCode::GONE,
            "This session ended.",
        ),
        Refused::OverUserCap => (
            cx.refused_url(),
            StatusCode::TOO_MANY_REQUESTS,
            "You have as many tabs open as allowed.",
        ),
        Refused::ServerBusy => (
            crate::web::busy_url(&cx.config.app.base_path),
            StatusCode::SERVICE_UNAVAILABLE,
            "The server has as many sessions open as it can hold.",
        ),
    };
    let (status, content_type, body) = match cx.app.ended_answer(head, &url) {
        Some(answer) => (answer.status, answer.content_type, answer.body),
        None => (
            status,
            "text/plain; charset=utf-8",
            text.as_bytes().to_vec(),
        ),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let path = format!("{}/", cx.config.app.base_path);
    let secure = cx.config.login.cookie_secure;
    let why = match refused {
        Refused::Ended(notice) => notice.reason.as_str(),
        Refused::OverUserCap => OVER_USER_CAP,
        Refused::ServerBusy => SERVER_BUSY,
    };
    let cookie = cookies::set(ENDED_COOKIE, why, &path, Some(ENDED_COOKIE_AGE), secure);
    headers.append(SET_COOKIE, cookie);
    response
}

/// The ended cookie's value for a page refused a new tab over the per-user limit, and over
/// the server's (the others are end reasons).
const OVER_USER_CAP: &str = "max_per_user";
const SERVER_BUSY: &str = "max_total";

/// For a page load of a browser that was just told its session ended ([`ENDED_COOKIE`]): the
/// "session ended" page, with why (or the page of the limit it was refused over), instead
/// of a new session (a Gradio page reloads by itself once its requests are refused).
/// `target` is the page's path and query.
pub fn ended_page(cx: &Context, headers: &HeaderMap, target: &str) -> Option<Response<Body>> {
    let why = cookies::find(headers, ENDED_COOKIE)?;
    let base = &cx.config.app.base_path;
    let url = match why {
        OVER_USER_CAP => cx.refused_url(),
        SERVER_BUSY => crate::web::busy_url(base),
        why => crate::web::ended_url_returning(base, EndReason::from_name(why)?, Some(target)),
    };
    let clear = cookies::removal(
        ENDED_COOKIE,
        &format!("{base}/"),
        cx.config.login.cookie_secure,
    );
    Some(crate::web::see_other(&url, [clear]))
}

/// Whether `id` can be an app session id: short, and printable ASCII without spaces.
fn is_session_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= ID_MAX && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Reads a request body whole, up to `limit` bytes.
async fn read_body(body: Incoming, limit: u64) -> Result<Bytes, ProxyError> {
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(body, cap).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ProxyError::TooLarge { limit }),
        Err(_) => Err(ProxyError::BadRequest("the request body could not be read")),
    }
}
