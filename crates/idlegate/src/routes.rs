//! idlegate's own routes, under `<base>/_idlegate/`: health, readiness and the
//! "session ended" page.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::config::{TabPolicy, Upstream};
use crate::pages;
use crate::proxy::{Body, UpstreamClient};
use crate::tracker::EndReason;

/// Path prefix of idlegate's routes, after the app's base path.
pub const PREFIX: &str = "/_idlegate/";

/// How long readiness waits for the app's health check.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the routes need.
pub struct RouteState {
    pub client: UpstreamClient,
    pub upstream: Upstream,
    pub health_path: String,
    pub policy: TabPolicy,
    pub base_path: String,
}

/// URL of the "session ended" page.
pub fn ended_url(base_path: &str, reason: EndReason) -> String {
    format!("{base_path}{PREFIX}ended?reason={}", reason.as_str())
}

/// The router for `<base>/_idlegate/*`.
pub fn router(state: RouteState) -> Router {
    let prefix = format!("{}{PREFIX}", state.base_path);
    Router::new()
        .route(&format!("{prefix}healthz"), get(healthz))
        .route(&format!("{prefix}readyz"), get(readyz))
        .route(&format!("{prefix}ended"), get(ended))
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

#[derive(Deserialize)]
struct EndedQuery {
    reason: Option<String>,
}

async fn ended(State(state): State<Arc<RouteState>>, Query(query): Query<EndedQuery>) -> Response {
    let reason = query.reason.and_then(|name| EndReason::from_name(&name));
    let restart = format!("{}/", state.base_path);
    let html = pages::ended_page(reason, &state.policy, &restart);
    let mut response = html.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found\n")
}
