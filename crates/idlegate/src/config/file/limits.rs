//! `[limits]`: how much one client may hold of idlegate's connections, time, memory and CPU.

use serde::{Deserialize, Serialize};

/// `[limits]`: bounds on what browsers (or anyone who can reach idlegate) may hold.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    /// Most browser connections open at once. A connection over it is accepted and closed at
    /// once. Each tab also holds one connection to the app, so keep it under half the open
    /// files idlegate may have (`ulimit -n`). At least 1. Default `8192`.
    pub max_connections: u32,
    /// Most connections open at once from one client address (an IPv6 client's /64).
    /// Addresses in `proxy.trusted_proxies` are exempt (everyone comes through them). `0`
    /// means no limit. Default `256`.
    pub max_connections_per_address: u32,
    /// A connection with no request in progress (HTTP/1.1 keep-alive, HTTP/2 with no open
    /// stream) is closed after this long. A tab's WebSocket is never idle-closed by this: tab
    /// sessions follow `[tabs]`. Default `"60s"`.
    pub idle_timeout: String,
    /// Most password checks (Argon2, 19 MiB each) running at once; a sign-in that waits
    /// longer than 2 seconds for one gets status 503 with `Retry-After`. `0` means twice the
    /// CPU cores. Default `0`.
    pub password_checks: u32,
    /// Most app pages being rewritten (read whole, up to 4 MiB, to add the page script) at
    /// once. A page that waits longer than 1 second for a turn is passed on unchanged (and
    /// not cached). At least 1. Default `16`.
    pub page_rewrites: u32,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_connections: 8192,
            max_connections_per_address: 256,
            idle_timeout: "60s".to_owned(),
            password_checks: 0,
            page_rewrites: 16,
        }
    }
}
