//! Signing in: `<base>/_idlegate/login` (the form and its POST, or off to the OpenID provider)
//! and `<base>/_idlegate/oidc/callback`.
//!
//! POSTs must come from a page of this site (`Origin` or `Sec-Fetch-Site`, required
//! here, not just checked when present). Sign-in attempts are limited per client address,
//! and failures per username, by the rule of [`crate::limits::sign_in`]; fields over their
//! length ([`crate::limits::keys`]) get 400 before any other work, and a wrong username and a
//! wrong password get the same answer in the same time. After signing in, the person goes back to the app page they asked for: only a path of
//! the app on this host, never another site.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;

use super::RouteState;
use crate::auth::oidc::OidcError;
use crate::auth::Identity;
use crate::config::login::Reauthenticate;
use crate::csrf::{require_same_origin, Authority};
use crate::error::chain;
use crate::limits::keys::check_form;
use crate::limits::work::Busy;
use crate::limits::Limit;
use crate::pages;
use crate::redact::{self, short_hash};
use crate::web::{self, cookies, html, is_app_path, see_other, Scheme, PREFIX};

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

/// The longest return path kept, in bytes; a longer one goes to the app's root. Bounds the
/// attempt cookie (which must stay under browsers' 4 KiB) and the sign-in form.
pub const MAX_RETURN_PATH: usize = 2048;

/// Where to go after signing in: the requested app page (a path of the app on this host, at
/// most [`MAX_RETURN_PATH`] bytes), or the app's root.
fn destination(state: &RouteState, return_to: Option<&str>) -> String {
    return_to
        .filter(|path| path.len() <= MAX_RETURN_PATH && is_app_path(&state.base_path, path))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}/", state.base_path))
}

/// `GET <base>/_idlegate/login`: the form, or (OpenID mode) off to the provider.
pub async fn sign_in_form(
    State(state): State<Arc<RouteState>>,
    Query(query): Query<SignInQuery>,
    Extension(scheme): Extension<Scheme>,
    Extension(authority): Extension<Authority>,
    headers: HeaderMap,
) -> Response {
    let to = destination(&state, query.return_to.as_deref());
    if let (Some(_), true) = (&state.auth.oidc, query.signed_out.is_some()) {
        // Going straight back to the provider would sign the person in again at once.
        return html(
            StatusCode::OK,
            pages::signed_out_page(
                &state.texts.load(),
                &format!("{}&reauth=1", web::sign_in_url(&state.base_path, &to)),
            ),
        );
    }
    if state.auth.oidc.is_some() && !state.auth.sign_ins_open() {
        return unavailable(&state.texts.load().sign_in_unavailable);
    }
    if let Some(oidc) = &state.auth.oidc {
        if query
            .return_to
            .as_ref()
            .is_some_and(|r| r.len() > MAX_RETURN_PATH)
        {
            let counters = oidc.counters();
            counters.hit(&counters.return_path_cut, "oidc_return_path_cut");
        }
        let redirect = oidc
            .redirect_url()
            .map(str::to_owned)
            .unwrap_or_else(|| callback_url(&state, scheme, &authority));
        let reauthenticate = match oidc.reauthenticate() {
            Reauthenticate::Always => true,
            Reauthenticate::Never => false,
            Reauthenticate::AfterSignOut => {
                query.reauth.is_some() || state.auth.login_ended(&headers)
            }
        };
        return match oidc.start(&redirect, &to, reauthenticate).await {
            Ok((url, attempt)) => see_other(&url, [attempt_cookie(&state, Some(&attempt))]),
            Err(e) if e.is_provider_unreachable() => {
                warn_oidc("cannot start an OpenID sign-in", &e);
                oidc.forget_provider();
                failure_page(&state, StatusCode::BAD_GATEWAY, &chain(&e), &to)
            }
            Err(e) => {
                warn_oidc("refused to start an OpenID sign-in", &e);
                failure_page(&state, StatusCode::BAD_REQUEST, &chain(&e), &to)
            }
        };
    }
    if !state.auth.has_form() {
        return web::text(StatusCode::NOT_FOUND, "not found");
    }
    let texts = state.texts.load();
    let message = query
        .signed_out
        .is_some()
        .then_some(texts.signed_out.as_str());
    html(
        StatusCode::OK,
        pages::sign_in_page(&texts, &action(&state, "login"), &to, message),
    )
}

/// `POST <base>/_idlegate/login`.
pub async fn sign_in(
    State(state): State<Arc<RouteState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(authority): Extension<Authority>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = &state.auth;
    let Some(users) = auth.users.as_ref() else {
        return web::text(StatusCode::NOT_FOUND, "not found");
    };
    if let Err(refusal) = require_same_origin(&headers, &authority) {
        return web::text(StatusCode::FORBIDDEN, &refusal.to_string());
    }
    let Ok(form) = serde_urlencoded::from_bytes::<SignInForm>(&body) else {
        return web::text(StatusCode::BAD_REQUEST, "expected username and password");
    };
    if let Err(too_long) = check_form(&form.username, &form.password) {
        auth.bounds.hit(Limit::SignInForm);
        return web::text(StatusCode::BAD_REQUEST, &too_long.to_string());
    }
    if !auth.sign_ins_open() {
        return unavailable(&state.texts.load().sign_in_unavailable);
    }
    let to = destination(&state, form.return_to.as_deref());
    let form_page = |code, message: &str| {
        html(
            code,
            pages::sign_in_page(
                &state.texts.load(),
                &action(&state, "login"),
                &to,
                Some(message),
            ),
        )
    };
    if auth.config.login.cookie_secure && crate::csrf::from_plain_http_page(&headers) {
        tracing::warn!(
            "a sign-in came from a page opened over plain HTTP: the browser would drop the \
             Secure login cookie; serve idlegate over HTTPS (login.cookie_secure)"
        );
        return form_page(
            StatusCode::BAD_REQUEST,
            &state.texts.load().sign_in_needs_https,
        );
    }
    let user = form.username.trim();
    if let Err(refusal) = auth.attempt_allowed(peer, user) {
        tracing::info!(client = %peer.ip(), ?refusal, "sign-in attempts over the limit");
        return form_page(
            StatusCode::TOO_MANY_REQUESTS,
            &state.texts.load().sign_in_limited,
        );
    }
    match users.check(user, &form.password).await {
        Ok(true) => {}
        Ok(false) => {
            auth.attempt_failed(peer, user);
            tracing::info!(client = %peer.ip(), "sign-in refused");
            return form_page(StatusCode::UNAUTHORIZED, &state.texts.load().sign_in_failed);
        }
        Err(Busy) => return busy(),
    }
    let login = auth.sign_in(Identity {
        user: user.to_owned(),
        name: None,
        email: user.contains('@').then(|| user.to_owned()),
        groups: Vec::new(),
    });
    tracing::info!(user = %short_hash(user), "signed in");
    see_other(&to, [auth.cookie.set(login.id())])
}

/// How long a browser refused a sign-in while the shared store is away is told to wait
/// (`Retry-After`), in seconds.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u32 = 10;

/// 503 with `Retry-After`: no sign-in while the shared store cannot be reached
/// (`store.on_unavailable = "refuse"`), saying `text`.
pub fn unavailable(text: &str) -> Response {
    let mut response = html(
        StatusCode::SERVICE_UNAVAILABLE,
        pages::sign_in_unavailable_page(text),
    );
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS),
    );
    response
}

/// 503 with `Retry-After` (RFC 9110 §10.2.3): too many password checks at once.
fn busy() -> Response {
    let mut response = web::text(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many sign-ins at once; try again in a few seconds",
    );
    let retry = crate::limits::PASSWORD_CHECK_WAIT.as_secs().max(1);
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from(retry));
    response
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Name of the cookie that holds an OpenID sign-in under way, in the browser that started
/// it (signed; see `auth::oidc::attempt`).
const ATTEMPT_COOKIE: &str = "idlegate-oidc";

/// `Set-Cookie` for the attempt cookie, or (`None`) its removal. Scoped to the callback's
/// path, so no other request carries it.
fn attempt_cookie(state: &RouteState, attempt: Option<&str>) -> HeaderValue {
    let secure = state.auth.config.login.cookie_secure;
    let path = action(state, "oidc/");
    match attempt {
        Some(attempt) => cookies::set(
            ATTEMPT_COOKIE,
            attempt,
            &path,
            Some(crate::auth::oidc::ATTEMPT_TTL),
            secure,
        ),
        None => cookies::removal(ATTEMPT_COOKIE, &path, secure),
    }
}

/// `<scheme>://<authority><base>/_idlegate/oidc/callback` for this request.
fn callback_url(state: &RouteState, scheme: Scheme, authority: &Authority) -> String {
    let host = authority.host.as_deref().unwrap_or("localhost");
    format!("{}://{host}{}", scheme.0, action(state, "oidc/callback"))
}

/// Logs an OpenID sign-in's failure. A redirect URL is made from the request's authority,
/// which the client chose, so it is logged as a bounded value ([`redact::client_value`]).
fn warn_oidc(what: &'static str, e: &OidcError) {
    match e {
        OidcError::RedirectUrl(url) => tracing::warn!(
            redirect = %redact::client_value(url, &[]),
            "{what}: the redirect URL is not valid"
        ),
        _ => tracing::warn!(error = %chain(e), "{what}"),
    }
}

fn failure_page(state: &RouteState, code: StatusCode, message: &str, to: &str) -> Response {
    html(
        code,
        pages::sign_in_failed_page(
            &state.texts.load(),
            message,
            &web::sign_in_url(&state.base_path, to),
        ),
    )
}

/// `GET <base>/_idlegate/oidc/callback`: the provider sends the browser back here.
pub async fn oidc_callback(
    State(state): State<Arc<RouteState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Query(query): Query<CallbackQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(oidc) = &state.auth.oidc else {
        return web::text(StatusCode::NOT_FOUND, "not found");
    };
    let home = format!("{}/", state.base_path);
    if let Some(error) = &query.error {
        let detail = query.error_description.as_deref().unwrap_or(error);
        tracing::info!(
            error = %redact::client_value(error, redact::OAUTH_ERRORS),
            "the OpenID provider refused a sign-in"
        );
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
    let cookie = cookies::find(&headers, ATTEMPT_COOKIE);
    match oidc.finish(attempt, cookie, code).await {
        Ok(_) if !state.auth.sign_ins_open() => {
            unavailable(&state.texts.load().sign_in_unavailable)
        }
        Ok((identity, to)) => {
            let to = destination(&state, Some(&to));
            let user = identity.user.clone();
            let login = state.auth.sign_in(identity);
            tracing::info!(user = %short_hash(&user), "signed in");
            see_other(
                &to,
                [
                    state.auth.cookie.set(login.id()),
                    attempt_cookie(&state, None),
                ],
            )
        }
        Err(e) => {
            warn_oidc("OpenID sign-in failed", &e);
            state.auth.sign_in_failed(client.ip(), None, "oidc");
            failure_page(&state, StatusCode::FORBIDDEN, &chain(&e), &home)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_attempt_cookie_is_idlegate_s_own_and_never_reaches_the_app() {
        assert!(crate::web::cookies::is_own(
            super::ATTEMPT_COOKIE.as_bytes()
        ));
    }
}
