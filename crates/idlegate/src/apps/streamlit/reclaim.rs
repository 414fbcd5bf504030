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
//!
//! Every poke is followed by a second one a TTL later. An expired session is shut down when
//! Python frees it, and shutting down sweeps the app's media once; a download button's file
//! goes only on the next sweep, so the last session's downloads would stay. The second poke
//! expires the first poke's own session, whose shutdown is that sweep.
//!
//! When the app's runtime ends sessions at once (launcher mode, [`super::collect`]), a poke
//! shortly after ([`Reclaimer::soon`]) is enough.
//!
//! An app started without `--server.disconnectedSessionTTL` keeps closed sessions for
//! Streamlit's default of 120 s, longer than idlegate's `app.disconnected_session_ttl` says;
//! the pokes at that TTL would come too early. So every close also gets a poke after the
//! default TTL, and memory is given back then at the latest.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};

use super::message::encode_set_run_on_save;
use crate::config::Upstream;
use crate::ws::{close_payload, encode_frame, FrameEvent, FrameReader, Opcode, Role};

/// Extra wait after the TTL, so the session has surely expired on the app's clock.
const MARGIN: Duration = Duration::from_secs(1);
/// Pokes due within this much of each other are done once.
const COALESCE: Duration = Duration::from_millis(500);
/// How long after a session is ended for good the poke comes ([`Reclaimer::soon`]): after
/// the app's runtime has shut it down and swept its media.
const SOON: Duration = Duration::from_millis(2500);
/// Longest a poke may take.
const POKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Streamlit's own `server.disconnectedSessionTTL` when the app's command does not set it
/// (`config.py`, `_server_disconnected_session_ttl`).
const DEFAULT_APP_TTL: Duration = Duration::from_secs(120);

/// Called after each successful reclaim (the launcher uses it for a garbage collection).
pub type AfterReclaim = Arc<dyn Fn() + Send + Sync>;

/// Handle to the reclaim task. Cheap to clone.
#[derive(Clone)]
pub struct Reclaimer {
    due: mpsc::UnboundedSender<Poke>,
    delay: Duration,
    /// The `Host` the poke names: the last one the app accepted a page's socket with, since
    /// `server.allowedHosts` refuses others (it applies to WebSocket handshakes only).
    host: Arc<Mutex<Option<String>>>,
}

/// A poke asked for: when, and whether it is a second poke (which has none after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Poke {
    at: Instant,
    second: bool,
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
        let delay = ttl + MARGIN;
        let host = Arc::new(Mutex::new(None));
        tokio::spawn(run(
            rx,
            Target {
                upstream,
                path: stream_path,
                host: host.clone(),
            },
            after,
            delay,
        ));
        Self {
            due: tx,
            delay,
            host,
        }
    }

    /// The app accepted a page's session socket with this `Host`.
    pub fn accepted_host(&self, host: &str) {
        let mut known = self.host.lock().unwrap_or_else(|p| p.into_inner());
        if known.as_deref() != Some(host) {
            *known = Some(host.to_owned());
        }
    }

    /// A session socket closed just now.
    pub fn session_closed(&self) {
        let now = Instant::now();
        let _ = self.due.send(Poke {
            at: now + self.delay,
            second: false,
        });
        // The app may keep it for its default TTL instead (see the module docs).
        let fallback = DEFAULT_APP_TTL + MARGIN;
        if self.delay < fallback {
            let _ = self.due.send(Poke {
                at: now + fallback,
                second: true,
            });
        }
    }

    /// A session was ended for good in the app just now: poke once it is gone.
    pub fn soon(&self) {
        let _ = self.due.send(Poke {
            at: Instant::now() + SOON,
            second: true,
        });
    }
}

/// Where the poke goes.
struct Target {
    upstream: Upstream,
    path: String,
    host: Arc<Mutex<Option<String>>>,
}

async fn run(
    mut requests: mpsc::UnboundedReceiver<Poke>,
    target: Target,
    after: Option<AfterReclaim>,
    delay: Duration,
) {
    let mut warned_host = false;
    // Due pokes by time; `true` when a second poke must follow.
    let mut due: BTreeMap<Instant, bool> = BTreeMap::new();
    loop {
        let next = due.keys().next().copied();
        tokio::select! {
            request = requests.recv() => {
                let Some(poke) = request else { return };
                schedule(&mut due, poke);
            }
            () = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                let now = Instant::now();
                let mut followed = false;
                while let Some(entry) = due.first_entry() {
                    if *entry.key() > now + COALESCE {
                        break;
                    }
                    followed |= entry.remove();
                }
                let host = target
                    .host
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .unwrap_or_else(|| target.upstream.authority());
                match timeout(POKE_TIMEOUT, poke(&target.upstream, &host, &target.path)).await {
                    Ok(Ok(())) => {
                        tracing::debug!("asked the app to release closed sessions");
                        if let Some(after) = &after {
                            after();
                        }
                    }
                    Ok(Err(e)) if e.to_string().contains(" 403 ") => {
                        if !std::mem::replace(&mut warned_host, true) {
                            tracing::warn!(
                                %host,
                                "the app refused idlegate's connection that frees closed \
                                 sessions (403): its server.allowedHosts does not allow this \
                                 host; add the host browsers use, or 127.0.0.1, to \
                                 server.allowedHosts"
                            );
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "could not ask the app to release closed sessions"),
                    Err(_) => tracing::warn!("asking the app to release closed sessions timed out"),
                }
                if followed {
                    schedule(&mut due, Poke { at: Instant::now() + delay, second: true });
                }
            }
        }
    }
}

/// Adds a poke, unless one is due within [`COALESCE`] of it (which then also gets the
/// second poke this one asks for).
fn schedule(due: &mut BTreeMap<Instant, bool>, poke: Poke) {
    let near = due
        .range(poke.at.checked_sub(COALESCE).unwrap_or(poke.at)..=poke.at + COALESCE)
        .map(|(at, _)| *at)
        .next();
    match near {
        Some(at) => {
            if !poke.second {
                due.insert(at, true);
            }
        }
        None => {
            due.insert(poke.at, !poke.second);
        }
    }
}

/// Opens a WebSocket to the session socket (naming `host`) and closes it right away.
pub async fn poke(upstream: &Upstream, host: &str, path: &str) -> std::io::Result<()> {
    let mut stream = TcpStream::connect((upstream.host.as_str(), upstream.port)).await?;
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
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

#[cfg(test)]
mod tests {
    use super::*;

    fn reclaimer(ttl: Duration) -> (Reclaimer, mpsc::UnboundedReceiver<Poke>) {
        let (due, rx) = mpsc::unbounded_channel();
        let reclaimer = Reclaimer {
            due,
            delay: ttl + MARGIN,
            host: Arc::new(Mutex::new(None)),
        };
        (reclaimer, rx)
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_is_followed_by_a_poke_at_the_ttl_and_one_at_the_apps_default() {
        let (reclaimer, mut pokes) = reclaimer(Duration::from_secs(20));
        let now = Instant::now();
        reclaimer.session_closed();
        let first = pokes.try_recv().unwrap();
        assert_eq!(first.at, now + Duration::from_secs(21));
        assert!(!first.second, "a second poke follows it");
        let fallback = pokes.try_recv().unwrap();
        assert_eq!(fallback.at, now + Duration::from_secs(121));
        assert!(pokes.try_recv().is_err());
        // An app whose TTL is the default or longer needs no extra poke.
        let (reclaimer, mut pokes) = reclaimer_with_default_or_more();
        reclaimer.session_closed();
        assert!(pokes.try_recv().is_ok());
        assert!(pokes.try_recv().is_err());
    }

    fn reclaimer_with_default_or_more() -> (Reclaimer, mpsc::UnboundedReceiver<Poke>) {
        reclaimer(DEFAULT_APP_TTL)
    }

    #[test]
    fn pokes_due_together_are_done_once_and_keep_their_second() {
        let now = Instant::now();
        let mut due = BTreeMap::new();
        schedule(
            &mut due,
            Poke {
                at: now,
                second: true,
            },
        );
        schedule(
            &mut due,
            Poke {
                at: now + Duration::from_millis(300),
                second: false,
            },
        );
        assert_eq!(due.len(), 1);
        assert_eq!(due.get(&now), Some(&true));
        schedule(
            &mut due,
            Poke {
                at: now + Duration::from_secs(2),
                second: true,
            },
        );
        assert_eq!(due.len(), 2);
    }
}
