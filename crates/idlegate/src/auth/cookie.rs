//! The login cookie: an opaque session id with an HMAC-SHA256 signature.
//!
//! `<id>.<signature>`, both URL-safe base64. Signed with the newest key, verified with each
//! key in turn (constant-time), so keys rotate by adding a new one in front. A cookie that is
//! forged, tampered with or signed by a removed key is simply not a login.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue};
use rand::RngCore;
use sha2::Sha256;

use crate::config::CookieKey;
use crate::web::cookies;

/// Signs what the MAC covers apart from the id, so the key cannot be reused for other values.
const CONTEXT: &[u8] = b"idlegate login v1|";
/// Longest cookie value accepted (an id and a signature are 87 bytes).
const MAX_VALUE: usize = 128;

/// The keys and the attributes of the login cookie.
#[derive(Clone)]
pub struct LoginCookie {
    keys: Vec<[u8; 32]>,
    secure: bool,
}

impl LoginCookie {
    /// `keys` newest first; with none, a random key is made (valid for this process only).
    pub fn new(keys: &[CookieKey], secure: bool) -> Self {
        let mut keys: Vec<[u8; 32]> = keys.iter().map(|k| k.0).collect();
        if keys.is_empty() {
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            keys.push(key);
        }
        Self { keys, secure }
    }

    /// The cookie's name: `__Host-` prefixed when `Secure`, as browsers require.
    pub fn name(&self) -> &'static str {
        if self.secure {
            "__Host-idlegate-login"
        } else {
            "idlegate-login"
        }
    }

    /// The signed value for a session id.
    pub fn sign(&self, id: &str) -> String {
        let mac = mac(&self.keys[0], id).finalize().into_bytes();
        format!("{id}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// The session id in a signed value, if a current key signed it.
    pub fn verify(&self, value: &str) -> Option<String> {
        if value.len() > MAX_VALUE {
            return None;
        }
        let (id, signature) = value.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let valid = self
            .keys
            .iter()
            .any(|key| mac(key, id).verify_slice(&signature).is_ok());
        valid.then(|| id.to_owned())
    }

    /// The session id from a request's cookies, if one is there and signed.
    pub fn from_request(&self, headers: &HeaderMap) -> Option<String> {
        cookies::find(headers, self.name()).and_then(|value| self.verify(value))
    }

    /// `Set-Cookie` for a new login: a session cookie for the whole site.
    pub fn set(&self, id: &str) -> HeaderValue {
        cookies::set(self.name(), &self.sign(id), "/", None, self.secure)
    }

    /// `Set-Cookie` that removes the login cookie.
    pub fn clear(&self) -> HeaderValue {
        cookies::removal(self.name(), "/", self.secure)
    }
}

fn mac(key: &[u8; 32], id: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length; 32 bytes cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(CONTEXT);
    mac.update(id.as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::COOKIE;

    fn key(byte: u8) -> CookieKey {
        CookieKey([byte; 32])
    }

    #[test]
    fn signed_ids_verify_and_tampering_does_not() {
        let jar = LoginCookie::new(&[key(1)], true);
        let value = jar.sign("abc");
        assert_eq!(jar.verify(&value).as_deref(), Some("abc"));
        let (id, sig) = value.split_once('.').unwrap();
        assert_eq!(jar.verify(&format!("abd.{sig}")), None);
        assert_eq!(jar.verify(&format!("{id}.{}", &sig[1..])), None);
        assert_eq!(jar.verify(id), None);
        assert_eq!(jar.verify(&"a".repeat(200)), None);
        assert_eq!(LoginCookie::new(&[key(2)], true).verify(&value), None);
    }

    #[test]
    fn keys_rotate_newest_first() {
        let old = LoginCookie::new(&[key(1)], true);
        let rotated = LoginCookie::new(&[key(2), key(1)], true);
        let before = old.sign("abc");
        assert_eq!(rotated.verify(&before).as_deref(), Some("abc"));
        let after = rotated.sign("abc");
        assert_ne!(after, before, "the newest key signs");
        assert_eq!(old.verify(&after), None);
    }

    proptest::proptest! {
        #[test]
        fn only_signed_ids_verify(id in "[A-Za-z0-9_-]{1,64}", junk in ".{0,120}", at in 0usize..200) {
            let jar = LoginCookie::new(&[key(3)], true);
            let value = jar.sign(&id);
            proptest::prop_assert_eq!(jar.verify(&value), Some(id.clone()));
            proptest::prop_assert_eq!(jar.verify(&junk), None);
            // Any change of one character breaks the signature.
            let mut chars: Vec<char> = value.chars().collect();
            let i = at % chars.len();
            chars[i] = if chars[i] == 'x' { 'y' } else { 'x' };
            let changed: String = chars.into_iter().collect();
            if changed != value {
                proptest::prop_assert_eq!(jar.verify(&changed), None);
            }
        }
    }

    #[test]
    fn the_cookie_is_read_from_requests_and_named_by_its_security() {
        let jar = LoginCookie::new(&[key(1)], true);
        let set = jar.set("abc");
        let set = set.to_str().unwrap();
        assert!(set.starts_with("__Host-idlegate-login="));
        assert!(
            set.split("; ").any(|attribute| attribute == "Secure"),
            "{set}"
        );
        assert!(jar.clear().to_str().unwrap().contains("Max-Age=0"));
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            format!("a=1; __Host-idlegate-login={}; b=2", jar.sign("abc"))
                .parse()
                .unwrap(),
        );
        assert_eq!(jar.from_request(&headers).as_deref(), Some("abc"));
        let plain = LoginCookie::new(&[key(1)], false);
        assert_eq!(plain.name(), "idlegate-login");
        // Both names are idlegate's own, so the app never gets the cookie.
        assert!(cookies::is_own(plain.name().as_bytes()) && cookies::is_own(jar.name().as_bytes()));
        assert_eq!(plain.from_request(&headers), None);
    }
}
