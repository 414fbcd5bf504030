//! Fuzzes the client-address rule ([`client_addr`] over `X-Forwarded-For`, with trusted
//! proxies): arbitrary header fields from a peer must never panic, and the client is always
//! the peer, one of the trusted hops or an address in one of the entries, with the peer's
//! port; an untrusted peer is always the client itself.
//!
//! The first input byte chooses the peer; the rest, split at NUL bytes, is the
//! `X-Forwarded-For` fields in order.
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;

use http::header::{HeaderMap, HeaderValue};
use idlegate::config::{Config, ProxyConfig};
use idlegate::proxy::headers::{client_addr, forwarded_ip};
use libfuzzer_sys::fuzz_target;

static PROXIES: LazyLock<ProxyConfig> = LazyLock::new(|| {
    Config::from_toml(
        r#"[proxy]
        trusted_proxies = ["10.0.0.0/8", "192.168.1.1", "::1", "2001:db8::/32"]"#,
    )
    // A constant config: it parses, or the target itself is wrong.
    .expect("valid config")
    .proxy
});

const PEERS: [&str; 8] = [
    "10.1.2.3:4000",              // trusted
    "192.168.1.1:4001",           // trusted
    "[::1]:4002",                 // trusted
    "[2001:db8::7]:4003",         // trusted
    "[::ffff:10.9.9.9]:4004",     // trusted, IPv4-mapped
    "203.0.113.5:4005",           // not trusted
    "[2001:db9::1]:4006",         // not trusted
    "[::ffff:198.51.100.1]:4007", // not trusted, IPv4-mapped
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let peer: SocketAddr = PEERS[usize::from(choice) % PEERS.len()]
        .parse()
        .expect("PEERS are address literals");
    let mut headers = HeaderMap::new();
    for field in rest.split(|b| *b == 0) {
        if let Ok(value) = HeaderValue::from_bytes(field) {
            headers.append("x-forwarded-for", value);
        }
    }
    let client = client_addr(&headers, peer, &PROXIES);
    assert_eq!(client.port(), peer.port());
    let peer_ip = peer.ip().to_canonical();
    if !PROXIES.is_trusted(peer_ip) {
        assert_eq!(
            client.ip(),
            peer_ip,
            "an untrusted peer named another client"
        );
        return;
    }
    let entries: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(forwarded_ip)
        .collect();
    assert!(
        client.ip() == peer_ip || entries.contains(&client.ip()),
        "{} is neither the peer nor an entry",
        client.ip()
    );
});
