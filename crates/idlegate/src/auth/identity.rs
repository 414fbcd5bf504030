//! Identity headers: the signed-in person, told to the app.
//!
//! Every request and WebSocket upgrade first loses any copy of the identity headers the
//! browser sent (a browser must never be able to claim to be someone); then idlegate sets
//! them from the login session. In header mode, a trusted proxy's copies are read first.

use http::{HeaderMap, HeaderValue};

use super::Identity;
use crate::config::IdentityHeaders;

/// Removes every identity header from a request.
pub fn strip(headers: &mut HeaderMap, names: &IdentityHeaders) {
    for name in names.all() {
        headers.remove(name);
    }
}

/// The identity a trusted proxy put in the headers, if it named a user.
pub fn read(headers: &HeaderMap, names: &IdentityHeaders) -> Option<Identity> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let user = text(&names.user)?;
    Some(Identity {
        user: user.to_owned(),
        name: None,
        email: text(&names.email).map(str::to_owned),
        groups: text(&names.groups)
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Sets the identity headers for the app (after [`strip`]).
pub fn set(headers: &mut HeaderMap, names: &IdentityHeaders, identity: &Identity) {
    let mut put = |name: &http::HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name.clone(), value);
        }
    };
    put(&names.user, &identity.user);
    if let Some(email) = &identity.email {
        put(&names.email, email);
    }
    if !identity.groups.is_empty() {
        put(&names.groups, &identity.groups.join(","));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> IdentityHeaders {
        IdentityHeaders {
            user: "x-forwarded-user".parse().unwrap(),
            email: "x-forwarded-email".parse().unwrap(),
            groups: "x-forwarded-groups".parse().unwrap(),
        }
    }

    #[test]
    fn client_copies_are_replaced_by_the_login() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-user", "mallory".parse().unwrap());
        headers.insert("x-forwarded-groups", "admins".parse().unwrap());
        strip(&mut headers, &names());
        assert!(read(&headers, &names()).is_none());
        let alice = Identity {
            user: "alice".into(),
            name: None,
            email: Some("alice@example.com".into()),
            groups: vec!["a".into(), "b".into()],
        };
        set(&mut headers, &names(), &alice);
        assert_eq!(read(&headers, &names()), Some(alice));
    }
}
