//! Who signed in, from a verified ID token's claims: the one rule that turns claims into an
//! [`Identity`].
//!
//! - **The key** (`Identity::user`: per-user tab caps, the login store, sign-out
//!   everywhere, the user identity header) is the claim `login.oidc.user_claim`, `sub` by
//!   default. `sub` is "a locally unique and never reassigned identifier within the Issuer"
//!   (OpenID Connect Core 1.0 §2); idlegate trusts exactly one issuer (`login.oidc.issuer`,
//!   which the ID token's `iss` must equal), so `sub` alone is unique and `iss` is not added
//!   to it. The key claim has no fallback: a token without it is refused, since falling back
//!   to another claim would mix two namespaces of keys. With `user_claim = "email"` the email
//!   must be verified too.
//! - **The display name** (`Identity::name`) is `preferred_username`, else `name`, else the
//!   verified `email`, else the key. It is for people to read, never to decide anything:
//!   `preferred_username` is neither unique nor stable (Core §5.1: "MUST NOT rely upon this
//!   value being unique").
//! - **The email** is passed on only when `email_verified` is `true` (Core §5.1: the provider
//!   vouches for it only then). The JSON string `"true"`, which some providers send, counts.
//! - **Groups** are the strings of the array claim `login.oidc.groups_claim`.
//!
//! Every value must be a header-safe string: no control characters, at most
//! [`MAX_CLAIM_LEN`] bytes (groups: [`MAX_GROUPS`] of them). A key that is not is refused;
//! a display name or email that is not is left out; a group that is not is skipped.

use serde_json::{Map, Value};

use super::super::Identity;

/// The longest key, display name, email or group accepted, in bytes. `sub` is at most 255
/// ASCII characters (Core §2); 1 KiB leaves room for emails and names.
pub const MAX_CLAIM_LEN: usize = 1024;
/// At most this many groups are kept (the rest are dropped).
pub const MAX_GROUPS: usize = 256;

/// Why the claims name nobody.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    #[error(
        "the ID token has no usable {0:?} claim (login.oidc.user_claim): a non-empty string \
         of at most 1024 bytes without control characters"
    )]
    NoKey(String),
    #[error(
        "the ID token's email is not verified (email_verified), so it cannot be the user's \
         key (login.oidc.user_claim = \"email\")"
    )]
    UnverifiedEmailKey,
}

/// A header-safe string claim: non-empty after trimming, at most [`MAX_CLAIM_LEN`] bytes,
/// no control characters.
fn text<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str).and_then(safe)
}

fn safe(value: &str) -> Option<&str> {
    let value = value.trim();
    (!value.is_empty() && value.len() <= MAX_CLAIM_LEN && !value.chars().any(char::is_control))
        .then_some(value)
}

/// Whether the provider says the email is verified (`email_verified`: `true` or `"true"`).
fn email_verified(claims: &Map<String, Value>) -> bool {
    match claims.get("email_verified") {
        Some(Value::Bool(verified)) => *verified,
        Some(Value::String(text)) => text.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// The identity a verified ID token's `claims` name, by the rules above. `user_claim` is the
/// key claim (default `sub`), `groups_claim` the groups' array claim.
pub fn identity(
    claims: &Map<String, Value>,
    user_claim: &str,
    groups_claim: &str,
) -> Result<Identity, ClaimsError> {
    let email = text(claims, "email").filter(|_| email_verified(claims));
    if user_claim == "email" && text(claims, "email").is_some() && email.is_none() {
        return Err(ClaimsError::UnverifiedEmailKey);
    }
    let user = text(claims, user_claim).ok_or_else(|| ClaimsError::NoKey(user_claim.to_owned()))?;
    let name = text(claims, "preferred_username")
        .or_else(|| text(claims, "name"))
        .or(email)
        .unwrap_or(user);
    let groups = claims
        .get(groups_claim)
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|g| g.as_str().and_then(safe).map(str::to_owned))
                .take(MAX_GROUPS)
                .collect()
        })
        .unwrap_or_default();
    Ok(Identity {
        user: user.to_owned(),
        name: Some(name.to_owned()),
        email: email.map(str::to_owned),
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    fn of(value: Value) -> Result<Identity, ClaimsError> {
        identity(&claims(value), "sub", "groups")
    }

    #[test]
    fn the_key_is_sub_and_the_name_is_for_display() {
        let who = of(json!({
            "sub": "248289761001",
            "preferred_username": "alice",
            "name": "Alice Liddell",
            "email": "alice@example.com",
            "email_verified": true,
            "groups": ["analysts", 7, "", "ops"],
        }))
        .unwrap();
        assert_eq!(who.user, "248289761001");
        assert_eq!(who.name.as_deref(), Some("alice"));
        assert_eq!(who.email.as_deref(), Some("alice@example.com"));
        assert_eq!(who.groups, ["analysts", "ops"]);
    }

    #[test]
    fn an_unverified_email_is_never_passed_on() {
        for verified in [json!(false), json!("false"), json!(null), json!(1)] {
            let who = of(json!({
                "sub": "s1", "email": "ceo@example.com", "email_verified": verified,
            }))
            .unwrap();
            assert_eq!(who.email, None, "{verified}");
            // Nor shown as the name.
            assert_eq!(who.name.as_deref(), Some("s1"));
        }
        let missing = of(json!({"sub": "s1", "email": "ceo@example.com"})).unwrap();
        assert_eq!(missing.email, None);
        let string_true = of(json!({
            "sub": "s1", "email": "a@example.com", "email_verified": "true",
        }))
        .unwrap();
        assert_eq!(string_true.email.as_deref(), Some("a@example.com"));
    }

    #[test]
    fn the_display_name_falls_back_to_name_then_verified_email_then_the_key() {
        let name = of(json!({"sub": "s", "name": "Bob", "preferred_username": " "})).unwrap();
        assert_eq!(name.name.as_deref(), Some("Bob"));
        let email = of(json!({"sub": "s", "email": "b@x", "email_verified": true})).unwrap();
        assert_eq!(email.name.as_deref(), Some("b@x"));
        let key = of(json!({"sub": "s"})).unwrap();
        assert_eq!(key.name.as_deref(), Some("s"));
    }

    #[test]
    fn a_token_without_a_usable_key_is_refused_without_falling_back() {
        let no_sub = json!({"preferred_username": "alice", "email": "a@x", "email_verified": true});
        assert_eq!(of(no_sub), Err(ClaimsError::NoKey("sub".into())));
        for bad in [json!(""), json!("a\nb"), json!(42), json!("x".repeat(1025))] {
            assert!(of(json!({"sub": bad})).is_err());
        }
    }

    #[test]
    fn another_key_claim_can_be_chosen_and_email_must_then_be_verified() {
        let token = claims(json!({
            "sub": "s", "oid": "00000000-0000-0000-0000-000000000001",
            "email": "a@x", "email_verified": false,
        }));
        let by_oid = identity(&token, "oid", "groups").unwrap();
        assert_eq!(by_oid.user, "00000000-0000-0000-0000-000000000001");
        assert_eq!(
            identity(&token, "email", "groups"),
            Err(ClaimsError::UnverifiedEmailKey)
        );
        let mut verified = token.clone();
        verified.insert("email_verified".into(), json!(true));
        assert_eq!(identity(&verified, "email", "groups").unwrap().user, "a@x");
    }

    #[test]
    fn values_that_cannot_be_a_header_are_left_out() {
        let who = of(json!({
            "sub": "s",
            "preferred_username": "evil\r\nX-Forwarded-User: admin",
            "name": "Carol",
            "email": "c@x\u{7f}",
            "email_verified": true,
            "groups": (0..300).map(|i| format!("g{i}")).collect::<Vec<_>>(),
        }))
        .unwrap();
        assert_eq!(who.name.as_deref(), Some("Carol"));
        assert_eq!(who.email, None);
        assert_eq!(who.groups.len(), MAX_GROUPS);
    }
}
