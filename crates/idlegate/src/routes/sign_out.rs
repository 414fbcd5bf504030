//! Signing out: `<base>/_idlegate/logout` (a page with the button, and the POST it sends), and
//! the app's own sign-out route, which signs the person out of idlegate too. Signing out
//! ends every login and tab of the person and clears idlegate's and the app's own sign-in
//! cookies. Only a page of this site may do it.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::RouteState;
use crate::apps::App;
use crate::csrf::{require_same_origin, Authority};
use crate::pages;
use crate::redact::short_hash;
use crate::tracker::EndReason;
use crate::web::{self, cookies, html, see_other, PREFIX};

/// `GET <base>/_idlegate/logout`: a page with the sign-out button, for apps to link to.
pub async fn sign_out_form(State(state): State<Arc<RouteState>>) -> Response {
    if !state.auth.enabled() {
        return web::text(StatusCode::NOT_FOUND, "not found");
    }
    html(
        StatusCode::OK,
        pages::sign_out_page(&state.texts.load(), &logout_url(&state.base_path)),
    )
}

fn logout_url(base_path: &str) -> String {
    format!("{base_path}{PREFIX}logout")
}

/// `POST <base>/_idlegate/logout`: ends every login and tab of the person, and clears
/// idlegate's and the app's own sign-in cookies.
pub async fn sign_out(
    State(state): State<Arc<RouteState>>,
    Extension(authority): Extension<Authority>,
    headers: HeaderMap,
) -> Response {
    if !state.auth.enabled() {
        return web::text(StatusCode::NOT_FOUND, "not found");
    }
    if let Err(refusal) = require_same_origin(&headers, &authority) {
        return web::text(StatusCode::FORBIDDEN, &refusal.to_string());
    }
    sign_out_everywhere(&state, &headers)
}

/// Signs the person whose login `headers` carry out of every login and tab, clears
/// idlegate's and the app's own sign-in cookies, and sends the browser on: to the sign-in
/// page (saying they signed out), or in header mode to the proxy's sign-out URL when one is
/// set. The caller has checked that the request comes from a page of this site.
pub fn sign_out_everywhere(state: &RouteState, headers: &HeaderMap) -> Response {
    let (auth, base_path) = (&state.auth, state.base_path.as_str());
    let login = auth
        .cookie
        .from_request(headers)
        .and_then(|id| auth.live(&id));
    if let Some(login) = login {
        let user = login.identity.user.clone();
        let logins = auth.sign_out_user(&user);
        let tabs = state.tracker.end_user(&user, EndReason::Logout);
        tracing::info!(user = %short_hash(&user), logins, tabs, "signed out");
    }
    let mut removals = vec![auth.cookie.clear()];
    removals.extend(app_cookie_removals(state.app.as_ref(), headers, base_path));
    let to = if auth.signs_in_here() {
        format!("{base_path}{PREFIX}login?signed_out=1")
    } else if let Some(url) = &auth.config.login.sign_out_url {
        url.clone()
    } else {
        format!("{base_path}/")
    };
    see_other(&to, removals)
}

/// The app's own sign-out route (the app's pages send people there to sign out) signs the
/// person out of idlegate too. Only a page of this site may do it; a link from elsewhere
/// gets the page with the sign-out button instead.
pub fn app_sign_out(state: &RouteState, headers: &HeaderMap, authority: &Authority) -> Response {
    let same_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site == "same-origin" || site == "none");
    if same_site || require_same_origin(headers, authority).is_ok() {
        return sign_out_everywhere(state, headers);
    }
    html(
        StatusCode::OK,
        pages::sign_out_page(&state.texts.load(), &logout_url(&state.base_path)),
    )
}

/// `Set-Cookie`s that delete the app's own sign-in cookies ([`App::sign_in_cookies`]) at
/// the app's path and at `/`.
fn app_cookie_removals<'a>(
    app: &'a dyn App,
    headers: &HeaderMap,
    base_path: &'a str,
) -> impl Iterator<Item = http::HeaderValue> + 'a {
    let names: Vec<String> = app.sign_in_cookies(&cookies::names(headers));
    let paths: Vec<&str> = if base_path.is_empty() {
        vec!["/"]
    } else {
        vec!["/", base_path]
    };
    names.into_iter().flat_map(move |name| {
        paths
            .clone()
            .into_iter()
            .map(move |path| cookies::removal(&name, path, false))
    })
}
