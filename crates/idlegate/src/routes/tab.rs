//! The page script's API: `POST <base>/_idlegate/tab`.
//!
//! The body is JSON: `{"tab": "<token>", "event": "check"|"activity"|"hidden"|"visible"|
//! "warned"|"kept", "inputAgeMs": n, "humanSendAgesMs": [n, …]}` (`warned`: the page shows
//! the warning; `kept`: its person chose to keep working, which is input too). `inputAgeMs` says how long ago the person's
//! latest input happened (omitted: no input since the last report); `humanSendAgesMs` how long
//! ago the page sent the app a message right after a person's input. The token travels in the
//! body, never in a URL, so no access log records it.
//!
//! The answer is the tab's state: `200 {"state":"open","endsInMs":…,"reason":…,
//! "extendable":…,"hidden":…,"busy":…}`, `410 {"state":"ended","reason":…,"endedUrl":…}`
//! (also for a page lately refused a tab over a limit: `reason` `max_per_user` or
//! `max_total`, `endedUrl` the page that says so) or `404 {"state":"unknown"}` (also for
//! another login's tab). The browser must say it comes
//! from a page of this site ([`crate::csrf`]) and send JSON, which a cross-site form cannot
//! send without the browser asking first; when people sign in, the request must carry the
//! login that opened the tab (`403` without one).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::RouteState;
use crate::csrf::{require_same_origin, Authority};
use crate::tracker::{RefusedLimit, Report, ReportEvent, TabStatus};
use crate::web::{ended_url, uncached, Peer};
use crate::ws::subprotocol::is_token;

/// Ages above this are taken as this: no report speaks of input older than the tab.
const MAX_AGE_MS: u64 = 24 * 3600 * 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ReportBody {
    tab: String,
    #[serde(default)]
    event: Event,
    input_age_ms: Option<u64>,
    #[serde(default)]
    human_send_ages_ms: Vec<u64>,
}

#[derive(Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "lowercase")]
enum Event {
    #[default]
    Check,
    /// Input only; the same as `check` with `inputAgeMs` (0 when omitted).
    Activity,
    Hidden,
    Visible,
    /// The page shows the warning before the end.
    Warned,
    /// The person chose "Keep working" in the warning: input, like `activity`.
    Kept,
}

/// `POST <base>/_idlegate/tab`.
pub async fn report(
    State(state): State<Arc<RouteState>>,
    Extension(Peer(peer)): Extension<Peer>,
    Extension(authority): Extension<Authority>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = require_same_origin(&headers, &authority) {
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
    let Ok(login) = state.auth.login_of(&headers, peer) else {
        return error(StatusCode::FORBIDDEN, "sign in first");
    };
    let age = |ms: u64| Duration::from_millis(ms.min(MAX_AGE_MS));
    let (event, input_age) = match body.event {
        Event::Check => (ReportEvent::None, body.input_age_ms.map(age)),
        Event::Activity => (ReportEvent::None, Some(age(body.input_age_ms.unwrap_or(0)))),
        Event::Hidden => (ReportEvent::Hidden, body.input_age_ms.map(age)),
        Event::Visible => (ReportEvent::Visible, body.input_age_ms.map(age)),
        Event::Warned => (ReportEvent::Warned, body.input_age_ms.map(age)),
        Event::Kept => (
            ReportEvent::KeptWorking,
            Some(age(body.input_age_ms.unwrap_or(0))),
        ),
    };
    let report = Report {
        event,
        input_age,
        human_sends: body.human_send_ages_ms.into_iter().map(age).collect(),
    };
    let status = if is_token(&body.tab) {
        state.tracker.report(&body.tab, login.as_ref(), &report)
    } else {
        TabStatus::Unknown
    };
    answer(&state, status)
}

fn answer(state: &RouteState, status: TabStatus) -> Response {
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
        // Never opened: the page goes to the page that says which limit.
        TabStatus::Refused(limit) => (
            StatusCode::GONE,
            json!({
                "state": "ended",
                "reason": limit.as_str(),
                "endedUrl": match limit {
                    RefusedLimit::PerUser => crate::web::refused_url(&state.base_path),
                    RefusedLimit::Total => crate::web::busy_url(&state.base_path),
                },
            }),
        ),
    };
    json_response(code, body)
}

fn error(code: StatusCode, message: &str) -> Response {
    json_response(code, json!({ "state": "error", "message": message }))
}

fn json_response(code: StatusCode, body: serde_json::Value) -> Response {
    uncached(code, "application/json", body.to_string())
}
