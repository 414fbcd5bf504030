//! Requests as a browser makes them to idlegate's own routes: any request with headers,
//! and the sign-in form's POST with the login cookie it sets.

use anyhow::Result;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;

use crate::http::{send, Response};

/// Sends `method` to `url` with these headers and body.
pub async fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Response> {
    let mut req = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    send(req.body(Full::new(Bytes::from(body.to_owned())))?).await
}

/// Posts the sign-in form at `base_url` (idlegate's address) as its page does: same origin,
/// `username`, `password` and the page to return to.
pub async fn post_sign_in(
    base_url: &str,
    user: &str,
    password: &str,
    return_to: &str,
) -> Result<Response> {
    let body = serde_urlencoded::to_string([
        ("username", user),
        ("password", password),
        ("return", return_to),
    ])?;
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("origin", base_url),
        ("sec-fetch-site", "same-origin"),
    ];
    let url = format!("{base_url}/_idlegate/login");
    request(Method::POST, &url, &headers, &body).await
}

/// The `name=value` of the login cookie a response set (named `__Host-idlegate-login`, or
/// `idlegate-login` when `login.cookie_secure` is off).
pub fn login_cookie(response: &Response) -> Option<String> {
    response
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("__Host-idlegate-login=") || c.starts_with("idlegate-login="))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}
