//! Login sessions: who signed in, when, and when they last did something in any tab.
//!
//! The state lives here, on the server; the browser only holds an opaque random id in a signed
//! cookie ([`super::cookie`]). A login's last activity is one atomic, refreshed by the same
//! activity that keeps its tabs alive. Expiry is checked where it matters: the tracker ends a
//! login's tabs at its deadline (reason `login_expired`) and every request checks it again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use rand::RngCore;
use tokio::time::Instant;

use crate::tracker::policy::LoginClock;

/// Who is signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
}

/// One signed-in browser.
pub struct LoginSession {
    id: String,
    pub identity: Identity,
    started: Instant,
    epoch: Instant,
    last_activity_ms: AtomicU64,
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
    /// The secret id the cookie carries.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A person did something in one of this login's tabs.
    pub fn touch(&self) {
        self.touch_at(Instant::now());
    }

    /// A person did something in one of this login's tabs at `at` (a page's report says
    /// when). Never moves the last activity back.
    pub fn touch_at(&self, at: Instant) {
        let since = at.saturating_duration_since(self.epoch);
        self.last_activity_ms
            .fetch_max(since.as_millis() as u64, Ordering::Relaxed);
    }

    /// When it started and when it was last used, for the deadline policy.
    pub fn clock(&self) -> LoginClock {
        LoginClock {
            started: self.started,
            last_activity: self.epoch
                + Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed)),
        }
    }

    /// Ends it: its cookie is worthless from now on.
    pub fn revoke(&self) {
        self.revoked.store(true, Ordering::Relaxed);
    }

    /// Whether it was ended (signed out, expired).
    pub fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Relaxed)
    }
}

/// All login sessions of this process.
#[derive(Default)]
pub struct LoginStore {
    sessions: Mutex<HashMap<String, Arc<LoginSession>>>,
}

impl LoginStore {
    /// Starts a login session with a new random id.
    pub fn create(&self, identity: Identity) -> Arc<LoginSession> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        let session = Arc::new(LoginSession {
            id: id.clone(),
            identity,
            started: now,
            epoch: now,
            last_activity_ms: AtomicU64::new(0),
            revoked: AtomicBool::new(false),
        });
        self.lock().insert(id, session.clone());
        session
    }

    /// The live session with this id, if any. `expired` says whether a session is past its
    /// deadline; such sessions are removed and revoked on the way.
    pub fn get(
        &self,
        id: &str,
        expired: impl Fn(&LoginSession) -> bool,
    ) -> Option<Arc<LoginSession>> {
        let mut sessions = self.lock();
        let session = sessions.get(id)?.clone();
        if session.is_revoked() || expired(&session) {
            session.revoke();
            sessions.remove(id);
            return None;
        }
        Some(session)
    }

    /// Ends every session of `user`; returns them.
    pub fn revoke_user(&self, user: &str) -> Vec<Arc<LoginSession>> {
        let mut sessions = self.lock();
        let ids: Vec<String> = sessions
            .iter()
            .filter(|(_, s)| s.identity.user == user)
            .map(|(id, _)| id.clone())
            .collect();
        ids.iter()
            .filter_map(|id| sessions.remove(id))
            .inspect(|s| s.revoke())
            .collect()
    }

    /// Forgets sessions that ended or expired. Returns how many were removed.
    pub fn sweep(&self, expired: impl Fn(&LoginSession) -> bool) -> usize {
        let mut sessions = self.lock();
        let before = sessions.len();
        sessions.retain(|_, s| {
            let keep = !s.is_revoked() && !expired(s);
            if !keep {
                s.revoke();
            }
            keep
        });
        before - sessions.len()
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no one is signed in.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<LoginSession>>> {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Identity {
        Identity {
            user: "alice".into(),
            email: None,
            groups: vec![],
        }
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_get_new_ids_and_slide_with_activity() {
        let store = LoginStore::default();
        let a = store.create(alice());
        let b = store.create(alice());
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().len(), 43);
        tokio::time::advance(Duration::from_secs(10)).await;
        a.touch();
        assert_eq!(
            a.clock().last_activity - a.clock().started,
            Duration::from_secs(10)
        );
        assert!(store.get(a.id(), |_| false).is_some());
    }

    #[tokio::test]
    async fn revoked_and_expired_sessions_are_gone() {
        let store = LoginStore::default();
        let a = store.create(alice());
        assert!(store.get(a.id(), |_| true).is_none());
        assert!(a.is_revoked());
        assert!(store.get(a.id(), |_| false).is_none(), "removed for good");
        let b = store.create(alice());
        let _c = store.create(Identity {
            user: "bob".into(),
            ..alice()
        });
        assert_eq!(store.revoke_user("alice").len(), 1);
        assert!(b.is_revoked());
        assert_eq!(store.len(), 1);
        assert_eq!(store.sweep(|_| true), 1);
        assert!(store.is_empty());
    }
}
