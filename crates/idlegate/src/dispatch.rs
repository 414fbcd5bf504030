//! Dispatch: what happens to each request, in order.
//!
//! 1. **accept** ([`crate::server`]): TCP accept, HTTP/1.1 or HTTP/2 head parsing with size
//!    and time limits (oversized heads get 431 from the HTTP layer).
//! 2. **route** ([`Gateway::handle`]): the path is made canonical once ([`crate::paths`]: the
//!    path the app's server will route, which is also the one it is sent); then
//!    `<base>/_idlegate/*` goes to idlegate's own routes ([`crate::routes`]) and everything
//!    else goes to the app.
//! 3. **who** ([`crate::auth`]): identity headers the browser sent are removed; when people
//!    sign in, a request without a live login goes to the sign-in page (its socket is sent
//!    there, other requests get 401), and a signed-in one gets the identity headers.
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
use http::header::{HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::apps::{App, EndText, Farewell};
use crate::auth::{Access, Auth};
use crate::client::ClientScript;
use crate::config::{Config, Upstream};
use crate::error::{chain, ProxyError};
use crate::pages;
use crate::paths;
use crate::proxy::inject::{self, Injector};
use crate::proxy::{forward, headers, websocket, Body, UpstreamClient};
use crate::routes::Peer;
use crate::tracker::{EndNotice, Tracker};

/// Everything a request needs, shared by all connections.
pub struct Gateway {
    pub config: Arc<Config>,
    pub upstream: Upstream,
    pub tracker: Tracker,
    pub app: Arc<dyn App>,
    pub client: UpstreamClient,
    /// Long-lived tasks (relays) that shutdown waits for.
    pub tasks: TaskTracker,
    /// Adds the page script's tag to HTML pages.
    pub injector: Injector,
    /// Who may use the app.
    pub auth: Arc<Auth>,
    routes: axum::Router,
    routes_prefix: String,
}

/// What a [`Gateway`] is made of.
pub(crate) struct Parts {
    pub config: Arc<Config>,
    pub upstream: Upstream,
    pub tracker: Tracker,
    pub app: Arc<dyn App>,
    pub client: UpstreamClient,
    pub routes: axum::Router,
    pub script: ClientScript,
    pub auth: Arc<Auth>,
}

impl Gateway {
    pub(crate) fn new(parts: Parts) -> Self {
        let Parts {
            config,
            upstream,
            tracker,
            app,
            client,
            routes,
            script,
            auth,
        } = parts;
        Self {
            routes_prefix: format!("{}{}", config.app.base_path, crate::routes::PREFIX),
            config,
            upstream,
            tracker,
            app,
            client,
            tasks: TaskTracker::new(),
            routes,
            injector: Injector::new(script.tag(), script.version()),
            auth,
        }
    }

    /// What a page whose tab ended is told: sent to the "session ended" page (which starts a
    /// new session where the page was), or shown the notice in place when it is in an
    /// iframe.
    pub fn farewell(&self, notice: &EndNotice) -> Farewell {
        let base = &self.config.app.base_path;
        let page = notice.page.as_deref();
        let url = crate::routes::ended_url_returning(base, notice.reason, page);
        let texts = &self.config.browser.texts;
        let message = pages::end_message(Some(notice.reason), &self.config.tabs, texts);
        let home = format!("{base}/");
        let start_href = page
            .filter(|page| crate::routes::is_app_path(base, page))
            .unwrap_or(&home);
        self.app.farewell(
            &url,
            notice.embedded,
            &EndText {
                title: &texts.ended_title,
                message: &message,
                start_label: &texts.start_new,
                start_href,
            },
        )
    }

    /// A farewell that only sends the page to `url` (the sign-in page, the refused page).
    pub fn redirect(&self, url: &str) -> Farewell {
        Farewell {
            messages: self.app.redirect_message(url).into_iter().collect(),
            ..Farewell::default()
        }
    }

    /// URL of the page a tab over the per-user limit gets.
    pub fn refused_url(&self) -> String {
        crate::routes::refused_url(&self.config.app.base_path)
    }

    /// Handles one request (phases 2 to 4 above). Never fails: errors become responses.
    pub async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        // One view of the path for every decision below, and the one the app gets.
        if let Err(e) = canonicalize(&mut req) {
            let path = req.uri().path().to_owned();
            return self.error_response(&e, &path, false);
        }
        let path = req.uri().path().to_owned();
        if path.starts_with(&self.routes_prefix) {
            let trusted = self.config.proxy.is_trusted(peer.ip());
            let client = headers::client_addr(req.headers(), peer, trusted);
            let scheme = headers::scheme(req.headers(), trusted);
            req.extensions_mut().insert(ConnectInfo(client));
            req.extensions_mut().insert(Peer(peer));
            req.extensions_mut().insert(scheme);
            return match self.routes.clone().oneshot(req.map(Body::new)).await {
                Ok(response) => response,
                Err(infallible) => match infallible {},
            };
        }
        let wants_html = accepts_html(&req);
        let upgrade = headers::is_websocket_upgrade(req.headers());
        let navigation = inject::is_navigation(&req);
        if self.auth.enabled() && self.app.sign_out_path().as_deref() == Some(path.as_str()) {
            let base = &self.config.app.base_path;
            return crate::auth::routes::app_sign_out(
                &self.auth,
                &self.tracker,
                base,
                req.headers(),
            );
        }
        let (login, set_cookie) = match self.auth.check(req.headers_mut(), peer, navigation) {
            Access::Open => (None, None),
            Access::Signed { login, set_cookie } => (Some(login), set_cookie),
            Access::SignInNeeded => return self.sign_in_needed(req, upgrade, wants_html),
            Access::SignOutFirst { url } => {
                return self.sign_out_first(req, upgrade, wants_html, &url)
            }
        };
        let result = if upgrade {
            websocket::upgrade(self.clone(), req, peer, login).await
        } else {
            forward::forward(&self, req, peer, navigation, login.as_ref()).await
        };
        let mut response = result.unwrap_or_else(|e| self.error_response(&e, &path, wants_html));
        if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().append(SET_COOKIE, cookie);
        }
        response
    }

    /// Answers a request from someone who is not signed in: pages go to the sign-in page (and
    /// come back after), the app's socket is sent there too, anything else gets 401.
    fn sign_in_needed(
        self: Arc<Self>,
        req: Request<Incoming>,
        upgrade: bool,
        wants_html: bool,
    ) -> Response<Body> {
        let base = &self.config.app.base_path;
        let back = req
            .uri()
            .path_and_query()
            .map_or_else(|| format!("{base}/"), |pq| pq.as_str().to_owned());
        let form = self.auth.signs_in_here();
        if upgrade && form && self.app.is_session_socket(req.uri().path()) {
            let url = crate::routes::sign_in_url(base, &format!("{base}/"));
            let path = req.uri().path().to_owned();
            let farewell = self.redirect(&url);
            return websocket::answer_with(self.clone(), req, farewell, "not signed in")
                .unwrap_or_else(|e| self.error_response(&e, &path, false));
        }
        if wants_html && form && !upgrade {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(location) = HeaderValue::from_str(&crate::routes::sign_in_url(base, &back)) {
                response.headers_mut().insert(LOCATION, location);
            }
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return response;
        }
        let message = if form {
            "Sign in first."
        } else {
            "Sign in through the authenticating proxy in front of this app."
        };
        let mut response = Response::new(Body::from(
            serde_json::json!({ "message": message }).to_string(),
        ));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    /// Answers a request from a browser whose login ended, in header mode with the proxy's
    /// sign-out URL set: pages go there (idlegate's cookie is cleared on the way), the
    /// app's socket is sent there too, anything else gets 401.
    fn sign_out_first(
        self: Arc<Self>,
        req: Request<Incoming>,
        upgrade: bool,
        wants_html: bool,
        url: &str,
    ) -> Response<Body> {
        if upgrade && self.app.is_session_socket(req.uri().path()) {
            let path = req.uri().path().to_owned();
            let farewell = self.redirect(url);
            return websocket::answer_with(self.clone(), req, farewell, "login ended")
                .unwrap_or_else(|e| self.error_response(&e, &path, false));
        }
        let mut response = Response::new(Body::empty());
        if wants_html && !upgrade {
            *response.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(location) = HeaderValue::from_str(url) {
                response.headers_mut().insert(LOCATION, location);
            }
            if let Ok(clear) = HeaderValue::from_str(&self.auth.cookie.clear()) {
                response.headers_mut().insert(SET_COOKIE, clear);
            }
        } else {
            *response.status_mut() = StatusCode::UNAUTHORIZED;
        }
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    fn error_response(&self, error: &ProxyError, path: &str, wants_html: bool) -> Response<Body> {
        let fault = error.fault();
        tracing::warn!(%fault, path, error = %chain(error), "request failed");
        let detail = if error.is_unreachable() {
            "idlegate cannot reach the app.".to_owned()
        } else {
            error.to_string()
        };
        let (content_type, body) = if self.app.is_health_poll(path) {
            // The page shows a JSON body of a failed health poll in its connection dialog.
            let message = format!(
                "{detail} It may be starting or restarting; this page keeps trying to reconnect."
            );
            (
                "application/json",
                serde_json::json!({ "message": message }).to_string(),
            )
        } else if wants_html {
            ("text/html; charset=utf-8", pages::unavailable_page(&detail))
        } else {
            ("text/plain; charset=utf-8", format!("{detail}\n"))
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = error.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
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
