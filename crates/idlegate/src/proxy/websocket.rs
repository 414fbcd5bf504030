//! WebSocket upgrades: the handshake with the app on behalf of the browser, then a relay.
//!
//! An upgrade to the app's session socket becomes a tab session: it is admitted by the
//! tracker (a page asking to resume an ended session is answered by idlegate itself and sent
//! to the "session ended" page), forwarded to the app, and relayed with [`super::relay`].
//! An upgrade to any other path is refused: a socket idlegate does not track could outlive
//! every limit. The app's refusal (say a 403 for a bad `Origin`) reaches the browser
//! unchanged.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use http::header::{
    HeaderValue, CONNECTION, HOST, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS,
    SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, UPGRADE,
};
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::forward::prepare_request_head;
use super::headers::remove_hop_by_hop;
use super::relay::{self, RelayOptions};
use super::{Body, Context};
use crate::apps::Farewell;
use crate::auth::Identity;
use crate::error::ProxyError;
use crate::lifecycle::Signal;
use crate::redact::{self, short_hash};
use crate::store::LoginSession;
use crate::tracker::{EndNotice, EndReason, Entry, Refused, TabId};
use crate::ws::subprotocol::{tab_protocol, take_tab_token};

/// RFC 6455 §1.3.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Handles a WebSocket upgrade request. Its path is canonical ([`crate::paths`]): an upgrade
/// anywhere but the app's session socket is refused, so no socket reaches the app untracked.
pub async fn upgrade(
    cx: Arc<Context>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    login: Option<Arc<LoginSession>>,
) -> Result<Response<Body>, ProxyError> {
    session_socket(&cx, req.uri().path())?;
    // The page script's token is idlegate's business: the app never sees it.
    let (token, offered_ours) = take_tab_token(req.headers_mut());
    let named = cx.app.resume_id(req.headers());
    if named.is_none() && cx.app.needs_readable_session() {
        return Err(ProxyError::ForeignSession);
    }
    // A page's first connection names its new session when the app hands ids out with the
    // page (Bokeh): an id idlegate does not know is then no resume.
    let (resume, fresh) = match named {
        Some(id) if cx.app.names_session_on_open() && !cx.tracker.knows_app_session(&id) => {
            (None, Some(id))
        }
        named => (named, None),
    };
    let entry = match cx
        .tracker
        .admit(resume.as_deref(), token.as_deref(), login.as_ref())
    {
        Ok(entry) => entry,
        Err(refused) => {
            return refuse(cx, req, refused, resume.as_deref(), token.as_deref());
        }
    };
    if resume.is_some() && entry.resume.is_none() {
        // The session belongs to another login's tab: the app must not resume it either.
        if !cx.app.forget_resume(req.headers_mut()) {
            return Err(ProxyError::ForeignSession);
        }
    }
    // Chosen by the app, or ours when the app chose none (see `subprotocol`).
    let our_protocol = token
        .as_deref()
        .filter(|_| offered_ours)
        .map(tab_protocol)
        .and_then(|p| HeaderValue::from_str(&p).ok());
    let browser_upgrade = hyper::upgrade::on(&mut req);
    let identity = login.as_ref().map(|l| &l.identity);
    let (mut response, host) = handshake(&cx, req, peer, identity).await?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (mut parts, body) = response.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        return Ok(Response::from_parts(parts, Body::new(body)));
    }
    if let Some(host) = &host {
        cx.app.accepted_host(host);
    }
    let app_upgrade = hyper::upgrade::on(&mut response);
    let mut headers = response.headers().clone();
    remove_hop_by_hop(&mut headers);
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let (Some(ours), false) = (our_protocol, headers.contains_key(SEC_WEBSOCKET_PROTOCOL)) {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, ours);
    }
    let mut answer = Response::new(Body::empty());
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *answer.headers_mut() = headers;
    let tasks = cx.tasks.clone();
    tasks.spawn(async move {
        match tokio::try_join!(browser_upgrade, app_upgrade) {
            Ok((browser, app)) => {
                let (browser, app) = (TokioIo::new(browser), TokioIo::new(app));
                relay_tab(&cx, (browser, app), entry, fresh, login).await
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade did not complete"),
        }
        cx.app.session_closed();
    });
    Ok(answer)
}

/// Refuses an upgrade anywhere but the app's session socket.
fn session_socket(cx: &Context, path: &str) -> Result<(), ProxyError> {
    if cx.app.is_session_socket(path) {
        return Ok(());
    }
    if let Some(theirs) = cx.app.other_base_path(path) {
        tracing::error!(
            page_base_path = %redact::path(&theirs),
            app_base_path = %cx.config.app.base_path,
            "a page asks for the app's session socket under another base path: the app \
             serves under one app.base_path does not name; its sockets are refused until \
             they agree"
        );
    }
    Err(ProxyError::NoSocket)
}

/// Answers a page that may not reach the app itself: its tab ended (it is told so, in place
/// once it came back after being sent away), or its user has as many tabs as allowed.
fn refuse(
    cx: Arc<Context>,
    req: Request<Incoming>,
    refused: Refused,
    resume: Option<&str>,
    token: Option<&str>,
) -> Result<Response<Body>, ProxyError> {
    cx.tracker.refused(&refused, token);
    match refused {
        Refused::Ended(notice) => {
            let farewell = cx.farewell(&notice);
            if !notice.stays() {
                cx.tracker.sent_away(resume, token, &notice);
            }
            answer_with(cx, req, farewell, notice.reason.as_str(), token)
        }
        Refused::OverUserCap => {
            let farewell = cx.refusal(&refused);
            answer_with(cx, req, farewell, "over the per-user tab limit", token)
        }
        Refused::ServerBusy => {
            let farewell = cx.refusal(&refused);
            answer_with(cx, req, farewell, "over the server's tab limit", token)
        }
    }
}

/// Whether a session socket upgrade comes from a page of before this process
/// ([`crate::tracker::Tracker::restarted_page`]), for a page that may not reach the app (it
/// is not signed in: its login cookie was signed by the old process's key, or names a login
/// this process never had). The headers are not changed.
pub fn from_before_restart(cx: &Context, headers: &http::HeaderMap) -> bool {
    let mut headers = headers.clone();
    // The token first: the app's resume id is found by its place in the list.
    let (token, _) = take_tab_token(&mut headers);
    let resume = cx.app.resume_id(&headers);
    cx.tracker
        .restarted_page(resume.as_deref(), token.as_deref())
}

/// Sends the upgrade request to the app on a connection of its own. Returns the app's
/// answer and the `Host` the request named.
async fn handshake(
    cx: &Context,
    req: Request<Incoming>,
    peer: SocketAddr,
    identity: Option<&Identity>,
) -> Result<(Response<Incoming>, Option<String>), ProxyError> {
    let (mut parts, _) = req.into_parts();
    prepare_request_head(cx, &mut parts, peer, identity)?;
    // This connection is made by hand, so the request line takes the origin form.
    if let Some(target) = parts.uri.path_and_query().cloned() {
        parts.uri = target.into();
    }
    parts
        .headers
        .insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    parts
        .headers
        .insert(UPGRADE, HeaderValue::from_static("websocket"));
    // Compressed payloads could not be read; the app then simply does not compress.
    parts.headers.remove(SEC_WEBSOCKET_EXTENSIONS);
    let host = parts
        .headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let request = Request::from_parts(parts, Empty::<Bytes>::new());
    let stream = connect(cx).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ProxyError::Upstream(Box::new(e)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "app connection for an upgrade failed");
        }
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| ProxyError::Upstream(Box::new(e)))?;
    Ok((response, host))
}

/// Joins the upgraded connections to their tab and relays until either side goes away or
/// the tab ends.
async fn relay_tab(
    cx: &Arc<Context>,
    (browser, app): (TokioIo<Upgraded>, TokioIo<Upgraded>),
    entry: Entry,
    fresh: Option<String>,
    login: Option<Arc<LoginSession>>,
) {
    match cx.tracker.connect(&entry, login) {
        Ok(conn) => {
            if let Some(id) = fresh {
                conn.signal(Signal::SessionId(id));
            }
            match &entry.resume {
                Some(id) => check_resumed(cx, conn.tab_id(), id),
                None if conn.is_reconnect() => {
                    tracing::info!(tab = conn.tab_id(), "tab session reconnected");
                }
                None => {}
            }
            let farewell = |notice: &EndNotice| cx.farewell(notice);
            let options = RelayOptions {
                max_message_bytes: cx.config.proxy.max_message_bytes,
                farewell: &farewell,
                traffic: &cx.traffic,
            };
            let outcome = relay::run(browser, app, &conn, cx.app.as_ref(), &options).await;
            tracing::debug!(tab = conn.tab_id(), ?outcome, "tab connection finished");
            conn.closed();
        }
        Err(refused) => {
            // The session ended (or the user reached the tab limit) while the app was
            // accepting this connection.
            drop(app);
            cx.tracker.refused(&refused, entry.client.as_deref());
            relay::farewell_alone(browser, cx.refusal(&refused)).await;
        }
    }
}

/// Makes sure a page that reconnected got its own app session back; when the app made it a
/// new, empty one instead, the tab ends (`app_restarted`) rather than show its old screen
/// over a fresh session. The app has registered the connection by the time its 101 arrived,
/// but a second look a moment later confirms a "no" before the tab ends.
fn check_resumed(cx: &Arc<Context>, tab: TabId, id: &str) {
    let cx = cx.clone();
    let id = id.to_owned();
    cx.tasks.clone().spawn(async move {
        for delay in [Duration::from_millis(50), Duration::from_millis(500)] {
            tokio::time::sleep(delay).await;
            match cx.app.resumed(&id).await {
                Some(true) => {
                    tracing::info!(tab, "tab session resumed: the app kept its session");
                    return;
                }
                None => {
                    tracing::info!(tab, "tab session reconnected (the app could not say whether it kept its session)");
                    return;
                }
                Some(false) => {}
            }
        }
        if cx.tracker.end(tab, EndReason::AppRestarted) {
            tracing::warn!(
                tab,
                app_session = %short_hash(&id),
                "a page came back, but the app no longer had its session (it restarted, or \
                 dropped the session); the page is told so instead of shown a fresh session"
            );
        }
    });
}

async fn connect(cx: &Context) -> Result<TcpStream, ProxyError> {
    let upstream = &cx.upstream;
    let limit = cx.config.proxy.connect_timeout;
    let stream = timeout(
        limit,
        TcpStream::connect((upstream.host.as_str(), upstream.port)),
    )
    .await
    .map_err(|_| ProxyError::ConnectTimeout {
        upstream: upstream.to_string(),
        timeout_ms: limit.as_millis(),
    })?
    .map_err(|e| ProxyError::Connect {
        upstream: upstream.to_string(),
        source: Box::new(e),
    })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Accepts a session socket upgrade itself and gives the page `farewell` (sends it to the
/// ended page, the sign-in page, …) instead of letting it reach the app. `why` goes to the
/// log. `taken` is the page script's token when it was already taken out of the handshake
/// (the answer must name it when the page offered no other subprotocol).
pub fn answer_with(
    cx: Arc<Context>,
    mut req: Request<Incoming>,
    farewell: Farewell,
    why: &str,
    taken: Option<&str>,
) -> Result<Response<Body>, ProxyError> {
    let key = req
        .headers()
        .get(SEC_WEBSOCKET_KEY)
        .ok_or(ProxyError::BadRequest(
            "WebSocket upgrade without Sec-WebSocket-Key",
        ))?;
    let accept = accept_key(key.as_bytes());
    // The browser requires one of the subprotocols it offered: the app's first, else ours.
    let (token, _) = take_tab_token(req.headers_mut());
    let token = token.or_else(|| taken.map(str::to_owned));
    let protocol = req
        .headers()
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .or_else(|| token.as_deref().map(tab_protocol))
        .and_then(|p| HeaderValue::from_str(&p).ok());
    let browser_upgrade = hyper::upgrade::on(&mut req);
    let tasks = cx.tasks.clone();
    tasks.spawn(async move {
        if let Ok(upgraded) = browser_upgrade.await {
            relay::farewell_alone(TokioIo::new(upgraded), farewell).await;
        }
    });
    let mut answer = Response::new(Body::empty());
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = answer.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).map_err(|_| ProxyError::Internal("accept key"))?,
    );
    if let Some(protocol) = protocol {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    tracing::info!(why, "answered a page's session socket itself");
    Ok(answer)
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    let digest = Sha1::new()
        .chain_update(key)
        .chain_update(ACCEPT_GUID.as_bytes())
        .finalize();
    base64::engine::general_purpose::STANDARD.encode(digest)
}

#[cfg(test)]
mod tests {
    #[test]
    fn accept_key_matches_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            super::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
