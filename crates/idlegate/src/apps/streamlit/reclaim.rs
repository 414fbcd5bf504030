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
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
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

/// How often the task looks whether its reclaimers are gone while no poke is due.
const IDLE_CHECK: Duration = Duration::from_secs(60);

/// Called after each successful reclaim (the launcher uses it for a garbage collection).
pub type AfterReclaim = Arc<dyn Fn() + Send + Sync>;

/// Handle to the reclaim task. Cheap to clone.
///
/// Asking for a poke never waits and never queues: it only marks a time in [`Schedule`],
/// whose size is bounded by time, not by how many sessions closed. A poke can take up to
/// [`POKE_TIMEOUT`] (an app that is busy, or not Streamlit at all, may never answer), and
/// sessions keep closing meanwhile; a queue of requests would grow with every close.
#[derive(Clone)]
pub struct Reclaimer {
    due: Arc<Schedule>,
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
        let reclaimer = Self::idle(ttl);
        tokio::spawn(run(
            Arc::downgrade(&reclaimer.due),
            Target {
                upstream,
                path: stream_path,
                host: reclaimer.host.clone(),
            },
            after,
            reclaimer.delay,
        ));
        reclaimer
    }

    /// A reclaimer whose pokes nobody carries out (for tests of the schedule).
    fn idle(ttl: Duration) -> Self {
        Self {
            due: Arc::new(Schedule::default()),
            delay: ttl + MARGIN,
            host: Arc::new(Mutex::new(None)),
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
        self.due.add(Poke {
            at: now + self.delay,
            second: false,
        });
        // The app may keep it for its default TTL instead (see the module docs).
        let fallback = DEFAULT_APP_TTL + MARGIN;
        if self.delay < fallback {
            self.due.add(Poke {
                at: now + fallback,
                second: true,
            });
        }
    }

    /// A session was ended for good in the app just now: poke once it is gone.
    pub fn soon(&self) {
        self.due.add(Poke {
            at: Instant::now() + SOON,
            second: true,
        });
    }
}

/// The pokes due, by time, each `true` when a second poke must follow it; pokes within
/// [`COALESCE`] of each other are one entry. So it holds at most one entry per
/// [`COALESCE`] of the span between the oldest poke not yet done and the latest asked for
/// (at most [`DEFAULT_APP_TTL`] + the longest a poke takes ahead): about 250 entries,
/// whatever the rate of closes.
#[derive(Debug, Default)]
struct Schedule {
    due: Mutex<BTreeMap<Instant, bool>>,
    changed: Notify,
}

impl Schedule {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Instant, bool>> {
        self.due.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, poke: Poke) {
        let earliest = {
            let mut due = self.lock();
            schedule(&mut due, poke);
            due.keys().next() == Some(&poke.at)
        };
        if earliest {
            self.changed.notify_one();
        }
    }

    /// When the next poke is due.
    fn next(&self) -> Option<Instant> {
        self.lock().keys().next().copied()
    }

    /// Takes every poke due by `now` (and within [`COALESCE`] after it): `None` if there is
    /// none, else whether a second poke must follow.
    fn take_due(&self, now: Instant) -> Option<bool> {
        let mut due = self.lock();
        let mut taken = None;
        while let Some(entry) = due.first_entry() {
            if *entry.key() > now + COALESCE {
                break;
            }
            taken = Some(taken.unwrap_or(false) | entry.remove());
        }
        taken
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Where the poke goes.
struct Target {
    upstream: Upstream,
    path: String,
    host: Arc<Mutex<Option<String>>>,
}

/// Carries out the pokes of `schedule` until every [`Reclaimer`] is gone.
async fn run(
    schedule: Weak<Schedule>,
    target: Target,
    after: Option<AfterReclaim>,
    delay: Duration,
) {
    let mut failing = FailureStreak::default();
    let mut warned_host = false;
    loop {
        let Some(due) = schedule.upgrade() else {
            return;
        };
        let next = due.next();
        let changed = due.changed.notified();
        // With nothing due, look again now and then: the task ends once every reclaimer is.
        let wake = sleep_until(next.unwrap_or_else(|| Instant::now() + IDLE_CHECK));
        tokio::select! {
            () = changed => continue,
            () = wake => {}
        }
        let Some(followed) = due.take_due(Instant::now()) else {
            continue;
        };
        drop(due);
        let host = target
            .host
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| target.upstream.authority());
        let outcome = match timeout(POKE_TIMEOUT, poke(&target.upstream, &host, &target.path)).await
        {
            Ok(outcome) => outcome,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer in time",
            )),
        };
        let answered = outcome.is_ok();
        log_outcome(outcome, &host, &mut failing, &mut warned_host);
        if answered {
            if let Some(after) = &after {
                after();
            }
        }
        if followed {
            if let Some(due) = schedule.upgrade() {
                due.add(Poke {
                    at: Instant::now() + delay,
                    second: true,
                });
            }
        }
    }
}

/// Logs how a poke went: a failing app once per run of failures (see [`FailureStreak`]), a
/// host the app refuses once for good.
fn log_outcome(
    outcome: std::io::Result<()>,
    host: &str,
    failing: &mut FailureStreak,
    warned_host: &mut bool,
) {
    match outcome {
        Ok(()) => {
            if failing.succeeded() {
                tracing::info!(
                    "the app answers idlegate's connection that frees closed sessions again"
                );
            }
            tracing::debug!("asked the app to release closed sessions");
        }
        Err(e) if e.to_string().contains(" 403 ") => {
            if !std::mem::replace(warned_host, true) {
                tracing::warn!(
                    %host,
                    "the app refused idlegate's connection that frees closed \
                     sessions (403): its server.allowedHosts does not allow this \
                     host; add the host browsers use, or 127.0.0.1, to \
                     server.allowedHosts"
                );
            }
        }
        Err(e) => {
            if failing.failed() {
                tracing::warn!(
                    error = %e,
                    "could not ask the app to release closed sessions; idlegate keeps \
                     trying and says when it succeeds again (further failures at debug level)"
                );
            } else {
                tracing::debug!(error = %e, "could not ask the app to release closed sessions");
            }
        }
    }
}

/// Whether a run of failures is new (worth a warning) or over (worth saying so): a failing
/// app is reported once, not once per poke.
#[derive(Debug, Default)]
struct FailureStreak {
    failing: bool,
}

impl FailureStreak {
    /// A failure: `true` if it starts a streak.
    fn failed(&mut self) -> bool {
        !std::mem::replace(&mut self.failing, true)
    }

    /// A success: `true` if it ends a streak.
    fn succeeded(&mut self) -> bool {
        std::mem::replace(&mut self.failing, false)
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

    fn pokes(reclaimer: &Reclaimer) -> Vec<(Instant, bool)> {
        reclaimer
            .due
            .lock()
            .iter()
            .map(|(at, f)| (*at, *f))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_is_followed_by_a_poke_at_the_ttl_and_one_at_the_apps_default() {
        let reclaimer = Reclaimer::idle(Duration::from_secs(20));
        let now = Instant::now();
        reclaimer.session_closed();
        assert_eq!(
            pokes(&reclaimer),
            vec![
                // A second poke follows the first, a TTL after it.
                (now + Duration::from_secs(21), true),
                (now + Duration::from_secs(121), false),
            ]
        );
        // An app whose TTL is the default or longer needs no extra poke.
        let reclaimer = Reclaimer::idle(DEFAULT_APP_TTL);
        reclaimer.session_closed();
        assert_eq!(pokes(&reclaimer).len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn closes_take_room_by_time_not_by_number() {
        // 100,000 closes over ten minutes, with no poke carried out (an app that never
        // answers): the schedule holds an entry per COALESCE of time, not one per close.
        let reclaimer = Reclaimer::idle(Duration::from_secs(20));
        let span = Duration::from_secs(600);
        for _ in 0..100_000 {
            reclaimer.session_closed();
            tokio::time::advance(span / 100_000).await;
        }
        let bound = 2 * (span + DEFAULT_APP_TTL).as_millis() / COALESCE.as_millis() + 2;
        let held = reclaimer.due.len();
        assert!(held <= bound as usize, "{held} entries for 100,000 closes");
        // Taking what is due empties the past in one go.
        assert!(reclaimer.due.take_due(Instant::now()).is_some());
        let left = reclaimer.due.len();
        assert!(
            left as u128 <= 2 * (DEFAULT_APP_TTL + MARGIN).as_millis() / COALESCE.as_millis() + 2,
            "{left} entries ahead"
        );
        assert!(reclaimer.due.take_due(Instant::now()).is_none());
    }

    #[tokio::test]
    async fn a_poke_is_done_once_an_app_answers() {
        use tokio::net::TcpListener;
        // A Streamlit-like socket: answers the upgrade, then a binary message, then closes.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
            }
            let mut answer = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec();
            encode_frame(&mut answer, Opcode::Binary, true, b"status", None);
            socket.write_all(&answer).await.unwrap();
            let _ = socket.read(&mut buf).await;
        });
        let upstream = Upstream::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let after: AfterReclaim =
            Arc::new(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
        let reclaimer = Reclaimer::start(
            upstream,
            "/_stcore/stream".into(),
            Duration::ZERO,
            Some(after),
        );
        // Due a MARGIN after the close (real time: the poke talks to a real socket).
        reclaimer.session_closed();
        served.await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the poke was not carried out");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn a_failing_app_is_reported_once_per_streak() {
        let mut streak = FailureStreak::default();
        assert!(streak.failed(), "the first failure starts a streak");
        assert!(!streak.failed(), "later ones do not");
        assert!(streak.succeeded(), "a success ends it");
        assert!(!streak.succeeded());
        assert!(streak.failed(), "and a new streak is reported again");
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
