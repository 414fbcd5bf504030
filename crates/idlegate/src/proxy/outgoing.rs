//! What the app sees of a request's headers: the one rule, applied to every request relayed
//! to the app, plain requests and WebSocket upgrades alike ([`super::forward::prepare_request_head`]).
//!
//! In this order:
//! 1. **hop-by-hop** headers go (RFC 9110 §7.6.1): the fixed list and those the `Connection`
//!    header names, except that `Connection` never removes a header idlegate must keep or
//!    set ([`kept`]): a sender may not name end-to-end fields (RFC 9110 §7.6.1), and a
//!    browser doing so would otherwise strip the identity headers idlegate sets, the `Cookie`
//!    and `Origin` the app checks, or a WebSocket handshake's own fields (RFC 6455 §4.1);
//! 2. **identity headers** the client sent go, all of them ([`identity::strip`]): in header
//!    mode too, where the proxy's were read before ([`crate::auth::Auth::check`]);
//! 3. **idlegate's cookies** go and the rest are joined in one field ([`cookies::for_app`]),
//!    and so does the page script's tab token ([`super::requests::TAB_HEADER`]);
//! 4. **idlegate's identity headers** are set from the login it holds ([`identity::set`]).
//!
//! `Host` and `X-Forwarded-*` are set afterwards, from the request itself
//! ([`super::headers::set_forwarded`]).

use http::header::{
    HeaderName, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, ORIGIN, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION,
};
use http::HeaderMap;

use super::headers::remove_hop_by_hop_except;
use crate::auth::{identity, Identity};
use crate::config::IdentityHeaders;
use crate::web::cookies;

/// End-to-end headers a `Connection` option may not remove, besides the identity headers.
const END_TO_END: [HeaderName; 12] = [
    HOST,
    COOKIE,
    ORIGIN,
    CONTENT_LENGTH,
    CONTENT_TYPE,
    SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION,
    SEC_WEBSOCKET_PROTOCOL,
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("forwarded"),
];

/// Whether a header must survive a `Connection` option naming it: [`END_TO_END`] and every
/// identity header ([`identity::is_identity`]).
pub fn kept(name: &HeaderName, names: &IdentityHeaders) -> bool {
    END_TO_END.contains(name) || identity::is_identity(name, names)
}

/// Makes `headers` what the app may see (see the module's steps), for a request whose login
/// has `identity` (`None`: nobody is signed in, or nobody signs in).
pub fn request_headers(
    headers: &mut HeaderMap,
    names: &IdentityHeaders,
    identity: Option<&Identity>,
) {
    remove_hop_by_hop_except(headers, |name| kept(name, names));
    // The page script's tab token is idlegate's business.
    headers.remove(super::requests::TAB_HEADER);
    identity::strip(headers, names);
    cookies::for_app(headers);
    if let Some(identity) = identity {
        identity::set(headers, names, identity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::headers::tests::map;

    fn names() -> IdentityHeaders {
        IdentityHeaders {
            user: "x-forwarded-user".parse().unwrap(),
            name: "x-forwarded-preferred-username".parse().unwrap(),
            email: "x-forwarded-email".parse().unwrap(),
            groups: "x-forwarded-groups".parse().unwrap(),
        }
    }

    fn alice() -> Identity {
        Identity {
            user: "alice".into(),
            name: None,
            email: None,
            groups: Vec::new(),
        }
    }

    #[test]
    fn connection_cannot_remove_what_idlegate_keeps_or_sets() {
        let mut h = map(&[
            (
                "connection",
                "Upgrade, X-Forwarded-User, Cookie, Origin, Host, Sec-WebSocket-Key, x-drop",
            ),
            ("upgrade", "websocket"),
            ("host", "apps.example"),
            ("origin", "https://apps.example"),
            ("cookie", "a=1"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("x-drop", "1"),
            ("keep-alive", "timeout=5"),
        ]);
        request_headers(&mut h, &names(), Some(&alice()));
        assert_eq!(h["x-forwarded-user"], "alice");
        for name in ["host", "origin", "cookie", "sec-websocket-key"] {
            assert!(h.contains_key(name), "{name}");
        }
        for name in ["connection", "upgrade", "x-drop", "keep-alive"] {
            assert!(!h.contains_key(name), "{name}");
        }
    }

    #[test]
    fn client_identity_and_idlegate_cookies_never_reach_the_app() {
        let mut h = map(&[
            ("x-forwarded-user", "mallory"),
            ("x-forwarded-groups", "admins"),
            ("x-forwarded-preferred-username", "root"),
            ("cookie", "idlegate-login=abc.def"),
            ("cookie", "theirs=1"),
        ]);
        request_headers(&mut h, &names(), Some(&alice()));
        assert_eq!(h.get_all("x-forwarded-user").iter().count(), 1);
        assert_eq!(h["x-forwarded-user"], "alice");
        // idlegate's display name (the key, without one of its own), never the client's.
        assert_eq!(
            h.get_all("x-forwarded-preferred-username")
                .iter()
                .collect::<Vec<_>>(),
            ["alice"]
        );
        assert!(!h.contains_key("x-forwarded-groups"));
        assert_eq!(h.get_all("cookie").iter().collect::<Vec<_>>(), ["theirs=1"]);
        let mut anonymous = map(&[("x-forwarded-user", "mallory")]);
        request_headers(&mut anonymous, &names(), None);
        assert!(anonymous.is_empty());
    }
}
