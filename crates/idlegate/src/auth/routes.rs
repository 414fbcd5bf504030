//! Sign-in and sign-out pages: `<base>/_idlegate/login` and `<base>/_idlegate/logout`.
//!
//! Both POSTs must come from a page of this site (`Origin` or `Sec-Fetch-Site`, required
//! here, not just checked when present). Sign-in attempts are rate-limited per client address
//! and per username, and a wrong username and a wrong password get the same answer in the same
//! time. After signing in, the person goes back to the app page they asked for: only a path of
//! the app on this host, never another site.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Extension, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;

use super::{cookie, Auth, Identity};
use crate::config::login::Reauthenticate;
use crate::csrf::require_same_origin;
use crate::pages;
use crate::proxy::headers::Scheme;
use crate::redact::short_hash;
use crate::routes::{is_app_path, uncached, RouteState, PREFIX};
use crate::tracker::{EndReason, Tracker};

#[derive(Deserialize)]
pub struct SignInQuery {
    #[serde(rename = "return")]
    return_to: Option<String>,
    signed_out: Option<String>,
    /// The person signed out: the provider must authenticate them again.
    reauth: Option<String>,
}

#[derive(Deserialize)]
struct SignInForm {
    username: String,
    password: String,
    #[serde(rename = "return")]
    return_to: Option<String>,
}

fn action(state: &RouteState, name: &str) -> String {
    format!("{}{PREFIX}{name}", state.base_path)
}

/// Where to go after signing in: the requested app page, or the app's root.
fn destination(state: &RouteState, return_to: Option<&str>) -> String {
    return_to
        .filter(|path| is_app_path(&state.base_path, path))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}/", state.base_path))
}

fn html(code: StatusCode, body: String) -> Response {
    uncached(code, "text/html; charset=utf-8", body)
}

fn see_other(to: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(to) {
        headers.insert(header::LOCATION, location);
    }
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET <base>/_idlegate/login`: the form, or (OpenID mode) off to the provider.
pub async fn sign_in_form(
    State(state): State<Arc<RouteState>>,
    Query(query): Query<SignInQuery>,
    Extension(scheme): Extension<Scheme>,
    headers: HeaderMap,
) -> Response {
    let to = destination(&state, query.return_to.as_deref());
    if let (Some(_), true) = (&state.auth.oidc, query.signed_out.is_some()) {
        // Going straight back to the provider would sign the person in again at once.
        return html(
            StatusCode::OK,
            pages::signed_out_page(
                &state.texts,
                &format!(
                    "{}&reauth=1",
                    crate::routes::sign_in_url(&state.base_path, &to)
                ),
            ),
        );
    }
    if let Some(oidc) = &state.auth.oidc {
        let redirect = oidc
            .redirect_url()
            .map(str::to_owned)
            .unwrap_or_else(|| callback_url(&state, scheme, &headers));
        let reauthenticate = match oidc.reauthenticate() {
            Reauthenticate::Always => true,
            Reauthenticate::Never => false,
            Reauthenticate::AfterSignOut => {
                query.reauth.is_some() || state.auth.login_ended(&headers)
            }
        };
        return match oidc.start(&redirect, &to, reauthenticate).await {
            Ok((url, attempt)) => see_other(&url, &[attempt_cookie(&state, &attempt, false)]),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start an OpenID sign-in");
                oidc.forget_provider().await;
                failure_page(&state, StatusCode::BAD_GATEWAY, &e.to_string(), &to)
            }
        };
    }
    if !state.auth.has_form() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let message = query
        .signed_out
        .is_some()
        .then_some(state.texts.signed_out.as_str());
    html(
        StatusCode::OK,
        pages::sign_in_page(&state.texts, &action(&state, "login"), &to, message),
    )
}

/// `POST <base>/_idlegate/login`.
pub async fn sign_in(
    State(state): State<Arc<RouteState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = &state.auth;
    let Some(users) = auth.users.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Err(refusal) = require_same_origin(&headers) {
        return (StatusCode::FORBIDDEN, format!("{refusal}\n")).into_response();
    }
    let Ok(form) = serde_urlencoded::from_bytes::<SignInForm>(&body) else {
        return (StatusCode::BAD_REQUEST, "expected username and password\n").into_response();
    };
    let to = destination(&state, form.return_to.as_deref());
    let form_page = |code, message: &str| {
        html(
            code,
            pages::sign_in_page(&state.texts, &action(&state, "login"), &to, Some(message)),
        )
    };
    let user = form.username.trim();
    if !auth.attempt_allowed(peer, user) {
        tracing::warn!(client = %peer.ip(), "sign-in attempts over the limit");
        return form_page(StatusCode::TOO_MANY_REQUESTS, &state.texts.sign_in_limited);
    }
    if !users.check(user, &form.password).await {
        tracing::info!(client = %peer.ip(), "sign-in refused");
        return form_page(StatusCode::UNAUTHORIZED, &state.texts.sign_in_failed);
    }
    let login = auth.sign_in(Identity {
        user: user.to_owned(),
        email: user.contains('@').then(|| user.to_owned()),
        groups: Vec::new(),
    });
    tracing::info!(user = %short_hash(user), "signed in");
    see_other(&to, &[auth.cookie.set(login.id())])
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Name of the cookie that ties an OpenID sign-in to the browser that started it.
const ATTEMPT_COOKIE: &str = "idlegate-oidc";

fn attempt_cookie(state: &RouteState, attempt: &str, clear: bool) -> String {
    let secure = if state.auth.config.login.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    let age = if clear {
        0
    } else {
        crate::auth::oidc::ATTEMPT_TTL.as_secs()
    };
    format!(
        "{ATTEMPT_COOKIE}={attempt}; Path={}; Max-Age={age}; HttpOnly; SameSite=Lax{secure}",
        action(state, "oidc/")
    )
}

/// `<scheme>://<host><base>/_idlegate/oidc/callback` for this request.
fn callback_url(state: &RouteState, scheme: Scheme, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("{}://{host}{}", scheme.0, action(state, "oidc/callback"))
}

fn failure_page(state: &RouteState, code: StatusCode, message: &str, to: &str) -> Response {
    html(
        code,
        pages::sign_in_failed_page(
            &state.texts,
            message,
            &crate::routes::sign_in_url(&state.base_path, to),
        ),
    )
}

/// `GET <base>/_idlegate/oidc/callback`: the provider sends the browser back here.
pub async fn oidc_callback(
    State(state): State<Arc<RouteState>>,
    Query(query): Query<CallbackQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(oidc) = &state.auth.oidc else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let home = format!("{}/", state.base_path);
    if let Some(error) = &query.error {
        let detail = query.error_description.as_deref().unwrap_or(error);
        tracing::info!(error, "the OpenID provider refused a sign-in");
        return failure_page(&state, StatusCode::FORBIDDEN, detail, &home);
    }
    let (Some(code), Some(attempt)) = (&query.code, &query.state) else {
        return failure_page(
            &state,
            StatusCode::BAD_REQUEST,
            "the provider's answer lacks code or state",
            &home,
        );
    };
    let cookie_state = cookie::cookies(&headers)
        .find(|(name, _)| *name == ATTEMPT_COOKIE)
        .map(|(_, value)| value);
    match oidc.finish(attempt, cookie_state, code).await {
        Ok((identity, to)) => {
            let to = destination(&state, Some(&to));
            let user = identity.user.clone();
            let login = state.auth.sign_in(identity);
            tracing::info!(user = %short_hash(&user), "signed in");
            see_other(
                &to,
                &[
                    state.auth.cookie.set(login.id()),
                    attempt_cookie(&state, "", true),
                ],
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "OpenID sign-in failed");
            failure_page(&state, StatusCode::FORBIDDEN, &e.to_string(), &home)
        }
    }
}

/// `GET <base>/_idlegate/logout`: a page with the sign-out button, for apps to link to.
pub async fn sign_out_form(State(state): State<Arc<RouteState>>) -> Response {
    if !state.auth.enabled() {
        return StatusCode::NOT_FOUND.into_response();
    }
    html(
        StatusCode::OK,
        pages::sign_out_page(&state.texts, &action(&state, "logout")),
    )
}

/// `POST <base>/_idlegate/logout`: ends every login and tab of the person, and clears
/// idlegate's and Streamlit's own sign-in cookies.
pub async fn sign_out(State(state): State<Arc<RouteState>>, headers: HeaderMap) -> Response {
    if !state.auth.enabled() {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Err(refusal) = require_same_origin(&headers) {
        return (StatusCode::FORBIDDEN, format!("{refusal}\n")).into_response();
    }
    sign_out_everywhere(&state.auth, &state.tracker, &state.base_path, &headers)
}

/// Signs the person whose login `headers` carry out of every login and tab, clears
/// idlegate's and Streamlit's own sign-in cookies, and sends the browser on: to the sign-in
/// page (saying they signed out), or in header mode to the proxy's sign-out URL when one is
/// set. The caller has checked that the request comes from a page of this site.
pub fn sign_out_everywhere(
    auth: &Auth,
    tracker: &Tracker,
    base_path: &str,
    headers: &HeaderMap,
) -> Response {
    let login = auth
        .cookie
        .from_request(headers)
        .and_then(|id| auth.live(&id));
    if let Some(login) = login {
        let user = login.identity.user.clone();
        let logins = auth.sign_out_user(&user);
        let tabs = tracker.end_user(&user, EndReason::Logout);
        tracing::info!(user = %short_hash(&user), logins, tabs, "signed out");
    }
    let mut cookies = vec![auth.cookie.clear()];
    cookies.extend(streamlit_cookie_removals(headers, base_path));
    let to = if auth.signs_in_here() {
        format!("{base_path}{PREFIX}login?signed_out=1")
    } else if let Some(url) = &auth.config.login.sign_out_url {
        url.clone()
    } else {
        format!("{base_path}/")
    };
    see_other(&to, &cookies)
}

/// The app's own sign-out (Streamlit's `st.logout()` sends the page to `<base>/auth/logout`)
/// signs the person out of idlegate too. Only a page of this site may do it; a link from
/// elsewhere gets the page with the sign-out button instead.
pub fn app_sign_out(
    auth: &Auth,
    tracker: &Tracker,
    base_path: &str,
    headers: &HeaderMap,
) -> Response {
    let same_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site == "same-origin" || site == "none");
    if same_site || require_same_origin(headers).is_ok() {
        return sign_out_everywhere(auth, tracker, base_path, headers);
    }
    html(
        StatusCode::OK,
        pages::sign_out_page(
            &auth.config.browser.texts,
            &format!("{base_path}{PREFIX}logout"),
        ),
    )
}

/// `Set-Cookie`s that delete Streamlit's own sign-in cookies (`_streamlit_user`, its tokens
/// and their numbered chunks) at the app's path and at `/`.
fn streamlit_cookie_removals(headers: &HeaderMap, base_path: &str) -> Vec<String> {
    let mut names: Vec<String> = vec!["_streamlit_user".into(), "_streamlit_user_tokens".into()];
    for (name, _) in cookie::cookies(headers) {
        if name.starts_with("_streamlit_user") && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    let mut paths = vec!["/".to_owned()];
    if !base_path.is_empty() {
        paths.push(base_path.to_owned());
    }
    names
        .iter()
        .flat_map(|name| {
            paths
                .iter()
                .map(move |path| format!("{name}=; Max-Age=0; Path={path}; HttpOnly; SameSite=Lax"))
        })
        .collect()
}
