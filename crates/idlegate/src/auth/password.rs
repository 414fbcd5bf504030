//! Password sign-in: Argon2id hashes in PHC strings, checked off the async threads.
//!
//! Unknown users are checked against a dummy hash, so the answer takes as long as for a
//! known user and says the same: nothing tells which usernames exist.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::limits::work::Busy;
use crate::limits::{Limit, Limits};

/// Argon2id with OWASP's minimum: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None)
        .unwrap_or_else(|_| unreachable!("constant Argon2 parameters are valid"));
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC string for `password` (what `idlegate hash-password` prints).
pub fn hash(password: &str) -> Result<String, String> {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let salt = SaltString::encode_b64(&bytes).map_err(|e| format!("cannot make a salt: {e}"))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// The users of password mode. Clones share one list, which [`Users::replace`] swaps (on a
/// configuration reload) without disturbing checks in progress.
#[derive(Clone)]
pub struct Users {
    hashes: Arc<ArcSwap<HashMap<String, String>>>,
    /// Bounds the checks running at once (`limits.password_checks`).
    limits: Arc<Limits>,
}

impl Users {
    /// The users of `hashes` (username → PHC string), their checks bounded by `limits`.
    pub fn new(hashes: HashMap<String, String>, limits: Arc<Limits>) -> Self {
        Self {
            hashes: Arc::new(ArcSwap::from_pointee(hashes)),
            limits,
        }
    }

    /// Replaces the users (username → PHC string); sign-ins from now on check the new list.
    pub fn replace(&self, hashes: HashMap<String, String>) {
        self.hashes.store(Arc::new(hashes));
    }

    /// Whether `password` is `user`'s. Runs Argon2 (19 MiB) on a blocking thread, at most
    /// `limits.password_checks` at once; an unknown user costs the same.
    ///
    /// # Errors
    /// [`Busy`] when no turn came within [`crate::limits::PASSWORD_CHECK_WAIT`].
    pub async fn check(&self, user: &str, password: &str) -> Result<bool, Busy> {
        let turn = self
            .limits
            .password_checks
            .turn()
            .await
            .inspect_err(|_| self.limits.hit(Limit::PasswordCheckRefused))?;
        if turn.waited {
            self.limits.hit(Limit::PasswordCheckWait);
        }
        let stored = self.hashes.load().get(user).cloned();
        let password = password.to_owned();
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| dummy_hash().to_owned());
        let matches = tokio::task::spawn_blocking(move || {
            // The turn ends with the work, even if the request that asked is gone.
            let _turn = turn;
            PasswordHash::new(&hash)
                .map(|parsed| {
                    argon2()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        Ok(matches && known)
    }
}

/// A hash of a random password, made once, for unknown users.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut bytes = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        hash(&format!("{bytes:?}")).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn right_password_passes_and_others_do_not() {
        let hashed = hash("correct horse").unwrap();
        assert!(hashed.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let limits = Limits::new(&crate::Config::builder().build().unwrap());
        let users = Users::new(HashMap::from([("alice".to_owned(), hashed)]), limits);
        assert_eq!(users.check("alice", "correct horse").await, Ok(true));
        assert_eq!(users.check("alice", "wrong").await, Ok(false));
        assert_eq!(users.check("bob", "correct horse").await, Ok(false));
        assert_eq!(users.check("alice", "").await, Ok(false));
        // A clone sees a replaced list.
        let shared = users.clone();
        let bob = hash("battery staple").unwrap();
        users.replace(HashMap::from([("bob".to_owned(), bob)]));
        assert_eq!(shared.check("bob", "battery staple").await, Ok(true));
        assert_eq!(shared.check("alice", "correct horse").await, Ok(false));
    }
}
