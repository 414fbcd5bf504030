//! Making Streamlit free the memory of closed sessions.
//!
//! Streamlit keeps a closed session for `server.disconnectedSessionTTL` so that its tab can
//! reconnect, but it only drops expired sessions while storing another one, that is when some
//! later connection closes. With no further traffic an abandoned session's memory is never
//! given back. So after every session socket closes, the reclaimer waits for the TTL (plus a
//! margin) and then opens and closes one bare connection to the session socket: its close
//! makes Streamlit drop every expired session. Pokes that fall due together are coalesced.
//!
//! One more reference needs letting go: Streamlit's runtime loop keeps the last session it
//! sent messages to in a local variable until it next sends messages while a session is
//! connected. So the poke asks its own throwaway session for a status message
//! (`set_run_on_save: false`, which changes nothing else) and waits for it before closing:
//! the loop then holds the poke's session instead of a real one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};

use super::message::encode_set_run_on_save;
use crate::config::Upstream;
use crate::proxy::frame::{close_payload, encode_frame, FrameEvent, FrameReader, Opcode, Role};

/// Extra wait after the TTL, so the session has surely expired on the app's clock.
const MARGIN: Duration = Duration::from_secs(1);
/// Pokes due within this much of each other are done once.
const COALESCE: Duration = Duration::from_millis(500);
/// Longest a poke may take.
const POKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Called after each successful reclaim (the launcher uses it for a garbage collection).
pub type AfterReclaim = Arc<dyn Fn() + Send + Sync>;

/// Handle to the reclaim task. Cheap to clone.
#[derive(Clone)]
pub struct Reclaimer {
    due: mpsc::UnboundedSender<Instant>,
    delay: Duration,
}

impl Reclaimer {
    /// Starts the reclaim task for the app at `upstream`, whose session socket is at
    /// `stream_path` and whose `server.disconnectedSessionTTL` is `ttl`.
    pub fn start(
        upstream: Upstream,
        stream_path: String,
        ttl: Duration,
        after: Option<AfterReclaim>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx, upstream, stream_path, after));
        Self {
            due: tx,
            delay: ttl + MARGIN,
        }
    }

    /// A session socket closed just now.
    pub fn session_closed(&self) {
        let _ = self.due.send(Instant::now() + self.delay);
    }
}

async fn run(
    mut requests: mpsc::UnboundedReceiver<Instant>,
    upstream: Upstream,
    path: String,
    after: Option<AfterReclaim>,
) {
    let mut due: VecDeque<Instant> = VecDeque::new();
    loop {
        let next = due.front().copied();
        tokio::select! {
            request = requests.recv() => {
                let Some(at) = request else { return };
                // Requests arrive in time order, so only the last entry can be close to `at`.
                match due.back() {
                    Some(last) if at <= *last + COALESCE => {}
                    _ => due.push_back(at),
                }
            }
            () = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                let now = Instant::now();
                while due.front().is_some_and(|at| *at <= now + COALESCE) {
                    due.pop_front();
                }
                match timeout(POKE_TIMEOUT, poke(&upstream, &path)).await {
                    Ok(Ok(())) => {
                        tracing::debug!("asked the app to release closed sessions");
                        if let Some(after) = &after {
                            after();
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "could not ask the app to release closed sessions"),
                    Err(_) => tracing::warn!("asking the app to release closed sessions timed out"),
                }
            }
        }
    }
}

/// Opens a WebSocket to the session socket and closes it right away.
pub async fn poke(upstream: &Upstream, path: &str) -> std::io::Result<()> {
    let mut stream = TcpStream::connect((upstream.host.as_str(), upstream.port)).await?;
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        upstream.authority()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Err(std::io::Error::other(
                "the app closed before answering the upgrade",
            ));
        }
        head.extend_from_slice(&buf[..n]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        let line =
            String::from_utf8_lossy(head.split(|b| *b == b'\r').next().unwrap_or(&[])).into_owned();
        return Err(std::io::Error::other(format!(
            "the app refused the upgrade: {line}"
        )));
    }
    let mut frames = Vec::with_capacity(32);
    encode_frame(
        &mut frames,
        Opcode::Binary,
        true,
        &encode_set_run_on_save(false),
        Some(rand::random()),
    );
    stream.write_all(&frames).await?;

    // Wait for the app's answer: a binary message on this connection. Bytes that came with
    // the upgrade response are the start of the stream.
    let body_start = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(head.len(), |i| i + 4);
    let mut reader = FrameReader::new(Role::FromServer, u64::MAX);
    let mut answered = false;
    let mut pending = head.split_off(body_start);
    loop {
        reader
            .feed(&pending, &mut |event| {
                if let FrameEvent::End(header) = event {
                    answered |= header.opcode == Opcode::Binary;
                }
            })
            .map_err(std::io::Error::other)?;
        if answered {
            break;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::other("the app closed before answering"));
        }
        pending.clear();
        pending.extend_from_slice(&buf[..n]);
    }

    let mut close = Vec::with_capacity(16);
    encode_frame(
        &mut close,
        Opcode::Close,
        true,
        &close_payload(1000, ""),
        Some(rand::random()),
    );
    stream.write_all(&close).await?;
    // Wait for the app to close its side, so the close has been processed when we return.
    while stream.read(&mut buf).await? > 0 {}
    Ok(())
}
