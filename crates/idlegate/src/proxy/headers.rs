//! Header rules for relayed requests and responses: hop-by-hop headers, `X-Forwarded-*`, and
//! what they say about the browser (its address, the scheme and authority it used). What
//! the app sees of a request as a whole is decided in [`super::outgoing`].

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Uri;

use crate::config::ProxyConfig;
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

/// Forwarding headers of other forms that only a trusted proxy may send (RFC 7239's
/// `Forwarded`, and `X-Real-IP`, `X-Forwarded-Port`): from anyone else they are dropped.
const OTHER_FORWARDING: [HeaderName; 3] = [
    HeaderName::from_static("forwarded"),
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-forwarded-port"),
];

/// Removes hop-by-hop headers, including those the `Connection` header names (responses
/// from the app, whose `Connection` is believed).
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    remove_hop_by_hop_except(headers, |_| false);
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1): the fixed list, and those the `Connection`
/// header names unless `keep` says the header is end-to-end and must stay.
pub fn remove_hop_by_hop_except(headers: &mut HeaderMap, keep: impl Fn(&HeaderName) -> bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| !keep(name))
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
/// peer is appended to the chain (every `X-Forwarded-For` field, in order, joined into one:
/// a proxy may add a field of its own instead of extending the last, RFC 9110 §5.3); anyone
/// else's are replaced, so a browser cannot pose as another address.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    trusted: bool,
    host: Option<&HeaderValue>,
) {
    let peer_ip = peer.ip().to_canonical().to_string();
    let existing: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let chain = if trusted && !existing.is_empty() {
        format!("{}, {peer_ip}", existing.join(", "))
    } else {
        peer_ip
    };
    if let Ok(value) = HeaderValue::from_str(&chain) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    if !trusted {
        for name in &OTHER_FORWARDING {
            headers.remove(name);
        }
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

/// The browser's address: the peer, or behind a trusted proxy the address the chain of
/// trusted proxies saw ([`client_ip`] over every `X-Forwarded-For` field, in order). The
/// port is the peer's.
pub fn client_addr(headers: &HeaderMap, peer: SocketAddr, proxies: &ProxyConfig) -> SocketAddr {
    let entries: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let ip = client_ip(&entries, peer.ip(), |ip| proxies.is_trusted(ip));
    SocketAddr::new(ip, peer.port())
}

/// The client's address from an `X-Forwarded-For` chain (`entries` left to right, the
/// nearest hop last) received from `peer`. The rule: walk from the right, past every
/// address `trusted` says is a proxy of ours; the first entry that is not one is the client.
/// When that entry is not an address ([`forwarded_ip`]: `unknown`, an obfuscated id of RFC
/// 7239 §6.3, garbage), the client is the nearest trusted hop before it — never an entry
/// further left, which whoever sent that entry wrote. An untrusted `peer` is the client
/// itself. Empty entries are skipped (RFC 9110 §5.6.1).
pub fn client_ip(entries: &[&str], peer: IpAddr, trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted(peer) {
        return peer;
    }
    let mut nearest = peer;
    for entry in entries.iter().rev().filter(|e| !e.trim().is_empty()) {
        match forwarded_ip(entry) {
            Some(ip) if trusted(ip) => nearest = ip,
            Some(ip) => return ip,
            None => return nearest,
        }
    }
    nearest
}

/// One `X-Forwarded-For` entry as an address: `ip`, `ip:port`, `[v6]` or `[v6]:port`
/// (optionally quoted, as RFC 7239 `for=` values are), IPv4-mapped IPv6 as IPv4. `None` for
/// anything else.
pub fn forwarded_ip(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let entry = entry
        .strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or(entry);
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse::<Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

/// The authority (`host[:port]`) the browser addressed the request to: from a trusted proxy
/// the first `X-Forwarded-Host` value; else the request target's authority (HTTP/2's
/// `:authority`, RFC 9113 §8.3.1, or an absolute-form target); else `Host` (HTTP/1.1).
/// `None` when the request names none.
pub fn authority(uri: &Uri, headers: &HeaderMap, trusted: bool) -> Option<String> {
    let first = |name: &HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    trusted
        .then(|| first(&X_FORWARDED_HOST))
        .flatten()
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()))
        .or_else(|| first(&header::HOST))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A header map of `pairs`, repeated names kept as separate fields.
    pub(in crate::proxy) fn map(pairs: &[(&str, &str)]) -> HeaderMap {
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

    fn trusted(ip: IpAddr) -> bool {
        ip.to_string().starts_with("10.")
    }

    #[test]
    fn the_client_is_the_first_untrusted_entry_from_the_right() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cases: &[(&[&str], &str)] = &[
            (&["6.6.6.6", "203.0.113.9"], "203.0.113.9"),
            (&["6.6.6.6", "203.0.113.9:51234"], "203.0.113.9"),
            (&["6.6.6.6", "[2001:db8::7]:443", "10.0.0.2"], "2001:db8::7"),
            (&["6.6.6.6", "[2001:db8::7]"], "2001:db8::7"),
            (&["6.6.6.6", " \"198.51.100.3:80\" "], "198.51.100.3"),
            (&["6.6.6.6", "::ffff:198.51.100.4"], "198.51.100.4"),
            (&["6.6.6.6", "unknown"], "10.0.0.1"),
            (&["6.6.6.6", "_hidden", "10.0.0.2"], "10.0.0.2"),
            (&["6.6.6.6", "garbage:x", "10.0.0.3", " "], "10.0.0.3"),
            (&["10.0.0.5", "10.0.0.2"], "10.0.0.5"),
            (&[], "10.0.0.1"),
        ];
        for (entries, client) in cases {
            assert_eq!(client_ip(entries, peer, trusted), ip(client), "{entries:?}");
        }
        let stranger = ip("192.0.2.1");
        assert_eq!(client_ip(&["6.6.6.6"], stranger, trusted), stranger);
    }

    #[test]
    fn the_authority_is_the_target_or_host_or_a_trusted_forwarded_host() {
        let h2: Uri = "https://apps.example:8443/_idlegate/login".parse().unwrap();
        let origin_form: Uri = "/_idlegate/login".parse().unwrap();
        let host = map(&[
            ("host", "apps.example"),
            ("x-forwarded-host", "outer.example, x"),
        ]);
        assert_eq!(
            authority(&h2, &HeaderMap::new(), false).as_deref(),
            Some("apps.example:8443")
        );
        assert_eq!(
            authority(&origin_form, &host, false).as_deref(),
            Some("apps.example")
        );
        assert_eq!(
            authority(&origin_form, &host, true).as_deref(),
            Some("outer.example")
        );
        assert_eq!(authority(&origin_form, &HeaderMap::new(), true), None);
    }

    #[test]
    fn untrusted_forwarding_headers_are_replaced() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
        ]);
        let host = HeaderValue::from_static("apps.example.com");
        set_forwarded(&mut h, "10.0.0.5:4000".parse().unwrap(), false, Some(&host));
        assert_eq!(h["x-forwarded-for"], "10.0.0.5");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "apps.example.com");
        assert!(!h.contains_key("forwarded") && !h.contains_key("x-real-ip"));
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

    #[test]
    fn every_forwarded_for_field_of_a_trusted_peer_is_kept_in_order() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.7"),
        ]);
        set_forwarded(&mut h, "10.0.0.5:4000".parse().unwrap(), true, None);
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, 203.0.113.7, 10.0.0.5");
        let mut untrusted = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "7.7.7.7"),
        ]);
        set_forwarded(
            &mut untrusted,
            "198.51.100.2:4000".parse().unwrap(),
            false,
            None,
        );
        assert_eq!(untrusted.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(untrusted["x-forwarded-for"], "198.51.100.2");
    }
}
