//! Shared pieces of the benchmark load tools `fakeapp` and `wsload`.
//!
//! * [`proto`]: the few Streamlit protobuf messages both tools build or recognise, encoded
//!   by hand (no protobuf dependency): `BackMsg.rerun_script` from the browser, and the
//!   `ForwardMsg`s a Streamlit server sends when a script runs.
//! * [`stats`]: exact percentiles over recorded samples.
//! * [`raise_nofile_limit`]: lifts the file-descriptor soft limit so one process can hold
//!   tens of thousands of sockets.
//! * [`churn`]: tabs opened and ended in churn, for soak tests.
//! * [`connect_tab`]: one browser-like connection to an app's WebSocket.
//! * [`ws_config`]: a WebSocket configuration with a small read buffer, so idle
//!   connections stay cheap.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub mod churn;

/// A client WebSocket connection.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Read buffer each WebSocket connection allocates up front. tungstenite's default is
/// 128 KiB, which dominates the memory of an idle connection; 4 KiB still reads small
/// messages in one go and larger ones in a few.
pub const WS_READ_BUFFER: usize = 4 * 1024;

/// WebSocket configuration used by both tools: tungstenite defaults except a read buffer
/// of `read_buffer` bytes.
pub fn ws_config(read_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(read_buffer.max(256))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. Returns the new soft limit.
pub fn raise_nofile_limit() -> Result<u64, nix::Error> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard)
}

/// Opens one browser-like WebSocket connection: subprotocols `streamlit,
/// PLACEHOLDER_AUTH_TOKEN` and an `Origin` matching the URL's host.
pub async fn connect_tab(url: &str, timeout: Duration) -> anyhow::Result<Ws> {
    let mut request = url
        .into_client_request()
        .map_err(|e| anyhow::anyhow!("invalid URL {url}: {e}"))?;
    let origin = {
        let uri = request.uri();
        let scheme = if uri.scheme_str() == Some("wss") {
            "https"
        } else {
            "http"
        };
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or("localhost");
        format!("{scheme}://{authority}")
    };
    let headers = request.headers_mut();
    headers.insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("streamlit, PLACEHOLDER_AUTH_TOKEN"),
    );
    headers.insert("Origin", HeaderValue::from_str(&origin)?);
    let config = ws_config(WS_READ_BUFFER);
    let (ws, _resp) = tokio::time::timeout(
        timeout,
        tokio_tungstenite::connect_async_with_config(request, Some(config), true),
    )
    .await
    .map_err(|_| anyhow::anyhow!("handshake timed out"))??;
    Ok(ws)
}

pub mod proto {
    //! Hand-encoded Streamlit protobuf messages.
    //!
    //! Field numbers (from Streamlit's `BackMsg.proto` / `ForwardMsg.proto`):
    //! `BackMsg.rerun_script` = 11 (`ClientState`: `query_string` = 1, `is_auto_rerun` = 6);
    //! `ForwardMsg.new_session` = 4 (`NewSession.initialize` = 1,
    //! `Initialize.session_id` = 6); `ForwardMsg.session_status_changed` = 9
    //! (`SessionStatus.script_is_running` = 2); `ForwardMsg.script_finished` = 6;
    //! `ForwardMsg.auth_redirect` = 40 (`AuthRedirect.url` = 1).

    /// First byte of a `BackMsg` carrying `rerun_script` (field 11, length-delimited).
    pub const RERUN_SCRIPT_TAG: u8 = 0x5a;
    /// First two bytes of a `ForwardMsg` carrying `auth_redirect` (field 40,
    /// length-delimited): the tag varint `c2 01`.
    pub const AUTH_REDIRECT_PREFIX: [u8; 2] = [0xc2, 0x01];

    /// Appends `value` as a protobuf varint.
    pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    /// Number of bytes `value` takes as a varint.
    pub fn varint_len(mut value: u64) -> usize {
        let mut n = 1;
        while value >= 0x80 {
            value >>= 7;
            n += 1;
        }
        n
    }

    fn client_state_len(query_len: usize, is_auto_rerun: bool) -> usize {
        let query = if query_len > 0 {
            1 + varint_len(query_len as u64) + query_len
        } else {
            0
        };
        query + if is_auto_rerun { 2 } else { 0 }
    }

    fn rerun_script_len(query_len: usize, is_auto_rerun: bool) -> usize {
        let inner = client_state_len(query_len, is_auto_rerun);
        1 + varint_len(inner as u64) + inner
    }

    /// Encodes `BackMsg{rerun_script{query_string, is_auto_rerun}}` with a `query_string`
    /// of ASCII filler sized so the whole message is as close to `total` bytes as the
    /// encoding allows without exceeding it (and never shorter than the smallest valid
    /// message: 2 bytes, or 4 with `is_auto_rerun`).
    pub fn rerun_script(total: usize, is_auto_rerun: bool) -> Vec<u8> {
        let mut query_len = total;
        while query_len > 0 && rerun_script_len(query_len, is_auto_rerun) > total {
            // Each step shrinks the message by at least one byte; the varint length
            // fields change by at most a byte at a boundary, so this converges quickly.
            let over = rerun_script_len(query_len, is_auto_rerun) - total;
            query_len = query_len.saturating_sub(over.max(1));
        }
        // A varint boundary can make the step above overshoot; take back what still fits.
        while rerun_script_len(query_len + 1, is_auto_rerun) <= total {
            query_len += 1;
        }
        let inner = client_state_len(query_len, is_auto_rerun);
        let mut out = Vec::with_capacity(rerun_script_len(query_len, is_auto_rerun));
        out.push(RERUN_SCRIPT_TAG);
        put_varint(&mut out, inner as u64);
        if query_len > 0 {
            out.push(0x0a);
            put_varint(&mut out, query_len as u64);
            out.extend((0..query_len).map(|i| b'a' + (i % 26) as u8));
        }
        if is_auto_rerun {
            out.extend_from_slice(&[0x30, 0x01]);
        }
        out
    }

    /// Whether a binary message from the browser is a `BackMsg.rerun_script`.
    pub fn is_rerun_script(msg: &[u8]) -> bool {
        msg.first() == Some(&RERUN_SCRIPT_TAG)
    }

    /// Whether a binary message from the server is a `ForwardMsg.auth_redirect`.
    /// `ForwardMsg.script_finished`.
    pub const SCRIPT_FINISHED_FIELD: u64 = 6;

    /// Whether a message has top-level field `field`. Streamlit puts `hash` and `metadata`
    /// before the message type, so the type is not always the first byte. Malformed input
    /// gives `false`.
    pub fn has_field(mut msg: &[u8], field: u64) -> bool {
        fn varint(buf: &mut &[u8]) -> Option<u64> {
            let mut value = 0u64;
            for shift in (0..70).step_by(7) {
                let (&byte, rest) = buf.split_first()?;
                *buf = rest;
                value |= u64::from(byte & 0x7f) << shift;
                if byte & 0x80 == 0 {
                    return Some(value);
                }
            }
            None
        }
        while let Some(key) = varint(&mut msg) {
            if key >> 3 == field {
                return true;
            }
            let skip = match key & 7 {
                0 => varint(&mut msg).map(|_| 0),
                1 => Some(8),
                2 => varint(&mut msg).and_then(|n| usize::try_from(n).ok()),
                5 => Some(4),
                _ => None,
            };
            match skip.and_then(|n| msg.get(n..)) {
                Some(rest) => msg = rest,
                None => return false,
            }
        }
        false
    }

    pub fn is_auth_redirect(msg: &[u8]) -> bool {
        msg.starts_with(&AUTH_REDIRECT_PREFIX)
    }

    /// `ForwardMsg{new_session{initialize{session_id}}}` (path 4 → 1 → 6).
    pub fn new_session(session_id: &str) -> Vec<u8> {
        let id = session_id.as_bytes();
        let mut initialize = vec![0x32];
        put_varint(&mut initialize, id.len() as u64);
        initialize.extend_from_slice(id);
        let mut new_session = vec![0x0a];
        put_varint(&mut new_session, initialize.len() as u64);
        new_session.extend_from_slice(&initialize);
        let mut out = vec![0x22];
        put_varint(&mut out, new_session.len() as u64);
        out.extend_from_slice(&new_session);
        out
    }

    /// `ForwardMsg{session_status_changed{script_is_running: true}}`.
    pub const STATUS_RUNNING: [u8; 4] = [0x4a, 0x02, 0x10, 0x01];
    /// `ForwardMsg{session_status_changed{}}` (script no longer running).
    pub const STATUS_IDLE: [u8; 2] = [0x4a, 0x00];
    /// `ForwardMsg{script_finished: FINISHED_SUCCESSFULLY}`.
    pub const SCRIPT_FINISHED: [u8; 2] = [0x30, 0x00];

    /// A random 36-character id in UUID form (hyphens at 8, 13, 18, 23).
    pub fn uuid_like() -> String {
        let bytes: [u8; 16] = rand::random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn script_finished_is_found_after_hash_and_metadata() {
            // hash "ab", metadata {1: 1}, script_finished 0
            let msg = [0x0a, 0x02, b'a', b'b', 0x12, 0x02, 0x08, 0x01, 0x30, 0x00];
            assert!(has_field(&msg, SCRIPT_FINISHED_FIELD));
            assert!(has_field(&SCRIPT_FINISHED, SCRIPT_FINISHED_FIELD));
            assert!(!has_field(&[0x0a, 0x02, b'a', b'b'], SCRIPT_FINISHED_FIELD));
            assert!(
                !has_field(&[0x0a, 0x09, b'a'], SCRIPT_FINISHED_FIELD),
                "truncated"
            );
        }

        #[test]
        fn rerun_script_hits_requested_sizes() {
            for total in [
                4usize, 5, 16, 64, 127, 128, 129, 130, 131, 256, 1024, 16384, 65536,
            ] {
                let msg = rerun_script(total, true);
                assert!(msg.len() <= total, "{total}: {}", msg.len());
                assert!(total - msg.len() <= 1, "{total}: {}", msg.len());
                assert!(is_rerun_script(&msg));
                assert!(msg.ends_with(&[0x30, 0x01]));
            }
        }

        #[test]
        fn minimal_rerun_scripts() {
            assert_eq!(rerun_script(0, false), vec![0x5a, 0x00]);
            assert_eq!(rerun_script(0, true), vec![0x5a, 0x02, 0x30, 0x01]);
        }

        #[test]
        fn new_session_layout() {
            let id = uuid_like();
            assert_eq!(id.len(), 36);
            let msg = new_session(&id);
            assert_eq!(&msg[..6], &[0x22, 40, 0x0a, 38, 0x32, 0x24]);
            assert_eq!(&msg[6..], id.as_bytes());
        }

        #[test]
        fn auth_redirect_prefix() {
            assert!(is_auth_redirect(&[
                0xc2, 0x01, 0x05, 0x0a, 0x03, b'/', b'x', b'y'
            ]));
            assert!(!is_auth_redirect(&[0x4a, 0x00]));
            assert!(!is_auth_redirect(&[]));
        }
    }
}

pub mod stats {
    //! Exact percentiles over recorded samples (sorted copies; fine for the sample
    //! counts these tools produce).

    use serde::Serialize;

    /// Percentile summary of a set of samples, in the unit the samples were recorded in.
    #[derive(Debug, Clone, Default, Serialize)]
    pub struct Summary {
        pub count: usize,
        pub min: f64,
        pub mean: f64,
        pub p50: f64,
        pub p90: f64,
        pub p99: f64,
        pub max: f64,
    }

    /// Nearest-rank percentile of sorted samples (`q` in 0..=1).
    fn rank(sorted: &[f64], q: f64) -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[idx]
    }

    /// Summarises `samples` (any order; NaNs are dropped). Empty input gives all zeros.
    pub fn summarize(samples: &[f64]) -> Summary {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| !v.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return Summary::default();
        }
        Summary {
            count: sorted.len(),
            min: sorted[0],
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
            p50: rank(&sorted, 0.50),
            p90: rank(&sorted, 0.90),
            p99: rank(&sorted, 0.99),
            max: sorted[sorted.len() - 1],
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn percentiles() {
            let v: Vec<f64> = (1..=100).map(f64::from).collect();
            let s = summarize(&v);
            assert_eq!(
                (s.count, s.p50, s.p90, s.p99, s.max),
                (100, 50.0, 90.0, 99.0, 100.0)
            );
            assert_eq!(summarize(&[]).count, 0);
        }
    }
}
