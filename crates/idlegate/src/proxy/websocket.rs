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
    HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, UPGRADE,
};
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use super::forward::prepare_request_head;
use super::frame::{encode_frame, Opcode};
use super::headers::remove_hop_by_hop;
use super::relay::{self, RelayOptions};
use super::subprotocol::{tab_protocol, take_tab_token};
use super::Body;
use crate::auth::LoginSession;
use crate::dispatch::Gateway;
use crate::error::ProxyError;
use crate::tracker::{Admission, EndReason, Refused};

/// RFC 6455 §1.3.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Handles a WebSocket upgrade request. Its path is canonical ([`crate::paths`]): an upgrade
/// anywhere but the app's session socket is refused, so no socket reaches the app untracked.
pub async fn upgrade(
    gateway: Arc<Gateway>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    login: Option<Arc<LoginSession>>,
) -> Result<Response<Body>, ProxyError> {
    if !gateway.app.is_session_socket(req.uri().path()) {
        return Err(ProxyError::NoSocket);
    }
    // The page script's token is idlegate's business: the app never sees it.
    let (token, offered_ours) = take_tab_token(req.headers_mut());
    let resume = gateway.app.resume_id(req.headers());
    let entry = match gateway
        .tracker
        .admit(resume.as_deref(), token.as_deref(), login.as_ref())
    {
        Admission::Allowed(entry) => entry,
        Admission::Ended(reason) => {
            let url = gateway.ended_url(reason);
            return answer_redirect(gateway, req, url, reason.as_str());
        }
        Admission::OverUserCap => {
            let url = gateway.refused_url();
            return answer_redirect(gateway, req, url, "over the per-user tab limit");
        }
    };
    if resume.is_some() && entry.resume.is_none() {
        // The session belongs to another login's tab: the app must not resume it either.
        gateway.app.forget_resume(req.headers_mut());
    }
    // Chosen by the app, or ours when the app chose none (see `subprotocol`).
    let our_protocol = token
        .as_deref()
        .filter(|_| offered_ours)
        .map(tab_protocol)
        .and_then(|p| HeaderValue::from_str(&p).ok());

    let browser_upgrade = hyper::upgrade::on(&mut req);
    let (mut parts, _) = req.into_parts();
    prepare_request_head(&gateway, &mut parts, peer)?;
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
    let request = Request::from_parts(parts, Empty::<Bytes>::new());

    let stream = connect(&gateway).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ProxyError::Upstream(Box::new(e)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "app connection for an upgrade failed");
        }
    });
    let mut response = sender
        .send_request(request)
        .await
        .map_err(|e| ProxyError::Upstream(Box::new(e)))?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (mut parts, body) = response.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        return Ok(Response::from_parts(parts, Body::new(body)));
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

    let tasks = gateway.tasks.clone();
    tasks.spawn(async move {
        let (browser, app) = match tokio::try_join!(browser_upgrade, app_upgrade) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade did not complete");
                gateway.app.session_closed();
                return;
            }
        };
        let browser = TokioIo::new(browser);
        let app = TokioIo::new(app);
        match gateway.tracker.connect(&entry, login) {
            Ok(conn) => {
                let ended_url = |reason: EndReason| gateway.ended_url(reason);
                let options = RelayOptions {
                    max_message_bytes: gateway.config.proxy.max_message_bytes,
                    ended_url: &ended_url,
                };
                let outcome = relay::run(browser, app, &conn, gateway.app.as_ref(), &options).await;
                tracing::debug!(tab = conn.tab_id(), ?outcome, "tab connection finished");
                conn.closed();
            }
            Err(refused) => {
                // The session ended (or the user reached the tab limit) while the app was
                // accepting this connection.
                drop(app);
                let url = match refused {
                    Refused::Ended(reason) => gateway.ended_url(reason),
                    Refused::OverUserCap => gateway.refused_url(),
                };
                let mut browser = browser;
                send_away(&gateway, &mut browser, &url).await;
            }
        }
        gateway.app.session_closed();
    });
    Ok(answer)
}

async fn connect(gateway: &Gateway) -> Result<TcpStream, ProxyError> {
    let upstream = &gateway.upstream;
    let limit = gateway.config.proxy.connect_timeout;
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

/// Accepts a session socket upgrade itself and sends the page to `url` (the ended page, the
/// sign-in page), instead of letting it reach the app. `why` goes to the log.
pub fn answer_redirect(
    gateway: Arc<Gateway>,
    mut req: Request<Incoming>,
    url: String,
    why: &str,
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
    let tasks = gateway.tasks.clone();
    tasks.spawn(async move {
        if let Ok(upgraded) = browser_upgrade.await {
            let mut browser = TokioIo::new(upgraded);
            send_away(&gateway, &mut browser, &url).await;
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
    tracing::info!(why, "sent a page's session socket away");
    Ok(answer)
}

/// Sends the app's redirect to `url` over an open browser socket, then waits briefly for the
/// browser to leave.
async fn send_away<S>(gateway: &Gateway, browser: &mut S, url: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut frame = Vec::new();
    if let Some(message) = gateway.app.redirect_message(url) {
        encode_frame(&mut frame, Opcode::Binary, true, &message, None);
    }
    if browser.write_all(&frame).await.is_err() {
        return;
    }
    let deadline = Instant::now() + std::time::Duration::from_secs(3);
    let mut sink = [0u8; 512];
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, browser.read(&mut sink)).await {
        if n == 0 {
            break;
        }
    }
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
