//! Deciding who a request is from: the login cookie (or a trusted proxy's headers), checked
//! against the login store and the login limits, with identity headers set for the app.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;

use super::cookie::LoginCookie;
use super::oidc::Oidc;
use super::password::Users;
use super::{identity, Identity, LoginSession};
use crate::config::{Config, LoginMode};
use crate::lifecycle::{EndReason, Event, Publisher};
use crate::limits::sign_in::Refusal;
use crate::limits::{Limit, Limits};
use crate::store::{LoginLimits, Stores};

/// How often ended logins are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Who a request is from.
#[derive(Debug, Clone)]
pub enum Access {
    /// Nobody signs in (`login.mode = "none"`).
    Open,
    /// A signed-in person. `set_cookie` is a new login cookie to send back (header mode).
    Signed {
        login: Arc<LoginSession>,
        set_cookie: Option<http::HeaderValue>,
    },
    /// Not signed in (or signed out, or expired).
    SignInNeeded,
    /// Header mode: this browser's login ended (signed out, expired); it must sign out of
    /// the proxy in front, at this URL, before a new login is accepted.
    SignOutFirst { url: String },
}

/// Whether the browser says a person's action started this navigation (`Sec-Fetch-User: ?1`,
/// Fetch Metadata: sent only for user-activated navigations).
fn user_activated(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-user")
        .is_some_and(|v| v.as_bytes() == b"?1")
}

/// A request that needs a live login has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not signed in")]
pub struct NotSignedIn;

/// Sign-in state and checks, shared by all requests.
pub struct Auth {
    mode: LoginMode,
    limits: LoginLimits,
    pub(crate) config: Arc<Config>,
    stores: Stores,
    events: Publisher,
    pub(crate) cookie: LoginCookie,
    pub(crate) users: Option<Users>,
    pub(crate) oidc: Option<Oidc>,
    /// Sign-in attempt limits and the Argon2 bound.
    pub(crate) bounds: Arc<Limits>,
}

impl Auth {
    /// Sets up sign-in for `config`, keeping logins in `stores` and telling `events` when
    /// they start and end, with sign-in attempts bounded by `limits`, and starts its sweeper
    /// on the current runtime.
    pub fn start(
        config: Arc<Config>,
        stores: Stores,
        events: Publisher,
        limits: Arc<Limits>,
    ) -> Arc<Self> {
        let login = &config.login;
        let auth = Arc::new(Self {
            mode: login.mode.clone(),
            limits: LoginLimits {
                idle_timeout: Some(login.idle_timeout),
                max_lifetime: login.max_lifetime,
            },
            stores,
            events,
            cookie: LoginCookie::new(&login.cookie_keys, login.cookie_secure),
            users: match &login.mode {
                LoginMode::Password { users } => Some(Users::new(users.clone(), limits.clone())),
                _ => None,
            },
            oidc: match &login.mode {
                LoginMode::Oidc(settings) => Some(Oidc::new(settings.clone())),
                _ => None,
            },
            bounds: limits,
            config,
        });
        if auth.mode != LoginMode::None {
            tokio::spawn(sweep(Arc::downgrade(&auth)));
        }
        auth
    }

    /// Whether people sign in at all.
    pub fn enabled(&self) -> bool {
        self.mode != LoginMode::None
    }

    /// Whether people sign in with idlegate's own form.
    pub fn has_form(&self) -> bool {
        matches!(self.mode, LoginMode::Password { .. })
    }

    /// Whether idlegate runs the sign-in (its form, or the OpenID flow), rather than a proxy
    /// in front of it.
    pub fn signs_in_here(&self) -> bool {
        matches!(self.mode, LoginMode::Password { .. } | LoginMode::Oidc(_))
    }

    /// Decides who sent a request, removes identity headers the browser sent, and sets them
    /// for the app when someone is signed in. A navigation a person made counts as their
    /// activity.
    pub fn check(&self, headers: &mut HeaderMap, peer: SocketAddr, navigation: bool) -> Access {
        let names = &self.config.login.headers;
        let vouched = match self.mode {
            LoginMode::None => {
                identity::strip(headers, names);
                return Access::Open;
            }
            LoginMode::Header if self.config.proxy.is_trusted(peer.ip()) => {
                identity::read(headers, names)
            }
            _ => None,
        };
        identity::strip(headers, names);
        let cookie_id = self.cookie.from_request(headers);
        let from_cookie = cookie_id.as_deref().and_then(|id| self.live(id));
        // Header mode: a login of ours that ended (a cookie we signed, no longer live) must
        // not be followed by a fresh one for whoever the proxy names, or the person would
        // never authenticate again; they go through the proxy's sign-out first.
        if let (Some(url), None, Some(_), Some(_)) = (
            &self.config.login.sign_out_url,
            &from_cookie,
            &cookie_id,
            &vouched,
        ) {
            return Access::SignOutFirst { url: url.clone() };
        }
        let (login, set_cookie) = match (from_cookie, vouched) {
            (Some(login), None) if self.mode != LoginMode::Header => (login, None),
            // Header mode: the proxy names the person on every request; idlegate's cookie
            // only carries the login's clock, and must belong to that person.
            (Some(login), Some(who)) if login.identity == who => (login, None),
            (_, Some(who)) => {
                let login = self.sign_in(who);
                let cookie = self.cookie.set(login.id());
                (login, Some(cookie))
            }
            _ => return Access::SignInNeeded,
        };
        // A page load a person made (a click, a typed address, a reload) is their activity;
        // one a script made (a timed reload, a frame) is not, and browsers tell them apart.
        if navigation && user_activated(headers) {
            login.touch(self.stores.clock.now_ms());
            self.events.publish(|| Event::LoginTouched {
                user: login.identity.user.clone(),
            });
        }
        identity::set(headers, names, &login.identity);
        Access::Signed { login, set_cookie }
    }

    /// The live login a request carries, without changing anything (no new login, no
    /// activity): for idlegate's own routes that act on a login's tabs. `Ok(None)` when
    /// nobody signs in; `Err(())` when people sign in and this request has no live login (in
    /// header mode, also when the trusted proxy names someone else).
    pub fn login_of(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
    ) -> Result<Option<Arc<LoginSession>>, NotSignedIn> {
        if self.mode == LoginMode::None {
            return Ok(None);
        }
        let login = self
            .cookie
            .from_request(headers)
            .and_then(|id| self.live(&id))
            .ok_or(NotSignedIn)?;
        if self.mode == LoginMode::Header && self.config.proxy.is_trusted(peer.ip()) {
            let vouched = identity::read(headers, &self.config.login.headers);
            if vouched.is_some_and(|who| who != login.identity) {
                return Err(NotSignedIn);
            }
        }
        Ok(Some(login))
    }

    /// Whether the request carries a login cookie idlegate signed whose login ended (signed
    /// out, expired): the person used to be signed in here.
    pub fn login_ended(&self, headers: &HeaderMap) -> bool {
        self.cookie
            .from_request(headers)
            .is_some_and(|id| self.live(&id).is_none())
    }

    /// The live login with this id: known, not revoked, not past its deadline. One found
    /// expired is revoked on the way.
    pub fn live(&self, id: &str) -> Option<Arc<LoginSession>> {
        let login = self.stores.logins.get(id)?;
        if login.expired(&self.limits, self.stores.clock.now_ms()) {
            self.end(&login, EndReason::LoginExpired);
            return None;
        }
        Some(login)
    }

    /// Ends a login (signed out, expired): revoked in the store, and told.
    fn end(&self, login: &LoginSession, reason: EndReason) {
        if self.stores.logins.revoke(login.id()).is_some() || login.revoke() {
            self.events.publish(|| Event::LoginEnded {
                user: login.identity.user.clone(),
                reason,
            });
        }
    }

    /// Signs `user` out of every login of theirs. Returns how many ended.
    pub fn sign_out_user(&self, user: &str) -> usize {
        let logins = self.stores.logins.of_user(user);
        logins
            .iter()
            .inspect(|login| self.end(login, EndReason::Logout))
            .count()
    }

    /// Ends the logins past their deadline. Returns how many ended.
    fn sweep_expired(&self) -> usize {
        let now = self.stores.clock.now_ms();
        let expired: Vec<_> = self
            .stores
            .logins
            .all()
            .into_iter()
            .filter(|login| login.expired(&self.limits, now))
            .collect();
        for login in &expired {
            self.end(login, EndReason::LoginExpired);
        }
        expired.len()
    }

    /// Counts a sign-in attempt for `user` from `peer` and decides whether its password may
    /// be checked ([`crate::limits::sign_in`] has the rule).
    ///
    /// # Errors
    /// The [`Refusal`] when the address, or the username from this address, is over its limit.
    pub fn attempt_allowed(&self, peer: SocketAddr, user: &str) -> Result<(), Refusal> {
        let decision = self.bounds.sign_ins.admit(peer.ip(), user, Instant::now());
        if decision.evicted > 0 {
            self.bounds.hit(Limit::RateKeysEvicted);
        }
        match decision.refusal {
            None => Ok(()),
            Some(refusal) => {
                self.bounds.hit(match refusal {
                    Refusal::Address => Limit::SignInAddress,
                    Refusal::Username => Limit::SignInUsername,
                });
                Err(refusal)
            }
        }
    }

    /// Counts a wrong password for `user` from `peer`.
    pub fn attempt_failed(&self, peer: SocketAddr, user: &str) {
        if self.bounds.sign_ins.failed(peer.ip(), user, Instant::now()) > 0 {
            self.bounds.hit(Limit::RateKeysEvicted);
        }
    }

    /// Signs `identity` in: a new login session with a new id.
    pub fn sign_in(&self, identity: Identity) -> Arc<LoginSession> {
        let login = Arc::new(LoginSession::new(identity, self.stores.clock.now_ms()));
        self.stores.logins.insert(login.clone());
        self.events.publish(|| Event::LoginStarted {
            user: login.identity.user.clone(),
        });
        login
    }
}

async fn sweep(auth: Weak<Auth>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(auth) = auth.upgrade() else {
            return;
        };
        auth.sweep_expired();
    }
}
