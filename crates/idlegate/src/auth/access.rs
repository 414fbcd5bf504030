//! Deciding who a request is from: the login cookie (or a trusted proxy's headers), checked
//! against the login store and the login limits, with identity headers set for the app.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderMap;
use tokio::time::Instant;

use super::cookie::LoginCookie;
use super::oidc::Oidc;
use super::password::Users;
use super::{identity, Identity, LoginSession};
use crate::config::{Config, LoginMode, OnUnavailable};
use crate::lifecycle::{EndReason, Event, Publisher};
use crate::limits::sign_in::Refusal;
use crate::limits::{Limit, Limits};
use crate::store::{LoginLimits, Stores, UnixMillis};

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
    /// Header mode: a new login is needed, and none may be made while the shared store
    /// cannot be reached (`store.on_unavailable = "refuse"`).
    SignInUnavailable,
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
    /// `login.idle_timeout` and `login.max_lifetime`; a configuration reload replaces them
    /// ([`Auth::set_limits`]).
    limits: ArcSwap<LoginLimits>,
    pub(crate) config: Arc<Config>,
    stores: Stores,
    events: Publisher,
    pub(crate) cookie: LoginCookie,
    pub(crate) users: Option<Users>,
    pub(crate) oidc: Option<Oidc>,
    /// Header mode: held while finding or making a person's login, so concurrent requests
    /// without a login cookie make one login, not one each. Never held across an await.
    header_sign_in: Mutex<()>,
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
            limits: ArcSwap::from_pointee(LoginLimits {
                idle_timeout: Some(login.idle_timeout),
                max_lifetime: login.max_lifetime,
            }),
            stores,
            events,
            cookie: LoginCookie::new(&login.cookie_keys, login.cookie_secure),
            users: match &login.mode {
                LoginMode::Password { users } => Some(Users::new(users.clone(), limits.clone())),
                _ => None,
            },
            oidc: match &login.mode {
                LoginMode::Oidc(settings) => Some(Oidc::new(settings.clone(), &login.cookie_keys)),
                _ => None,
            },
            header_sign_in: Mutex::new(()),
            bounds: limits,
            config,
        });
        if auth.mode != LoginMode::None {
            tokio::spawn(sweep(Arc::downgrade(&auth)));
        }
        auth
    }

    /// Replaces the login limits (a configuration reload): every login, signed in before or
    /// after, is judged by them from now on.
    pub fn set_limits(&self, limits: LoginLimits) {
        self.limits.store(Arc::new(limits));
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

    /// Decides who sent a request. A navigation a person made counts as their activity. The
    /// headers are not changed: what the app sees of them, identity headers included, is
    /// decided in one place when the request is relayed (`proxy::outgoing`).
    pub fn check(&self, headers: &HeaderMap, peer: SocketAddr, navigation: bool) -> Access {
        let vouched = match self.mode {
            LoginMode::None => return Access::Open,
            LoginMode::Header if self.config.proxy.is_trusted(peer.ip()) => self.vouched(headers),
            _ => None,
        };
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
                let Some(login) = self.header_login(who) else {
                    return Access::SignInUnavailable;
                };
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
        Access::Signed { login, set_cookie }
    }

    /// Header mode: the identity the trusted proxy in front names, from the headers it sets
    /// itself (`login.proxy_headers`).
    fn vouched(&self, headers: &HeaderMap) -> Option<Identity> {
        let login = &self.config.login;
        identity::read(headers, &login.headers, login.proxy_headers)
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
            let vouched = self.vouched(headers);
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
        if self.expired(&login, &self.limits.load(), self.stores.clock.now_ms()) {
            self.end(&login, EndReason::LoginExpired);
            return None;
        }
        Some(login)
    }

    /// Whether `login` is past its deadline at `now`, judged late by the store's lag (another
    /// replica's activity may be on its way).
    fn expired(&self, login: &LoginSession, limits: &LoginLimits, now: UnixMillis) -> bool {
        let lag = self.stores.sync_lag.as_millis() as UnixMillis;
        login.expired(limits, now.saturating_sub(lag))
    }

    /// Ends a login (signed out, expired): revoked in the store, and told.
    fn end(&self, login: &LoginSession, reason: EndReason) {
        if self.stores.logins.revoke(login.key(), reason).is_some() || login.revoke() {
            self.events.publish(|| Event::LoginEnded {
                user: login.identity.user.clone(),
                reason,
            });
        }
    }

    /// Signs `user` out of every login of theirs. Returns how many ended.
    pub fn sign_out_user(&self, user: &str) -> usize {
        self.end_logins_of(user, EndReason::Logout)
    }

    /// Ends every login of `user` for `reason` (an administrator's `Admin`). Returns how many
    /// ended.
    pub fn end_logins_of(&self, user: &str, reason: EndReason) -> usize {
        let logins = self.stores.logins.of_user(user);
        let ended = logins
            .iter()
            .inspect(|login| self.end(login, reason))
            .count();
        // And any login of theirs the shared store lists that this replica does not know.
        self.stores.cluster.revoke_user(user, reason);
        ended
    }

    /// Ends the logins past their deadline. Returns how many ended.
    fn sweep_expired(&self) -> usize {
        let now = self.stores.clock.now_ms();
        let limits = self.limits.load();
        let expired: Vec<_> = self
            .stores
            .logins
            .all()
            .into_iter()
            .filter(|login| self.expired(login, &limits, now))
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
        self.sign_in_failed(peer.ip(), Some(user), "password");
    }

    /// Tells subscribers (the audit log) that a sign-in from `client` was refused; the name
    /// given, if any, only as a short hash.
    pub fn sign_in_failed(
        &self,
        client: std::net::IpAddr,
        user: Option<&str>,
        method: &'static str,
    ) {
        self.events.publish(|| Event::SignInFailed {
            user: user.map(crate::redact::short_hash),
            client,
            method,
        });
    }

    /// Header mode: the login for a request the trusted proxy vouches for but that carries no
    /// live login cookie of that person (API clients, probes, a new browser): the person's
    /// newest live login with the same identity, or a new one when they have none. So
    /// requests that never send a cookie back share one login per person instead of each
    /// making one (state stays bounded by the people, not the requests); the login's clock
    /// is the person's, across their clients.
    /// `None` when a new login is needed and none may be made now ([`Auth::sign_ins_open`]).
    fn header_login(&self, who: Identity) -> Option<Arc<LoginSession>> {
        let _one = self
            .header_sign_in
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = self.stores.clock.now_ms();
        let limits = self.limits.load();
        let existing = self
            .stores
            .logins
            .of_user(&who.user)
            .into_iter()
            // Only a login this process can set the cookie of.
            .filter(|login| login.identity == who && login.has_id() && !login.expired(&limits, now))
            .max_by_key(|login| login.last_activity());
        match existing {
            Some(login) => Some(login),
            None if self.sign_ins_open() => Some(self.sign_in(who)),
            None => None,
        }
    }

    /// Whether new logins may be made now: the store is reachable, or
    /// `store.on_unavailable` is `"local"`.
    pub fn sign_ins_open(&self) -> bool {
        self.config.store.on_unavailable == OnUnavailable::Local || self.stores.cluster.available()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SignIn;

    fn header_auth() -> (Arc<Auth>, Stores) {
        let config = Config::builder()
            .login(SignIn::Header)
            .trusted_proxies(["127.0.0.1"])
            .build()
            .unwrap();
        let stores = Stores::memory();
        let limits = Limits::new(&config);
        let auth = Auth::start(
            Arc::new(config),
            stores.clone(),
            Publisher::default(),
            limits,
        );
        (auth, stores)
    }

    fn vouched(user: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-user", user.parse().unwrap());
        headers
    }

    #[tokio::test]
    async fn requests_without_a_cookie_share_the_persons_login() {
        let (auth, stores) = header_auth();
        let proxy: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let mut ids = std::collections::HashSet::new();
        for _ in 0..1000 {
            let Access::Signed { login, set_cookie } = auth.check(&vouched("carol"), proxy, false)
            else {
                panic!("not signed in");
            };
            assert!(set_cookie.is_some(), "the client may keep the cookie");
            ids.insert(login.id().to_owned());
        }
        assert_eq!(ids.len(), 1);
        assert_eq!(stores.logins.all().len(), 1);
        // Another person gets their own; an ended login is not reused.
        auth.check(&vouched("dave"), proxy, false);
        assert_eq!(stores.logins.all().len(), 2);
        assert_eq!(auth.sign_out_user("carol"), 1);
        let Access::Signed { login, .. } = auth.check(&vouched("carol"), proxy, false) else {
            panic!("not signed in");
        };
        assert!(!ids.contains(login.id()));
    }
}
