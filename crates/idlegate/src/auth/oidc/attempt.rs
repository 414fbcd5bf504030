//! A sign-in under way, kept by the browser that started it and nowhere else.
//!
//! An attempt is its random `state` (RFC 6749 §10.12), when it started, the redirect URL
//! used and where the person was going. idlegate keeps none of it: it signs the attempt
//! (HMAC-SHA256, [`AttemptSeal`]) into the short-lived attempt cookie, and derives the PKCE
//! verifier (RFC 7636) and the `nonce` (OpenID Connect Core §3.1.2.1) from the `state` with
//! a server key. So an anonymous flood of sign-in starts costs no server memory and cannot
//! push out anyone else's attempt, and the cookie holds nothing secret: the `state` and the
//! `nonce` travel in the provider URL anyway, the return path is the person's own, and the
//! verifier never leaves the server (it is recomputed at the callback). Encryption would
//! add nothing and is not used.
//!
//! The callback is accepted only with a cookie signed by a current key, not older than
//! [`ATTEMPT_TTL`], whose `state` equals the one in the callback URL (constant-time): a
//! callback this browser did not start (login CSRF) is refused. Replaying a cookie gains
//! nothing: the provider takes each code once, and a code issued for another `state` fails
//! its PKCE check.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::CookieKey;

/// How long a sign-in may take at the provider (and the attempt cookie's `Max-Age`).
pub const ATTEMPT_TTL: Duration = Duration::from_secs(600);
/// The longest attempt cookie value made or read, in bytes: browsers keep cookies of up to
/// 4096 bytes with their name (RFC 6265 §6.1).
pub const MAX_COOKIE: usize = 4000;

/// Separates what this key signs from the login cookie's uses of the same configured keys.
const CONTEXT: &[u8] = b"idlegate oidc attempt v1";

/// A sign-in under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The random `state` (base64url).
    #[serde(rename = "s")]
    pub state: String,
    /// When it started, in seconds since the Unix epoch.
    #[serde(rename = "t")]
    pub started: u64,
    /// The redirect URL sent to the provider (the token request must repeat it).
    #[serde(rename = "u")]
    pub redirect: String,
    /// Where the person goes after signing in (an app path, already checked).
    #[serde(rename = "r")]
    pub return_to: String,
}

impl Attempt {
    /// A new attempt with a random 256-bit `state`, started at `now` (Unix seconds).
    pub fn new(redirect: &str, return_to: &str, now: u64) -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self {
            state: URL_SAFE_NO_PAD.encode(bytes),
            started: now,
            redirect: redirect.to_owned(),
            return_to: return_to.to_owned(),
        }
    }
}

/// The attempt would not fit in a cookie ([`MAX_COOKIE`]): the redirect URL (built from
/// the request's `Host`) is too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the sign-in's redirect URL is too long for a cookie")]
pub struct TooLarge;

/// Signs and opens attempt cookies, and derives each attempt's PKCE verifier and nonce.
pub struct AttemptSeal {
    /// Newest first. Derived from `login.cookie_keys_file` (so every replica sharing the
    /// keys accepts the others' attempts), or random per process.
    keys: Vec<[u8; 32]>,
}

impl AttemptSeal {
    /// Keys derived from the configured cookie keys (newest first), or a random one.
    pub fn new(keys: &[CookieKey]) -> Self {
        let mut keys: Vec<[u8; 32]> = keys.iter().map(|k| derive(&k.0)).collect();
        if keys.is_empty() {
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            keys.push(key);
        }
        Self { keys }
    }

    /// The cookie value: `<base64url JSON>.<base64url HMAC>`, signed with the newest key.
    pub fn seal(&self, attempt: &Attempt) -> Result<String, TooLarge> {
        let json = serde_json::to_vec(attempt).map_err(|_| TooLarge)?;
        let payload = URL_SAFE_NO_PAD.encode(json);
        let tag = mac(&self.keys[0], b"cookie", payload.as_bytes()).finalize();
        let value = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.into_bytes()));
        if value.len() > MAX_COOKIE {
            return Err(TooLarge);
        }
        Ok(value)
    }

    /// The attempt in a cookie value if a current key signed it, it is younger than
    /// [`ATTEMPT_TTL`] at `now` (Unix seconds) and its `state` equals `state`; with the
    /// index of the key that signed it (for [`AttemptSeal::secrets`]).
    pub fn open(&self, value: &str, state: &str, now: u64) -> Option<(Attempt, usize)> {
        if value.len() > MAX_COOKIE {
            return None;
        }
        let (payload, tag) = value.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let key = self.keys.iter().position(|key| {
            mac(key, b"cookie", payload.as_bytes())
                .verify_slice(&tag)
                .is_ok()
        })?;
        let attempt: Attempt =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let fresh = now.saturating_sub(attempt.started) < ATTEMPT_TTL.as_secs()
            && attempt.started <= now.saturating_add(60);
        let same = bool::from(attempt.state.as_bytes().ct_eq(state.as_bytes()));
        (fresh && same).then_some((attempt, key))
    }

    /// The attempt's PKCE verifier (43 base64url characters, RFC 7636 §4.1) and nonce,
    /// derived from its `state` with the key at `key` (the newest for a new attempt).
    pub fn secrets(&self, state: &str, key: usize) -> (String, String) {
        let key = &self.keys[key.min(self.keys.len() - 1)];
        let derive = |purpose: &[u8]| {
            URL_SAFE_NO_PAD.encode(mac(key, purpose, state.as_bytes()).finalize().into_bytes())
        };
        (derive(b"pkce"), derive(b"nonce"))
    }
}

fn derive(configured: &[u8; 32]) -> [u8; 32] {
    mac(configured, b"key", b"").finalize().into_bytes().into()
}

fn mac(key: &[u8; 32], purpose: &[u8], data: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; 32 bytes cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(CONTEXT);
    mac.update(&[purpose.len() as u8]);
    mac.update(purpose);
    mac.update(data);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn seal(byte: u8) -> AttemptSeal {
        AttemptSeal::new(&[CookieKey([byte; 32])])
    }

    #[test]
    fn an_attempt_opens_only_in_time_with_its_own_state_and_a_current_key() {
        let seal = seal(1);
        let attempt = Attempt::new("https://h/_idlegate/oidc/callback", "/app?x=1", NOW);
        let value = seal.seal(&attempt).unwrap();
        let state = attempt.state.clone();
        assert_eq!(seal.open(&value, &state, NOW + 10), Some((attempt, 0)));
        assert_eq!(seal.open(&value, &state, NOW + 600), None, "expired");
        assert_eq!(
            seal.open(&value, &state, NOW - 3600),
            None,
            "from the future"
        );
        assert_eq!(seal.open(&value, "another state", NOW), None, "login CSRF");
        assert_eq!(self::seal(2).open(&value, &state, NOW), None, "another key");
        // Keys rotate newest first: an attempt signed with the old key still opens.
        let rotated = AttemptSeal::new(&[CookieKey([2; 32]), CookieKey([1; 32])]);
        assert_eq!(rotated.open(&value, &state, NOW).map(|(_, k)| k), Some(1));
        assert_eq!(rotated.secrets(&state, 1), seal.secrets(&state, 0));
    }

    #[test]
    fn a_changed_cookie_does_not_open() {
        let seal = seal(1);
        let attempt = Attempt::new("https://h/cb", "/", NOW);
        let value = seal.seal(&attempt).unwrap();
        let (payload, tag) = value.split_once('.').unwrap();
        let forged = Attempt {
            return_to: "/elsewhere".into(),
            ..attempt.clone()
        };
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        for bad in [
            format!("{forged}.{tag}"),
            format!("{payload}.{}", &tag[1..]),
            payload.to_owned(),
            String::new(),
            "x".repeat(MAX_COOKIE + 1),
        ] {
            assert_eq!(seal.open(&bad, &attempt.state, NOW), None, "{bad:.40}");
        }
    }

    #[test]
    fn secrets_are_per_state_valid_pkce_and_never_in_the_cookie() {
        let seal = seal(1);
        let attempt = Attempt::new("https://h/cb", "/", NOW);
        let (verifier, nonce) = seal.secrets(&attempt.state, 0);
        assert_eq!(verifier.len(), 43);
        assert_ne!(verifier, nonce);
        assert_ne!(seal.secrets("other", 0).0, verifier);
        let value = seal.seal(&attempt).unwrap();
        let decoded = URL_SAFE_NO_PAD
            .decode(value.split_once('.').unwrap().0)
            .unwrap();
        let decoded = String::from_utf8(decoded).unwrap();
        assert!(!decoded.contains(&verifier) && !value.contains(&verifier));
        assert!(AttemptSeal::new(&[]).secrets("s", 0) != seal.secrets("s", 0));
    }

    #[test]
    fn an_attempt_too_large_for_a_cookie_is_refused() {
        let seal = seal(1);
        // A 2 KiB return path (the most a return path may be) fits.
        let long_return = format!("/{}", "a".repeat(2047));
        assert!(seal
            .seal(&Attempt::new("https://h/cb", &long_return, NOW))
            .is_ok_and(|v| v.len() <= MAX_COOKIE));
        let huge_host = format!("https://{}/cb", "h".repeat(3000));
        assert_eq!(
            seal.seal(&Attempt::new(&huge_host, "/", NOW)),
            Err(TooLarge)
        );
    }
}
