//! What logs may say about secrets and about anything a client chose.
//!
//! App session ids let anyone who knows them resume a session, so they never appear in logs in
//! clear ([`short_hash`]). Text a client chose (a query parameter, a username, a path, a header)
//! is logged only as a bounded value ([`client_value`], [`path`]): a word of a fixed
//! vocabulary when it is one, else a short hash and its length. So a log line has a bounded
//! size whatever a client sends, and a client cannot write lines of its own into the log
//! (newlines, escapes, fake fields).
//!
//! The salt is random per process: equal inputs give equal hashes within one process (so a
//! session or a client can be followed through its log lines) but cannot be looked up or
//! matched across processes.

use std::fmt;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

fn salt() -> &'static [u8; 16] {
    static SALT: OnceLock<[u8; 16]> = OnceLock::new();
    SALT.get_or_init(rand::random)
}

/// The first 8 hex digits of a salted SHA-256 of `secret`.
pub fn short_hash(secret: &str) -> String {
    let digest = Sha256::new()
        .chain_update(salt())
        .chain_update(secret.as_bytes())
        .finalize();
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// A client-chosen string as a log value: see [`client_value`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogValue {
    /// The text was this word of the vocabulary it was checked against.
    Known(&'static str),
    /// Anything else: [`short_hash`] of the text and its length in bytes.
    Hashed { hash: String, len: usize },
}

impl fmt::Display for LogValue {
    /// `word`, or `#<8 hex digits>/<length>` (at most 30 bytes).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Known(word) => f.write_str(word),
            Self::Hashed { hash, len } => write!(f, "#{hash}/{len}"),
        }
    }
}

/// The one way a string a client chose reaches a log: the word of `known` it equals (a
/// fixed vocabulary, such as [`OAUTH_ERRORS`]), else a salted hash of it with its length in
/// bytes (`#1a2b3c4d/37`). Pass `&[]` when no value is known in advance (usernames).
pub fn client_value(text: &str, known: &[&'static str]) -> LogValue {
    match known.iter().find(|word| **word == text) {
        Some(word) => LogValue::Known(word),
        None => LogValue::Hashed {
            hash: short_hash(text),
            len: text.len(),
        },
    }
}

/// The `error` codes an OAuth 2.0 authorization server may send back (RFC 6749
/// §4.1.2.1) and those OpenID Connect adds (OpenID Connect Core 1.0 §3.1.2.6).
pub const OAUTH_ERRORS: &[&str] = &[
    "invalid_request",
    "unauthorized_client",
    "access_denied",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
    "interaction_required",
    "login_required",
    "account_selection_required",
    "consent_required",
    "invalid_request_uri",
    "invalid_request_object",
    "request_not_supported",
    "request_uri_not_supported",
    "registration_not_supported",
];

/// Segments of a logged path beyond this many are summarised as `…`.
const PATH_SEGMENTS: usize = 12;
/// A segment longer than this (in bytes) is logged as `{id}`.
const SEGMENT_BYTES: usize = 32;
/// A segment with this many digits or more is taken for an id.
const ID_DIGITS: usize = 6;
/// A segment of only hex digits and `-`, this long or longer, is taken for an id.
const HEX_ID_BYTES: usize = 16;

/// Whether a path segment looks like an id (a session, a file, a hash) or is not plain
/// text, and must not be logged: longer than 32 bytes, anything but ASCII letters, digits
/// and `._~-`, 6 digits or more, or 16 hex digits and dashes or more (a UUID, a hash).
fn is_id_like(segment: &str) -> bool {
    let plain = segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b));
    let digits = segment.bytes().filter(u8::is_ascii_digit).count();
    let hex = segment.len() >= HEX_ID_BYTES
        && segment.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    !plain || segment.len() > SEGMENT_BYTES || digits >= ID_DIGITS || hex
}

/// A request path as a log value: each segment that looks like an id ([`is_id_like`]:
/// session ids, upload ids, hashes, percent-encoded or long text) becomes `{id}`, and only
/// the first 12 segments are kept (`/…` stands for the rest). The result is at most about
/// 400 bytes whatever the path. `path` is the canonical path ([`crate::paths`]), without
/// the query; the query is never logged.
pub fn path(path: &str) -> String {
    let mut out = String::new();
    let segments = path.strip_prefix('/').unwrap_or(path).split('/');
    for (i, segment) in segments.enumerate() {
        if i == PATH_SEGMENTS {
            out.push_str("/…");
            break;
        }
        out.push('/');
        if is_id_like(segment) {
            out.push_str("{id}");
        } else {
            out.push_str(segment);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_short_stable_and_hides_the_input() {
        let id = "a6d10ebe-1988-4e2e-ab73-16d4649c3f08";
        let h = short_hash(id);
        assert_eq!(h.len(), 8);
        assert_eq!(h, short_hash(id));
        assert_ne!(h, short_hash("another"));
        assert!(!id.contains(&h));
    }

    #[test]
    fn client_values_are_known_words_or_bounded_hashes() {
        assert_eq!(
            client_value("access_denied", OAUTH_ERRORS).to_string(),
            "access_denied"
        );
        let hostile = format!("x\n{}", "A".repeat(100_000));
        let logged = client_value(&hostile, OAUTH_ERRORS).to_string();
        assert!(
            logged.starts_with('#') && logged.ends_with("/100002"),
            "{logged}"
        );
        assert!(logged.len() <= 30);
        assert!(!logged.contains('\n') && !logged.contains("AAAA"));
        assert_eq!(
            client_value("alice", &[]).to_string(),
            client_value("alice", &[]).to_string()
        );
    }

    #[test]
    fn paths_keep_their_shape_and_lose_their_ids() {
        assert_eq!(
            path("/app/_stcore/upload_file/a6d10ebe-1988-4e2e-ab73-16d4649c3f08/7f3c2d11-0b8e-4a55-9f3e-2d6b8c0e1a42"),
            "/app/_stcore/upload_file/{id}/{id}"
        );
        assert_eq!(
            path("/media/0123456789abcdef0123456789abcdef.png"),
            "/media/{id}"
        );
        assert_eq!(path("/static/js/main.js"), "/static/js/main.js");
        assert_eq!(path("/"), "/");
        assert_eq!(path("/a%0Ab/<script>"), "/{id}/{id}");
        assert_eq!(path("/deadbeefdeadbeef"), "/{id}");
        let long = "/a".repeat(10_000);
        let logged = path(&long);
        assert!(logged.ends_with("/…") && logged.len() < 64, "{logged}");
        assert!(path(&format!("/{}", "b".repeat(5000))).len() < 10);
    }

    proptest::proptest! {
        #[test]
        fn logged_paths_are_bounded_plain_text(p in "/[ -~]{0,2000}") {
            let logged = path(&p);
            proptest::prop_assert!(logged.len() <= 12 * (SEGMENT_BYTES + 1) + 4);
            proptest::prop_assert!(logged.bytes().all(|b| b.is_ascii_graphic()) || logged.contains('…'));
        }
    }
}
