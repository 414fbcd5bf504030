//! Fuzzes the OpenID sign-in attempt cookie ([`AttemptSeal`]): arbitrary bytes as a cookie
//! value never open (no forgery verifies) and never panic; an attempt made of arbitrary
//! strings opens again with its own state and key, and not once any byte of its cookie
//! changes, under another state, under another key, or after it expired.
//!
//! The input, split at NUL bytes: the cookie value to try, a state, a redirect URL, a
//! return path.
#![no_main]

use std::sync::LazyLock;

use idlegate::auth::oidc::attempt::{Attempt, AttemptSeal, MAX_COOKIE};
use idlegate::auth::oidc::ATTEMPT_TTL;
use idlegate::config::CookieKey;
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_700_000_000;

static SEAL: LazyLock<AttemptSeal> = LazyLock::new(|| AttemptSeal::new(&[CookieKey([7; 32])]));
static OTHER: LazyLock<AttemptSeal> = LazyLock::new(|| AttemptSeal::new(&[CookieKey([8; 32])]));

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0).map(String::from_utf8_lossy);
    let forged = parts.next().unwrap_or_default();
    let state = parts.next().unwrap_or_default().into_owned();
    let redirect = parts.next().unwrap_or_default();
    let return_to = parts.next().unwrap_or_default();

    assert!(
        SEAL.open(&forged, &state, NOW).is_none(),
        "a forged attempt opened"
    );
    let (verifier, _nonce) = SEAL.secrets(&state, usize::from(data.first().copied().unwrap_or(0)));
    assert_eq!(verifier.len(), 43);

    let attempt = Attempt {
        state: state.clone(),
        started: NOW,
        redirect: redirect.into_owned(),
        return_to: return_to.into_owned(),
    };
    let Ok(cookie) = SEAL.seal(&attempt) else {
        return;
    };
    assert!(cookie.len() <= MAX_COOKIE);
    assert_eq!(SEAL.open(&cookie, &state, NOW), Some((attempt, 0)));
    assert!(SEAL.open(&cookie, &format!("{state}x"), NOW).is_none());
    assert!(
        OTHER.open(&cookie, &state, NOW).is_none(),
        "another key opened it"
    );
    assert!(
        SEAL.open(&cookie, &state, NOW + ATTEMPT_TTL.as_secs())
            .is_none(),
        "expired"
    );
    // Change one byte, chosen by the input, to another base64url character or the separator.
    let at = data.len() % cookie.len();
    let mut changed = cookie.into_bytes();
    changed[at] = if changed[at] == b'A' { b'B' } else { b'A' };
    // The sealed cookie is ASCII (base64url and a dot), and one byte became `A` or `B`.
    let changed = String::from_utf8(changed).expect("ASCII");
    assert!(
        SEAL.open(&changed, &state, NOW).is_none(),
        "a changed cookie opened"
    );
});
