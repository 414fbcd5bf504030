//! The page script's API: `<base>/_idlegate/tab/{token}`.
//!
//! - `GET` answers the tab's state: `200 {"state":"open","endsInMs":…,"reason":…,
//!   "extendable":…,"hidden":…,"busy":…}`, `410 {"state":"ended","reason":…,"endedUrl":…}` or
//!   `404 {"state":"unknown"}`.
//! - `POST` with `{"event":"activity"|"hidden"|"visible"}` reports first, then answers the
//!   same way. The browser must say it comes from a page of this site ([`crate::csrf`]),
//!   and send JSON, which a cross-site form cannot send without the browser asking first.
//!
//! Reports only ever concern the tab whose page holds the token; an unknown or ended token
//! changes nothing.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::is_token;
use crate::csrf::require_same_origin;
use crate::routes::{ended_url, uncached, RouteState};
use crate::tracker::{TabReport, TabStatus};

/// Path of the API under `<base>/_idlegate/`; the token follows.
pub const PATH: &str = "tab/";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    event: Event,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Event {
    Activity,
    Hidden,
    Visible,
}

/// `GET <base>/_idlegate/tab/{token}`.
pub async fn status(State(state): State<Arc<RouteState>>, Path(token): Path<String>) -> Response {
    answer(&state, &token, TabReport::Check)
}

/// `POST <base>/_idlegate/tab/{token}`.
pub async fn report(
    State(state): State<Arc<RouteState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = require_same_origin(&headers) {
        return error(StatusCode::FORBIDDEN, &refusal.to_string());
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the report as application/json",
        );
    }
    let body: ReportBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad report: {e}")),
    };
    let report = match body.event {
        Event::Activity => TabReport::Activity,
        Event::Hidden => TabReport::Hidden,
        Event::Visible => TabReport::Visible,
    };
    answer(&state, &token, report)
}

fn answer(state: &RouteState, token: &str, report: TabReport) -> Response {
    let status = if is_token(token) {
        state.tracker.report(token, report)
    } else {
        TabStatus::Unknown
    };
    let (code, body) = match status {
        TabStatus::Open {
            ends_in,
            reason,
            extendable,
            hidden,
            busy,
        } => (
            StatusCode::OK,
            json!({
                "state": "open",
                "endsInMs": ends_in.map(|d| d.as_millis() as u64),
                "reason": reason.map(|r| r.as_str()),
                "extendable": extendable,
                "hidden": hidden,
                "busy": busy,
            }),
        ),
        TabStatus::Ended(reason) => (
            StatusCode::GONE,
            json!({
                "state": "ended",
                "reason": reason.as_str(),
                "endedUrl": ended_url(&state.base_path, reason),
            }),
        ),
        TabStatus::Unknown => (StatusCode::NOT_FOUND, json!({ "state": "unknown" })),
    };
    json_response(code, body)
}

fn error(code: StatusCode, message: &str) -> Response {
    json_response(code, json!({ "state": "error", "message": message }))
}

fn json_response(code: StatusCode, body: serde_json::Value) -> Response {
    uncached(code, "application/json", body.to_string())
}
