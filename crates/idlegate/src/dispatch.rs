//! Dispatch: what happens to each request, in order.
//!
//! 1. **accept** (the listener, in the `server` module): TCP accept, HTTP/1.1 or HTTP/2 head parsing with size
//!    and time limits (oversized heads get 431 from the HTTP layer).
//! 2. **route** ([`Gateway::handle`]): the path is made canonical once ([`crate::paths`]: the
//!    path the app's server will route, which is also the one it is sent); then
//!    `<base>/_idlegate/*` goes to idlegate's own routes (the `routes` module) and everything
//!    else goes to the app.
//! 3. **who** ([`crate::auth`]): when people sign in, a request without a live login goes to
//!    the sign-in page (its socket is sent there, other requests get 401); a signed-in one
//!    carries its login on. What the app sees of the headers (no client-sent identity
//!    headers, no idlegate cookie, idlegate's identity headers) is decided when it is
//!    relayed, in [`crate::proxy::outgoing`].
//! 4. **upgrade or forward**: a WebSocket upgrade goes to [`crate::proxy::websocket`] (the
//!    app's session socket becomes a tracked tab session; upgrades anywhere else are
//!    refused); any other request is streamed to the app by [`crate::proxy::forward`], which
//!    also tells the tracker about uploads (busy while they stream).
//! 5. **respond**: the app's response streams back unchanged apart from hop-by-hop headers;
//!    a failure becomes one [`ProxyError`], logged with where the fault is and answered in the
//!    form the requester can show (a page for people, JSON for the app's health poll).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use http::header::{ACCEPT, SET_COOKIE};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::apps::SessionShape;
use crate::auth::{Access, Auth};
use crate::csrf::Authority;
use crate::error::ProxyError;
use crate::limits::keys::OWN_ROUTE_DEADLINE;
use crate::limits::Limit;
use crate::metrics::{Metrics, RouteClass};
use crate::paths;
use crate::proxy::{forward, headers, inject, requests, websocket, Context};
use crate::routes::{sign_in, sign_out, RouteState};
use crate::tracker::{EndNotice, EndReason};
use crate::web::{self, Body, Form, Peer, PREFIX};

/// Everything a request needs, shared by all connections.
pub struct Gateway {
    /// What relaying to the app needs.
    pub proxy: Arc<Context>,
    /// Who may use the app.
    pub auth: Arc<Auth>,
    routes: axum::Router,
    route_state: Arc<RouteState>,
    routes_prefix: String,
    /// Where request latencies go, with the admin listener.
    metrics: Option<Arc<Metrics>>,
}

impl Gateway {
    /// A gateway relaying with `proxy`, signing in with `auth`, and serving idlegate's own
    /// routes with `routes` (whose state is `route_state`); request latencies go to
    /// `metrics`.
    pub(crate) fn new(
        proxy: Arc<Context>,
        auth: Arc<Auth>,
        (routes, route_state): (axum::Router, Arc<RouteState>),
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        Self {
            routes_prefix: format!("{}{PREFIX}", proxy.config.app.base_path),
            proxy,
            auth,
            routes,
            route_state,
            metrics,
        }
    }

    /// What idlegate's own routes read (a configuration reload swaps some of it).
    pub(crate) fn route_state(&self) -> &Arc<RouteState> {
        &self.route_state
    }

    /// Handles one request (phases 2 to 4 above), timing it by [`RouteClass`]. Never fails:
    /// errors become responses.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let started = Instant::now();
        let (class, response) = self.clone().respond(req, peer).await;
        if let Some(metrics) = &self.metrics {
            metrics.observe_request(class, started.elapsed());
        }
        response
    }

    async fn respond(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        peer: SocketAddr,
    ) -> (RouteClass, Response<Body>) {
        // One view of the path for every decision below, and the one the app gets.
        if let Err(e) = canonicalize(&mut req) {
            let path = req.uri().path().to_owned();
            return (RouteClass::Own, web::error_response(&e, &path, Form::Text));
        }
        let path = req.uri().path().to_owned();
        if path.starts_with(&self.routes_prefix) {
            return (RouteClass::Own, self.own_route(req, peer).await);
        }
        let cx = &self.proxy;
        let form = self.form(&req, &path);
        let upgrade = headers::is_websocket_upgrade(req.headers());
        let navigation = inject::is_navigation(&req);
        if self.auth.enabled() && cx.app.sign_out_path().as_deref() == Some(path.as_str()) {
            let authority = self.authority(&req, peer);
            let response = sign_out::app_sign_out(&self.route_state, req.headers(), &authority);
            return (RouteClass::Own, response);
        }
        let (login, set_cookie) = match self.auth.check(req.headers(), peer, navigation) {
            Access::Open => (None, None),
            Access::Signed { login, set_cookie } => (Some(login), set_cookie),
            Access::SignInNeeded => {
                return (RouteClass::Own, self.sign_in_needed(req, upgrade, form))
            }
            Access::SignOutFirst { url } => {
                let response = self.sign_out_first(req, upgrade, form, &url);
                return (RouteClass::Own, response);
            }
            Access::SignInUnavailable => {
                let text = self.route_state.texts.load().sign_in_unavailable.clone();
                return (RouteClass::Own, sign_in::unavailable(&text));
            }
        };
        let class = match (upgrade, navigation) {
            (true, _) => RouteClass::Socket,
            (false, true) => RouteClass::Page,
            (false, false) => RouteClass::App,
        };
        if upgrade && cx.app.checks_socket_origin() {
            let authority = self.authority(&req, peer);
            if let Err(refusal) = crate::csrf::check_same_origin(req.headers(), &authority) {
                tracing::info!(
                    %refusal,
                    "refused a session socket another site's page opened (if a proxy in front \
                     rewrites Host, list it in proxy.trusted_proxies so that its \
                     X-Forwarded-Host names the address browsers use)"
                );
                return (
                    RouteClass::Own,
                    web::text(StatusCode::FORBIDDEN, &refusal.to_string()),
                );
            }
        }
        if navigation && cx.app.shape() == SessionShape::Requests {
            let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
            if let Some(response) = requests::ended_page(cx, req.headers(), target) {
                return (RouteClass::Own, response);
            }
        }
        let result = if upgrade {
            websocket::upgrade(cx.clone(), req, peer, login).await
        } else {
            forward::forward(cx, req, peer, navigation, login.as_ref()).await
        };
        let mut response = result.unwrap_or_else(|e| {
            if let Some(fault) = e.upstream_fault() {
                cx.tracker.upstream_failed(fault);
            }
            web::error_response(&e, &path, form)
        });
        if let Some(cookie) = set_cookie {
            response.headers_mut().append(SET_COOKIE, cookie);
        }
        (class, response)
    }

    /// Serves `<base>/_idlegate/*`, telling the handlers who is asking.
    async fn own_route(&self, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let proxies = &self.proxy.config.proxy;
        let trusted = proxies.is_trusted(peer.ip());
        let client = headers::client_addr(req.headers(), peer, proxies);
        let scheme = headers::scheme(req.headers(), trusted);
        let authority = self.authority(&req, peer);
        req.extensions_mut().insert(ConnectInfo(client));
        req.extensions_mut().insert(authority);
        req.extensions_mut().insert(Peer(peer));
        req.extensions_mut().insert(scheme);
        // A deadline for the whole request, body included: a body sent slowly would hold
        // what was read of it for as long as the client likes.
        let routed = self.routes.clone().oneshot(req.map(Body::new));
        match tokio::time::timeout(OWN_ROUTE_DEADLINE, routed).await {
            Ok(Ok(response)) => response,
            Ok(Err(infallible)) => match infallible {},
            Err(_) => {
                self.auth.bounds.hit(Limit::RequestDeadline);
                web::respond::json_message(
                    StatusCode::REQUEST_TIMEOUT,
                    "The request took too long to arrive.",
                )
            }
        }
    }

    /// Where the browser addressed this request to, for same-origin checks.
    fn authority(&self, req: &Request<Incoming>, peer: SocketAddr) -> Authority {
        let trusted = self.proxy.config.proxy.is_trusted(peer.ip());
        Authority {
            host: headers::authority(req.uri(), req.headers(), trusted),
            https: headers::scheme(req.headers(), trusted).0 == "https",
        }
    }

    /// The form a failure of this request is told in: JSON for the page's health poll (it
    /// shows the body), a page for a browser asking for HTML, text otherwise.
    fn form(&self, req: &Request<Incoming>, path: &str) -> Form {
        if self.proxy.app.is_health_poll(path) {
            Form::Json
        } else if accepts_html(req) {
            Form::Page
        } else {
            Form::Text
        }
    }

    /// Answers a request from someone who is not signed in: pages go to the sign-in page (and
    /// come back after), the app's socket is sent there too, anything else gets 401.
    fn sign_in_needed(&self, req: Request<Incoming>, upgrade: bool, form: Form) -> Response<Body> {
        let cx = &self.proxy;
        let base = &cx.config.app.base_path;
        let back = req
            .uri()
            .path_and_query()
            .map_or_else(|| format!("{base}/"), |pq| pq.as_str().to_owned());
        let here = self.auth.signs_in_here();
        if upgrade && here && cx.app.is_session_socket(req.uri().path()) {
            if websocket::from_before_restart(cx, req.headers()) {
                let reason = EndReason::ServerRestarted;
                let farewell = cx.farewell(&EndNotice::reason(reason));
                return self.answer_socket(req, farewell, reason.as_str());
            }
            let farewell = cx.redirect(&web::sign_in_url(base, &format!("{base}/")));
            return self.answer_socket(req, farewell, "not signed in");
        }
        if form == Form::Page && here && !upgrade {
            return web::see_other(&web::sign_in_url(base, &back), []);
        }
        let message = if here {
            "Sign in first."
        } else {
            "Sign in through the authenticating proxy in front of this app."
        };
        web::respond::json_message(StatusCode::UNAUTHORIZED, message)
    }

    /// Answers a request from a browser whose login ended, in header mode with the proxy's
    /// sign-out URL set: pages go there (idlegate's cookie is cleared on the way), the
    /// app's socket is sent there too, anything else gets 401.
    fn sign_out_first(
        &self,
        req: Request<Incoming>,
        upgrade: bool,
        form: Form,
        url: &str,
    ) -> Response<Body> {
        let cx = &self.proxy;
        if upgrade && cx.app.is_session_socket(req.uri().path()) {
            return self.answer_socket(req, cx.redirect(url), "login ended");
        }
        if form == Form::Page && !upgrade {
            return web::see_other(url, [self.auth.cookie.clear()]);
        }
        web::uncached(
            StatusCode::UNAUTHORIZED,
            "text/plain; charset=utf-8",
            String::new(),
        )
    }

    /// Accepts the app's session socket itself and gives the page `farewell`.
    fn answer_socket(
        &self,
        req: Request<Incoming>,
        farewell: crate::apps::Farewell,
        why: &str,
    ) -> Response<Body> {
        let path = req.uri().path().to_owned();
        websocket::answer_with(self.proxy.clone(), req, farewell, why, None)
            .unwrap_or_else(|e| web::error_response(&e, &path, Form::Text))
    }
}

/// Rewrites the request's path to its canonical form ([`paths::canonical`]), keeping the
/// query (and, for HTTP/2, the scheme and authority).
fn canonicalize(req: &mut Request<Incoming>) -> Result<(), ProxyError> {
    let canonical = match paths::canonical(req.uri().path()) {
        Ok(Cow::Borrowed(_)) => return Ok(()),
        Ok(Cow::Owned(path)) => path,
        Err(_) => return Err(ProxyError::BadRequest("the request target must be a path")),
    };
    let target = match req.uri().query() {
        Some(query) => format!("{canonical}?{query}"),
        None => canonical,
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(
        target
            .parse()
            .map_err(|_| ProxyError::BadRequest("the request target is not a valid path"))?,
    );
    *req.uri_mut() = http::Uri::from_parts(parts)
        .map_err(|_| ProxyError::BadRequest("the request target is not a valid path"))?;
    Ok(())
}

fn accepts_html(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}
