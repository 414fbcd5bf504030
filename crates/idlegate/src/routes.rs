//! idlegate's own routes, under `<base>/_idlegate/`: health, readiness, the "session ended"
//! page, and the browser client's script and API ([`crate::client`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::auth::routes as auth_routes;
use crate::auth::Auth;
use crate::client::{tab_api, ClientScript};
use crate::config::{TabPolicy, Texts, Upstream};
use crate::pages;
use crate::proxy::{Body, UpstreamClient};
use crate::tracker::{EndReason, Tracker};

/// Path prefix of idlegate's routes, after the app's base path.
pub const PREFIX: &str = "/_idlegate/";

/// How long readiness waits for the app's health check.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The TCP peer of a request to idlegate's routes (the proxy in front, or the browser), as
/// opposed to the client address `ConnectInfo` carries.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// What the routes need.
pub struct RouteState {
    pub client: UpstreamClient,
    pub upstream: Upstream,
    pub health_path: String,
    pub policy: TabPolicy,
    pub base_path: String,
    pub tracker: Tracker,
    pub script: ClientScript,
    pub texts: Texts,
    pub auth: Arc<Auth>,
}

/// URL of the page a tab over the per-user limit gets.
pub fn refused_url(base_path: &str) -> String {
    format!("{base_path}{PREFIX}refused")
}

/// URL of the sign-in page, returning to `return_to` afterwards.
pub fn sign_in_url(base_path: &str, return_to: &str) -> String {
    let query = serde_urlencoded::to_string([("return", return_to)]).unwrap_or_default();
    format!("{base_path}{PREFIX}login?{query}")
}

/// URL of the "session ended" page.
pub fn ended_url(base_path: &str, reason: EndReason) -> String {
    format!("{base_path}{PREFIX}ended?reason={}", reason.as_str())
}

/// URL of the "session ended" page whose "Start a new session" returns to `page` (a path
/// and query of the app; anything else is left out).
pub fn ended_url_returning(base_path: &str, reason: EndReason, page: Option<&str>) -> String {
    let url = ended_url(base_path, reason);
    match page.filter(|page| is_app_path(base_path, page)) {
        Some(page) => {
            let query = serde_urlencoded::to_string([("return", page)]).unwrap_or_default();
            format!("{url}&{query}")
        }
        None => url,
    }
}

/// The router for `<base>/_idlegate/*`.
pub fn router(state: RouteState) -> Router {
    let prefix = format!("{}{PREFIX}", state.base_path);
    Router::new()
        .route(&format!("{prefix}healthz"), get(healthz))
        .route(&format!("{prefix}readyz"), get(readyz))
        .route(&format!("{prefix}ended"), get(ended))
        .route(&format!("{prefix}client.js"), get(script))
        .route(&format!("{prefix}refused"), get(refused))
        .route(
            &format!("{prefix}login"),
            get(auth_routes::sign_in_form).post(auth_routes::sign_in),
        )
        .route(
            &format!("{prefix}oidc/callback"),
            get(auth_routes::oidc_callback),
        )
        .route(
            &format!("{prefix}logout"),
            get(auth_routes::sign_out_form).post(auth_routes::sign_out),
        )
        .route(
            &format!("{prefix}{}", tab_api::PATH),
            axum::routing::post(tab_api::report),
        )
        .fallback(not_found)
        .with_state(Arc::new(state))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<RouteState>>) -> (StatusCode, String) {
    let uri = format!("http://{}{}", state.upstream.authority(), state.health_path);
    let request = match axum::http::Request::get(uri).body(Body::empty()) {
        Ok(request) => request,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("not ready: {e}\n"),
            )
        }
    };
    match tokio::time::timeout(READY_TIMEOUT, state.client.request(request)).await {
        Ok(Ok(response)) if response.status().is_success() => (StatusCode::OK, "ready\n".into()),
        Ok(Ok(response)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: the app's health check answered {}\n",
                response.status()
            ),
        ),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: cannot reach the app: {e}\n"),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the app's health check timed out\n".into(),
        ),
    }
}

async fn refused(State(state): State<Arc<RouteState>>) -> Response {
    let limit = state.policy.max_per_user.unwrap_or_default();
    let reload = format!("{}/", state.base_path);
    uncached(
        StatusCode::OK,
        "text/html; charset=utf-8",
        pages::refused_page(&state.texts, limit, &reload),
    )
}

async fn script(State(state): State<Arc<RouteState>>, headers: HeaderMap) -> Response {
    state.script.respond(&headers)
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
            let mut response = uncached(
                StatusCode::SEE_OTHER,
                "text/plain; charset=utf-8",
                String::new(),
            );
            if let Ok(location) = HeaderValue::from_str(&to) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            return response;
        }
    }
    let html = pages::ended_page(reason, &state.policy, &state.texts, &restart);
    uncached(StatusCode::OK, "text/html; charset=utf-8", html)
}

/// A response of idlegate's own that no cache may keep.
pub fn uncached(code: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = (code, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Whether `path` is a page of the app on this host: an absolute path under the base path,
/// not idlegate's own, and nothing a browser could read as another host.
pub fn is_app_path(base_path: &str, path: &str) -> bool {
    let Some(rest) = path.strip_prefix(base_path) else {
        return false;
    };
    rest.starts_with('/')
        && !path.starts_with("//")
        && !rest.starts_with(PREFIX)
        && !path
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found\n")
}

#[cfg(test)]
mod tests {
    use super::is_app_path;

    #[test]
    fn only_app_paths_on_this_host_are_returned_to() {
        assert!(is_app_path("", "/"));
        assert!(is_app_path("", "/page_two?x=1"));
        assert!(is_app_path("/base", "/base/page"));
        for bad in [
            "//evil.example",
            "https://evil.example",
            "https:evil",
            "/\\evil.example",
            "/a\tb",
            "evil",
            "",
            "/_idlegate/ended",
        ] {
            assert!(!is_app_path("", bad), "{bad}");
        }
        assert!(!is_app_path("/base", "/other"));
        assert!(!is_app_path("/base", "/basement"));
        assert!(!is_app_path("/base", "/base/_idlegate/ended"));
    }

    proptest::proptest! {
        #[test]
        fn an_accepted_return_path_never_leaves_the_app(path in "\\PC{0,40}", base in "(|/app)") {
            if is_app_path(&base, &path) {
                let expected_prefix = format!("{base}/");
                proptest::prop_assert!(path.starts_with(&expected_prefix));
                proptest::prop_assert!(!path.starts_with("//"));
                proptest::prop_assert!(!path.contains('\\'));
                proptest::prop_assert!(!path.chars().any(char::is_control));
            }
        }
    }
}
