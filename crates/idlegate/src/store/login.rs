//! One login session: who signed in, when, and when they last did something in any tab.
//!
//! The state lives on the server; the browser holds only the opaque random id, in a signed
//! cookie. The last activity is one atomic, refreshed by the same activity that keeps the
//! login's tabs alive, with no lock and no store round trip.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use rand::RngCore;

use super::UnixMillis;

/// Who is signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user's key: what per-user limits, the login store and sign-outs go by, and what
    /// the user identity header carries. Stable and unique (OpenID: `sub` by default, see
    /// `auth::oidc::claims`; password: the users file's name; header: the proxy's user).
    pub user: String,
    /// A name for people to read (OpenID: `preferred_username`, `name`, the verified email
    /// or the key), never for deciding anything: it need be neither unique nor stable.
    /// `None` when the sign-in gives none apart from the key.
    pub name: Option<String>,
    /// The user's email, only when verified (OpenID: `email_verified`).
    pub email: Option<String>,
    pub groups: Vec<String>,
}

/// A login's limits (`[login]`): `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoginLimits {
    /// Ends this long after the last activity in any of its tabs (sliding expiration).
    pub idle_timeout: Option<Duration>,
    /// Ends this long after it started, whatever the activity (absolute timeout).
    pub max_lifetime: Option<Duration>,
}

/// One signed-in browser.
pub struct LoginSession {
    /// The secret id; empty for a login another replica made (only its key is shared).
    id: String,
    /// SHA-256 of the id, in hex: what stores index and share, never the id itself, so a
    /// dump of a shared store lets nobody make a cookie.
    key: String,
    pub identity: Identity,
    started: UnixMillis,
    last_activity: AtomicU64,
    revoked: AtomicBool,
}

impl std::fmt::Debug for LoginSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginSession")
            .field("user", &self.identity.user)
            .finish_non_exhaustive()
    }
}

impl LoginSession {
    /// A new login of `identity` started at `now`, with a new random id (256 bits,
    /// base64url: 43 characters).
    pub fn new(identity: Identity, now: UnixMillis) -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self::restore(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
            identity,
            now,
            now,
        )
    }

    /// A login with a known secret id.
    pub fn restore(
        id: String,
        identity: Identity,
        started: UnixMillis,
        last_activity: UnixMillis,
    ) -> Self {
        let key = key_of(&id);
        Self::with_key(id, key, identity, started, last_activity)
    }

    /// A login another replica made, known by its key alone: its cookie works, this process
    /// cannot issue one ([`LoginSession::has_id`] is false).
    pub fn shared(
        key: String,
        identity: Identity,
        started: UnixMillis,
        last_activity: UnixMillis,
    ) -> Self {
        Self::with_key(String::new(), key, identity, started, last_activity)
    }

    fn with_key(
        id: String,
        key: String,
        identity: Identity,
        started: UnixMillis,
        last_activity: UnixMillis,
    ) -> Self {
        Self {
            id,
            key,
            identity,
            started,
            last_activity: AtomicU64::new(last_activity),
            revoked: AtomicBool::new(false),
        }
    }

    /// The secret id the cookie carries; empty when another replica made the login. Never
    /// log it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether this process knows the secret id (it made or restored the login), so it can
    /// set its cookie.
    pub fn has_id(&self) -> bool {
        !self.id.is_empty()
    }

    /// The login's key in stores: [`key_of`] its id. Not a secret, but not for logs either.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// When it started.
    pub fn started(&self) -> UnixMillis {
        self.started
    }

    /// When a person last did something in one of its tabs (or it started).
    pub fn last_activity(&self) -> UnixMillis {
        self.last_activity.load(Ordering::Relaxed)
    }

    /// A person did something in one of this login's tabs at `at`. Never moves the last
    /// activity back.
    pub fn touch(&self, at: UnixMillis) {
        self.last_activity.fetch_max(at, Ordering::Relaxed);
    }

    /// When it ends unless its person does something (`None`: never).
    pub fn deadline(&self, limits: &LoginLimits) -> Option<UnixMillis> {
        let ms = |d: Duration| d.as_millis() as UnixMillis;
        let idle = limits
            .idle_timeout
            .map(|limit| self.last_activity() + ms(limit));
        let lifetime = limits.max_lifetime.map(|limit| self.started + ms(limit));
        idle.into_iter().chain(lifetime).min()
    }

    /// Whether it is past its deadline at `now`.
    pub fn expired(&self, limits: &LoginLimits, now: UnixMillis) -> bool {
        self.deadline(limits).is_some_and(|at| at <= now)
    }

    /// Ends it: its cookie is worthless from now on. Returns `true` the first time only.
    pub fn revoke(&self) -> bool {
        !self.revoked.swap(true, Ordering::Relaxed)
    }

    /// Whether it was ended (signed out, expired).
    pub fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Relaxed)
    }
}

/// The store key of the login whose secret id is `id`: SHA-256, 64 lowercase hex digits.
/// The id has 256 random bits, so the hash needs no salt or stretching.
pub fn key_of(id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(id.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice(now: UnixMillis) -> LoginSession {
        LoginSession::new(
            Identity {
                user: "alice".into(),
                name: None,
                email: None,
                groups: vec![],
            },
            now,
        )
    }

    #[test]
    fn a_login_ends_after_its_idle_time_or_its_lifetime() {
        let limits = LoginLimits {
            idle_timeout: Some(Duration::from_secs(30)),
            max_lifetime: Some(Duration::from_secs(100)),
        };
        let login = alice(1_000_000);
        assert_eq!(login.deadline(&limits), Some(1_030_000));
        // Activity in any tab moves it, up to the lifetime.
        login.touch(1_060_000);
        assert_eq!(login.deadline(&limits), Some(1_090_000));
        login.touch(1_090_000);
        assert_eq!(login.deadline(&limits), Some(1_100_000));
        // Never back.
        login.touch(1_010_000);
        assert_eq!(login.last_activity(), 1_090_000);
        assert!(!login.expired(&limits, 1_099_999));
        assert!(login.expired(&limits, 1_100_000));
        assert_eq!(login.deadline(&LoginLimits::default()), None);
    }

    #[test]
    fn ids_are_new_and_revoking_happens_once() {
        let (a, b) = (alice(0), alice(0));
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().len(), 43);
        assert_eq!(a.key(), key_of(a.id()));
        assert_eq!(a.key().len(), 64);
        assert!(a.has_id());
        assert!(a.revoke());
        assert!(!a.revoke());
        assert!(a.is_revoked());
    }
}
