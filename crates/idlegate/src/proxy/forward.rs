//! Forwarding plain HTTP requests to the app and streaming the answer back.
//!
//! Bodies stream in both directions (uploads are never buffered whole). `Host` stays as the
//! browser sent it, because apps compare it with `Origin`; the other headers are what
//! [`super::outgoing`] lets the app see, and `X-Forwarded-*` are set. No timeout applies to the response: apps stream.
//! Navigations to HTML pages get the page script ([`super::inject`]).

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{HeaderValue, HOST};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;

use super::headers::{remove_hop_by_hop, set_forwarded};
use super::{inject, outgoing, requests, Body, Context};
use crate::apps::{RequestHead, SessionShape, UploadEvent};
use crate::error::ProxyError;
use crate::store::LoginSession;

/// Relays one HTTP request to the app. `navigation` says whether it is a page navigation
/// ([`inject::is_navigation`]), whose HTML answer gets the page script.
pub async fn forward(
    cx: &Context,
    req: Request<Incoming>,
    peer: SocketAddr,
    navigation: bool,
    login: Option<&Arc<LoginSession>>,
) -> Result<Response<Body>, ProxyError> {
    let upload = cx
        .app
        .upload_event(req.method(), req.uri().path(), req.headers());
    // The tab is busy while the file streams to the app, until the app answers.
    let _busy = match &upload {
        Some(UploadEvent::Stored { app_session, .. }) => {
            cx.tracker.upload_started(app_session, login)
        }
        Some(UploadEvent::Removed { app_session, .. }) => {
            cx.tracker.person_request(app_session, login);
            None
        }
        None => None,
    };
    if upload.is_none() && cx.app.shape() == SessionShape::Requests {
        if let Some(found) = cx.app.session_request(&head_of(&req)) {
            let send = async |request: Request<Body>| send(cx, request, peer, login).await;
            return requests::relay(cx, req, login, found, send).await;
        }
    }
    let inject = cx.config.browser.inject && navigation;
    let head = req.method() == http::Method::HEAD;
    let method = req.method().clone();
    let (mut parts, body) = req.into_parts();
    if inject {
        inject::prepare_request(&mut parts.headers, &cx.injector.version());
    }
    let response = send(cx, Request::from_parts(parts, Body::new(body)), peer, login).await?;
    match upload {
        Some(UploadEvent::Stored {
            app_session,
            release,
        }) if response.status().is_success() => {
            cx.tracker.record_release(&app_session, release, login);
        }
        Some(UploadEvent::Removed { app_session, path }) => {
            cx.tracker.forget_release(&app_session, &path, login);
        }
        _ => {}
    }
    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    if cx.config.browser.inject {
        inject::vary(&method, parts.status, &mut parts.headers);
    }
    let response = Response::from_parts(parts, body);
    if inject {
        return inject::rewrite(response, head, &cx.injector).await;
    }
    Ok(response.map(Body::new))
}

/// A request as the app kind sees it.
fn head_of<B>(req: &Request<B>) -> RequestHead<'_> {
    RequestHead {
        method: req.method(),
        path: req.uri().path(),
        query: req.uri().query(),
        headers: req.headers(),
    }
}

/// Sends a request to the app ([`prepare_request_head`] first) and returns its answer's
/// head, the body still streaming.
pub async fn send(
    cx: &Context,
    request: Request<Body>,
    peer: SocketAddr,
    login: Option<&Arc<LoginSession>>,
) -> Result<Response<Incoming>, ProxyError> {
    let (mut parts, body) = request.into_parts();
    prepare_request_head(cx, &mut parts, peer, login.map(|l| &l.identity))?;
    let request = Request::from_parts(parts, body);
    cx.client.request(request).await.map_err(|e| {
        if e.is_connect() {
            ProxyError::Connect {
                upstream: cx.upstream.to_string(),
                source: Box::new(e),
            }
        } else {
            ProxyError::Upstream(Box::new(e))
        }
    })
}

/// Points a request head at the app: target URI, HTTP/1.1, `Host`, the headers the app may
/// see ([`outgoing::request_headers`], with the identity of the request's login) and the
/// forwarding headers. Shared by plain requests and WebSocket upgrades.
pub fn prepare_request_head(
    cx: &Context,
    parts: &mut http::request::Parts,
    peer: SocketAddr,
    identity: Option<&crate::auth::Identity>,
) -> Result<(), ProxyError> {
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
    if !target.starts_with('/') {
        return Err(ProxyError::BadRequest("the request target must be a path"));
    }
    // HTTP/2 requests carry the host in `:authority`; HTTP/1.1 in `Host`.
    let host = parts.headers.get(HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let target = cx.app.app_target(&target).ok_or(ProxyError::NotServed)?;
    parts.uri = format!("http://{}{}", cx.upstream.authority(), target)
        .parse::<Uri>()
        .map_err(|_| ProxyError::BadRequest("the request target is not a valid path"))?;
    parts.version = Version::HTTP_11;
    outgoing::request_headers(&mut parts.headers, &cx.config.login.headers, identity);
    let person = identity.map(|identity| crate::apps::Person {
        user: &identity.user,
        groups: &identity.groups,
    });
    cx.app.identity_headers(&mut parts.headers, person.as_ref());
    if let Some(host) = &host {
        parts.headers.insert(HOST, host.clone());
    }
    let trusted = cx.config.proxy.is_trusted(peer.ip());
    set_forwarded(&mut parts.headers, peer, trusted, host.as_ref());
    Ok(())
}
