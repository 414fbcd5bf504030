//! idlegate's own responses, and the one mapping from a failed request to its answer, for
//! idlegate's routes and the proxied path alike: every response idlegate makes itself is
//! `Cache-Control: no-store` (it is about one browser's session, never to be cached).

use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{HeaderValue, Response, StatusCode};

use super::Body;
use crate::error::{chain, ProxyError};
use crate::pages;
use crate::redact;

/// The form a failure is told in, as the requester can show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A page, for a person's browser.
    Page,
    /// `{"message": …}`, for a page's own request that shows its body (the app's health
    /// poll).
    Json,
    /// One line of text, for everything else.
    Text,
}

/// A response of idlegate's own that no cache may keep.
pub fn uncached(code: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = code;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An HTML page of idlegate's.
pub fn html(code: StatusCode, body: String) -> Response<Body> {
    uncached(code, "text/html; charset=utf-8", body)
}

/// A line of text (a newline is added).
pub fn text(code: StatusCode, line: &str) -> Response<Body> {
    uncached(code, "text/plain; charset=utf-8", format!("{line}\n"))
}

/// `{"message": …}`.
pub fn json_message(code: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "message": message }).to_string();
    uncached(code, "application/json", body)
}

/// `303 See Other` to `to`, setting `cookies` (`Set-Cookie` values) on the way.
pub fn see_other(to: &str, cookies: impl IntoIterator<Item = HeaderValue>) -> Response<Body> {
    let mut response = uncached(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        String::new(),
    );
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(to) {
        headers.insert(LOCATION, location);
    }
    for cookie in cookies {
        headers.append(SET_COOKIE, cookie);
    }
    response
}

/// The answer to a request that failed, in `form`, logged once with where the fault is
/// (the app, the request, or idlegate). `path` is only for the log, where its ids are
/// replaced ([`redact::path`]).
pub fn error_response(error: &ProxyError, path: &str, form: Form) -> Response<Body> {
    let fault = error.fault();
    let path = redact::path(path);
    tracing::warn!(%fault, path, error = %chain(error), "request failed");
    let detail = if error.is_unreachable() {
        "idlegate cannot reach the app.".to_owned()
    } else {
        error.to_string()
    };
    let code = error.status();
    match form {
        // The page shows a JSON body of a failed health poll in its connection dialog.
        Form::Json => json_message(
            code,
            &format!(
                "{detail} It may be starting or restarting; this page keeps trying to reconnect."
            ),
        ),
        Form::Page => html(code, pages::unavailable_page(&detail)),
        Form::Text => text(code, &detail),
    }
}
