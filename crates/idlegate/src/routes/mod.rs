//! idlegate's own routes, under `<base>/_idlegate/`: health, readiness, the "session ended"
//! and "refused" pages, the page script and its API ([`tab`]), signing in ([`sign_in`]) and
//! out ([`sign_out`]).

pub mod sign_in;
pub mod sign_out;
pub mod tab;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::apps::App;
use crate::auth::Auth;
use crate::client::ClientScript;
use crate::config::{Texts, Upstream};
use crate::pages;
use crate::proxy::UpstreamClient;
use crate::tracker::{EndReason, Tracker};
use crate::web::{self, html, is_app_path, see_other, Body, PREFIX, TAB_API};

/// How long readiness waits for the app's health check.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the routes need.
pub struct RouteState {
    pub client: UpstreamClient,
    pub upstream: Upstream,
    pub health_path: String,
    pub base_path: String,
    pub tracker: Tracker,
    /// The page script; a configuration reload replaces it when its texts or the tab limits
    /// it shows change.
    pub script: ArcSwap<ClientScript>,
    /// `[browser.texts]`, shared with the proxy's farewells; a configuration reload
    /// replaces them.
    pub texts: Arc<ArcSwap<Texts>>,
    pub auth: Arc<Auth>,
    pub app: Arc<dyn App>,
}

/// The router for `<base>/_idlegate/*`.
pub fn router(state: Arc<RouteState>) -> Router {
    let prefix = format!("{}{PREFIX}", state.base_path);
    Router::new()
        .route(&format!("{prefix}healthz"), get(healthz))
        .route(&format!("{prefix}readyz"), get(readyz))
        .route(&format!("{prefix}ended"), get(ended))
        .route(&format!("{prefix}client.js"), get(script))
        .route(&format!("{prefix}refused"), get(refused))
        .route(&format!("{prefix}busy"), get(busy))
        .route(
            &format!("{prefix}login"),
            get(sign_in::sign_in_form).post(sign_in::sign_in).layer(
                axum::extract::DefaultBodyLimit::max(crate::limits::keys::MAX_SIGN_IN_BODY),
            ),
        )
        .route(
            &format!("{prefix}oidc/callback"),
            get(sign_in::oidc_callback),
        )
        .route(
            &format!("{prefix}logout"),
            get(sign_out::sign_out_form).post(sign_out::sign_out),
        )
        .route(
            &format!("{prefix}{TAB_API}"),
            axum::routing::post(tab::report).layer(axum::extract::DefaultBodyLimit::max(
                crate::limits::keys::MAX_SMALL_BODY,
            )),
        )
        .fallback(not_found)
        .with_state(state)
}

async fn healthz() -> Response {
    web::text(StatusCode::OK, "ok")
}

async fn readyz(State(state): State<Arc<RouteState>>) -> Response {
    if state.tracker.is_draining() {
        return web::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down (open tabs keep working until shutdown.grace ends)",
        );
    }
    let uri = format!("http://{}{}", state.upstream.authority(), state.health_path);
    let request = match axum::http::Request::get(uri).body(Body::empty()) {
        Ok(request) => request,
        Err(e) => {
            return web::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("not ready: {e}"),
            )
        }
    };
    let (code, line) =
        match tokio::time::timeout(READY_TIMEOUT, state.client.request(request)).await {
            Ok(Ok(response)) if response.status().is_success() => store_readiness(&state),
            Ok(Ok(response)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "not ready: the app's health check answered {}",
                    response.status()
                ),
            ),
            Ok(Err(e)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: cannot reach the app: {e}"),
            ),
            Err(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the app's health check timed out".into(),
            ),
        };
    web::text(code, &line)
}

/// Ready, and saying so when the shared store cannot be reached. Readiness does not fail
/// for it: every replica shares the store, so failing would take them all out of the load
/// balancer at once, cutting the open tabs' uploads and page loads as well, while what the
/// store's absence stops (new sign-ins, with `store.on_unavailable = "refuse"`) is already
/// answered with a page of its own. `idlegate_store_up` is what to alert on.
fn store_readiness(state: &RouteState) -> (StatusCode, String) {
    if state.tracker.stores().cluster.available() {
        return (StatusCode::OK, "ready".into());
    }
    let sign_ins = if state.auth.sign_ins_open() {
        "signing people in on this replica alone"
    } else {
        "nobody can sign in until it is back"
    };
    (
        StatusCode::OK,
        format!("ready; the shared store cannot be reached: open tabs go on, {sign_ins}"),
    )
}

async fn refused(State(state): State<Arc<RouteState>>) -> Response {
    let limit = state.tracker.policy().max_per_user.unwrap_or_default();
    let reload = format!("{}/", state.base_path);
    html(
        StatusCode::OK,
        pages::refused_page(&state.texts.load(), limit, &reload),
    )
}

/// How long a page refused for a full server is told to wait (`Retry-After`, RFC 9110
/// §10.2.3), in seconds: about how long a tab takes to end when `tabs.on_limit` refuses.
pub const BUSY_RETRY_AFTER_SECS: u32 = 30;

/// The page a new tab over `tabs.max_total` gets: 503 with `Retry-After`.
async fn busy(State(state): State<Arc<RouteState>>) -> Response {
    let reload = format!("{}/", state.base_path);
    let mut response = html(
        StatusCode::SERVICE_UNAVAILABLE,
        pages::busy_page(&state.texts.load(), &reload),
    );
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from(BUSY_RETRY_AFTER_SECS),
    );
    response
}

async fn script(State(state): State<Arc<RouteState>>, headers: HeaderMap) -> Response {
    state.script.load().respond(&headers)
}

#[derive(Deserialize)]
struct EndedQuery {
    reason: Option<String>,
    /// The app page the tab was on, to start the new session there.
    #[serde(rename = "return")]
    return_to: Option<String>,
}

async fn ended(State(state): State<Arc<RouteState>>, Query(query): Query<EndedQuery>) -> Response {
    let reason = query.reason.and_then(|name| EndReason::from_name(&name));
    let restart = query
        .return_to
        .filter(|path| is_app_path(&state.base_path, path))
        .unwrap_or_else(|| format!("{}/", state.base_path));
    // Signed out: every tab of the person goes where signing out goes (the sign-in page that
    // says so, or the proxy's sign-out), the one that asked and the others alike.
    if reason == Some(EndReason::Logout) && state.auth.enabled() {
        let to = if state.auth.signs_in_here() {
            let back =
                serde_urlencoded::to_string([("return", restart.as_str())]).unwrap_or_default();
            Some(format!(
                "{}{PREFIX}login?signed_out=1&{back}",
                state.base_path
            ))
        } else {
            state.auth.config.login.sign_out_url.clone()
        };
        if let Some(to) = to {
            return see_other(&to, []);
        }
    }
    html(
        StatusCode::OK,
        pages::ended_page(
            reason,
            &state.tracker.policy(),
            &state.texts.load(),
            &restart,
        ),
    )
}

async fn not_found() -> Response {
    web::text(StatusCode::NOT_FOUND, "not found")
}
