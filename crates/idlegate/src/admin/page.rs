//! The admin page in the browser: a token form, then a page that reads the API every two
//! seconds (its script and style are files of this listener: no external assets, under a
//! strict Content-Security-Policy). After the form, the browser holds a same-site, HTTP-only
//! cookie naming a server-side admin session (8 hours, at most [`MAX_SESSIONS`]); requests
//! that change something with that cookie must come from this listener's own page (`Origin`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::{caller, AdminState};

/// The admin session cookie.
pub const COOKIE: &str = "idlegate-admin";
/// How long an admin session lasts.
const SESSION: Duration = Duration::from_secs(8 * 3600);
/// Admin sessions at once; the oldest goes first.
pub const MAX_SESSIONS: usize = 64;

const PAGE: &str = include_str!("assets/page.html");
const SCRIPT: &str = include_str!("assets/admin.js");
const STYLE: &str = include_str!("assets/admin.css");
/// Only this listener's own script, style and API.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
    img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Admin sessions of browsers that gave a token, by the SHA-256 of their cookie's value.
#[derive(Default)]
pub struct Sessions {
    by_digest: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

impl Sessions {
    /// A new session for `caller`; returns the cookie's value (256 random bits, hex).
    fn start(&self, caller: &str) -> String {
        let mut id = [0u8; 32];
        rand::rng().fill_bytes(&mut id);
        let value: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut sessions = self.by_digest.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, (_, until)| *until > now);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, (_, until))| *until)
                .map(|(k, _)| *k)
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            Sha256::digest(value.as_bytes()).into(),
            (caller.to_owned(), now + SESSION),
        );
        value
    }

    /// The caller of the session the request's cookie names, if it is live.
    pub fn caller(&self, headers: &HeaderMap) -> Option<String> {
        let value = crate::web::cookies::find(headers, COOKIE)?;
        let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        let sessions = self.by_digest.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .get(&digest)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(caller, _)| caller.clone())
    }

    fn end(&self, headers: &HeaderMap) {
        if let Some(value) = crate::web::cookies::find(headers, COOKIE) {
            let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
            let mut sessions = self.by_digest.lock().unwrap_or_else(|p| p.into_inner());
            sessions.remove(&digest);
        }
    }
}

/// Whether a request comes from this listener's own page (its `Origin` names the authority
/// it was sent to), as a cookie-authenticated change must.
pub fn from_own_page(headers: &HeaderMap) -> bool {
    let authority = crate::csrf::Authority {
        host: headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        https: false,
    };
    crate::csrf::require_same_origin(headers, &authority).is_ok()
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // Not `no-referrer`: with it a browser sends `Origin: null` on the form's POST.
            (header::REFERRER_POLICY, "same-origin"),
        ],
        body,
    )
        .into_response()
}

fn token_form(status: StatusCode, error: Option<&str>) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{e}</p>"))
        .unwrap_or_default();
    html(
        status,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>idlegate admin: sign in</title><link rel=\"stylesheet\" href=\"/admin.css\">\
             </head><body><main><h1>idlegate admin</h1>{error}\
             <form class=\"token\" method=\"post\" action=\"/login\">\
             <label for=\"token\">Admin token (a line of <code>admin.tokens_file</code>, after the name)</label>\
             <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required autofocus>\
             <button type=\"submit\">Sign in</button></form></main></body></html>"
        ),
    )
}

/// `GET /`: the page for a browser with an admin session, else the token form.
pub async fn index(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    match state.sessions.caller(&headers) {
        Some(_) => html(StatusCode::OK, PAGE.to_owned()),
        None => token_form(StatusCode::OK, None),
    }
}

#[derive(Deserialize)]
pub struct TokenForm {
    token: String,
}

/// `POST /login`: a token from the form starts an admin session.
pub async fn login(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    if !from_own_page(&headers) {
        return token_form(StatusCode::FORBIDDEN, Some("Sign in from this page."));
    }
    let Some(name) = caller(&state.tokens.load(), form.token.trim()) else {
        return token_form(
            StatusCode::UNAUTHORIZED,
            Some("That is not an admin token."),
        );
    };
    let value = state.sessions.start(&name);
    let cookie = format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION.as_secs()
    );
    see_other(cookie)
}

/// `POST /logout`: ends the browser's admin session.
pub async fn logout(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    if from_own_page(&headers) {
        state.sessions.end(&headers);
    }
    see_other(format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    ))
}

fn see_other(cookie: String) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}
