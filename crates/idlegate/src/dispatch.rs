//! Dispatch: what happens to each request, in order.
//!
//! 1. **accept** ([`crate::server`]): TCP accept, HTTP/1.1 or HTTP/2 head parsing with size
//!    and time limits (oversized heads get 431 from the HTTP layer).
//! 2. **route** ([`Gateway::handle`]): `<base>/_idlegate/*` goes to idlegate's own routes
//!    ([`crate::routes`]); everything else goes to the app.
//! 3. **upgrade or forward**: a WebSocket upgrade goes to [`crate::proxy::websocket`] (the
//!    app's session socket becomes a tracked tab session, other sockets are tunnelled);
//!    any other request is streamed to the app by [`crate::proxy::forward`], which also
//!    reports requests that are a person's activity (uploads).
//! 4. **respond**: the app's response streams back unchanged apart from hop-by-hop headers;
//!    a failure becomes one [`ProxyError`], logged with where the fault is and answered in the
//!    form the requester can show (a page for people, JSON for the app's health poll).

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use http::{Request, Response};
use hyper::body::Incoming;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::apps::App;
use crate::client::ClientScript;
use crate::config::{Config, Upstream};
use crate::error::{chain, ProxyError};
use crate::pages;
use crate::proxy::inject::Injector;
use crate::proxy::{forward, headers, websocket, Body, UpstreamClient};
use crate::tracker::{EndReason, Tracker};

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
    routes: axum::Router,
    routes_prefix: String,
}

impl Gateway {
    pub(crate) fn new(
        config: Arc<Config>,
        upstream: Upstream,
        tracker: Tracker,
        app: Arc<dyn App>,
        client: UpstreamClient,
        routes: axum::Router,
        script: ClientScript,
    ) -> Self {
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
        }
    }

    /// URL of the "session ended" page for a reason (a path on this host).
    pub fn ended_url(&self, reason: EndReason) -> String {
        crate::routes::ended_url(&self.config.app.base_path, reason)
    }

    /// Handles one request (phases 2 to 4 above). Never fails: errors become responses.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let path = req.uri().path().to_owned();
        if path.starts_with(&self.routes_prefix) {
            return match self.routes.clone().oneshot(req.map(Body::new)).await {
                Ok(response) => response,
                Err(infallible) => match infallible {},
            };
        }
        let wants_html = accepts_html(&req);
        let result = if headers::is_websocket_upgrade(req.headers()) {
            websocket::upgrade(self.clone(), req, peer).await
        } else {
            forward::forward(&self, req, peer).await
        };
        result.unwrap_or_else(|e| self.error_response(&e, &path, wants_html))
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

fn accepts_html(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}
