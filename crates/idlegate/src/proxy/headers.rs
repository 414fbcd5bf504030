//! Header rules for relayed requests and responses: hop-by-hop headers and `X-Forwarded-*`.

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::web::Scheme;

/// Headers that describe one connection and must not be relayed (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Whether the request asks to switch to WebSocket.
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    let websocket = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    connection_upgrade && websocket
}

/// Sets `X-Forwarded-For`, `-Proto` and `-Host`. A trusted peer's values are kept and the
/// peer is appended to the chain; anyone else's are replaced, so a browser cannot pose as
/// another address.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    trusted: bool,
    host: Option<&HeaderValue>,
) {
    let peer_ip = peer.ip().to_canonical().to_string();
    let chain = match headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(existing) if trusted && !existing.trim().is_empty() => {
            format!("{}, {peer_ip}", existing.trim())
        }
        _ => peer_ip,
    };
    if let Ok(value) = HeaderValue::from_str(&chain) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    if !(trusted && headers.contains_key(X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if !(trusted && headers.contains_key(X_FORWARDED_HOST)) {
        match host {
            Some(host) => {
                headers.insert(X_FORWARDED_HOST, host.clone());
            }
            None => {
                headers.remove(X_FORWARDED_HOST);
            }
        }
    }
}

/// The scheme of a request (idlegate itself only speaks plain HTTP).
pub fn scheme(headers: &HeaderMap, trusted: bool) -> Scheme {
    let https = trusted
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    Scheme(if https { "https" } else { "http" })
}

/// The browser's address: the peer, or behind a trusted proxy the address that proxy saw
/// (the last `X-Forwarded-For` entry, which the proxy itself appended).
pub fn client_addr(headers: &HeaderMap, peer: SocketAddr, trusted: bool) -> SocketAddr {
    if !trusted {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|entry| entry.trim().parse::<std::net::IpAddr>().ok())
        .next_back()
        .map_or(peer, |ip| SocketAddr::new(ip, peer.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/html"),
        ]);
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("content-type"));
    }

    #[test]
    fn websocket_upgrade_is_detected_case_insensitively() {
        assert!(is_websocket_upgrade(&map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket")
        ])));
        assert!(!is_websocket_upgrade(&map(&[("upgrade", "websocket")])));
        assert!(!is_websocket_upgrade(&map(&[
            ("connection", "upgrade"),
            ("upgrade", "h2c")
        ])));
    }

    #[test]
    fn untrusted_forwarding_headers_are_replaced() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil"),
        ]);
        let host = HeaderValue::from_static("apps.example.com");
        set_forwarded(&mut h, "10.0.0.5:4000".parse().unwrap(), false, Some(&host));
        assert_eq!(h["x-forwarded-for"], "10.0.0.5");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "apps.example.com");
    }

    #[test]
    fn trusted_forwarding_headers_are_extended() {
        let mut h = map(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "apps.example.com"),
        ]);
        set_forwarded(
            &mut h,
            "[::ffff:10.0.0.5]:4000".parse().unwrap(),
            true,
            None,
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 10.0.0.5");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "apps.example.com");
    }
}
