//! Identity headers: the signed-in person, told to the app.
//!
//! Every request and WebSocket upgrade first loses any copy of the identity headers the
//! browser sent (a browser must never be able to claim to be someone); then idlegate sets
//! them from the login session (both in `proxy::outgoing`, the one rule for what the app
//! sees). In header mode, a trusted proxy's copies of the headers it sets itself
//! (`login.proxy_headers`) are read first.

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};

use super::Identity;
use crate::config::{IdentityHeaders, ProxyHeaders};

/// Identity headers that authenticating proxies and apps commonly trust (oauth2-proxy's
/// `X-Forwarded-*` set), removed from every request even when idlegate is configured to use
/// other names, so a browser cannot pass one of them on to an app that trusts it.
pub const WELL_KNOWN: [HeaderName; 4] = [
    HeaderName::from_static("x-forwarded-user"),
    HeaderName::from_static("x-forwarded-email"),
    HeaderName::from_static("x-forwarded-groups"),
    HeaderName::from_static("x-forwarded-preferred-username"),
];

/// Whether `name` is an identity header: one of `names` or [`WELL_KNOWN`].
pub fn is_identity(name: &HeaderName, names: &IdentityHeaders) -> bool {
    names.all().contains(&name) || WELL_KNOWN.contains(name)
}

/// Removes every identity header ([`is_identity`]) from a request.
pub fn strip(headers: &mut HeaderMap, names: &IdentityHeaders) {
    for name in names.all().into_iter().chain(WELL_KNOWN.iter()) {
        headers.remove(name);
    }
}

/// The identity a trusted proxy put in the headers, if it named a user. Email and groups
/// are read only when `sets` says the proxy sets them itself: a proxy that does not set a
/// header passes on the browser's copy. A header that appears more than once is not read
/// at all (a user header twice names nobody): a proxy that adds its value beside the
/// browser's instead of replacing it would otherwise let the browser's copy, first, win.
pub fn read(headers: &HeaderMap, names: &IdentityHeaders, sets: ProxyHeaders) -> Option<Identity> {
    let text = |name| {
        let mut fields = headers.get_all(name).iter();
        let first = fields.next()?;
        if fields.next().is_some() {
            return None;
        }
        first.to_str().ok().map(str::trim).filter(|v| !v.is_empty())
    };
    let user = text(&names.user)?;
    Some(Identity {
        user: user.to_owned(),
        name: None,
        email: text(&names.email).filter(|_| sets.email).map(str::to_owned),
        groups: text(&names.groups)
            .filter(|_| sets.groups)
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
    put(
        &names.name,
        identity.name.as_deref().unwrap_or(&identity.user),
    );
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
            name: "x-forwarded-preferred-username".parse().unwrap(),
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
        assert!(read(&headers, &names(), ALL).is_none());
        let alice = Identity {
            user: "alice".into(),
            name: None,
            email: Some("alice@example.com".into()),
            groups: vec!["a".into(), "b".into()],
        };
        set(&mut headers, &names(), &alice);
        assert_eq!(read(&headers, &names(), ALL), Some(alice));
    }

    const ALL: ProxyHeaders = ProxyHeaders {
        email: true,
        groups: true,
    };

    #[test]
    fn only_the_headers_the_proxy_sets_are_read() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-user", "carol".parse().unwrap());
        headers.insert("x-forwarded-email", "boss@example.com".parse().unwrap());
        headers.insert("x-forwarded-groups", "admins".parse().unwrap());
        let carol = read(&headers, &names(), ProxyHeaders::default()).unwrap();
        assert_eq!(
            (carol.user.as_str(), carol.email, carol.groups.len()),
            ("carol", None, 0)
        );
        let carol = read(&headers, &names(), ALL).unwrap();
        assert_eq!(carol.groups, ["admins"]);
    }

    #[test]
    fn well_known_identity_headers_go_whatever_the_configured_names() {
        let custom = IdentityHeaders {
            user: "remote-user".parse().unwrap(),
            name: "remote-name".parse().unwrap(),
            email: "remote-email".parse().unwrap(),
            groups: "remote-groups".parse().unwrap(),
        };
        let mut headers = HeaderMap::new();
        for name in [
            "remote-user",
            "x-forwarded-user",
            "x-forwarded-preferred-username",
            "x-other",
        ] {
            headers.insert(HeaderName::from_static(name), "v".parse().unwrap());
        }
        strip(&mut headers, &custom);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-other"));
        assert!(is_identity(
            &HeaderName::from_static("remote-groups"),
            &custom
        ));
        assert!(!is_identity(&HeaderName::from_static("cookie"), &custom));
    }

    #[test]
    fn a_header_given_twice_names_nobody() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-user", "carol".parse().unwrap());
        headers.append("x-forwarded-user", "admin".parse().unwrap());
        let all = ProxyHeaders {
            email: true,
            groups: true,
        };
        assert_eq!(read(&headers, &names(), all), None);
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-user", "carol".parse().unwrap());
        headers.append("x-forwarded-email", "a@example.com".parse().unwrap());
        headers.append("x-forwarded-email", "b@example.com".parse().unwrap());
        let carol = read(&headers, &names(), all).unwrap();
        assert_eq!(carol.user, "carol");
        assert_eq!(carol.email, None);
    }
}
