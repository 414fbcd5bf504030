//! Connection limits: how many may be open (in all, per client address), how long one may
//! take to send its first request, and how long one may sit with no request in progress.
//!
//! The first-request deadline counts from accept, so it covers what the protocol detection
//! of `hyper-util`'s auto server and `hyper`'s own `header_read_timeout` leave open: a
//! connection that sends nothing, or only the HTTP/2 preface (`PRI * HTTP/2.0`, RFC 9113
//! §3.4), or a slow first request head. After the first request, a connection with no
//! request in progress (an HTTP/1.1 keep-alive between requests, an HTTP/2 connection with no
//! open stream) is closed after the idle timeout. A request in progress (a long download,
//! an upload, a streamed answer) is never idle; an upgraded WebSocket leaves the HTTP
//! connection for good and follows the tab's own rules.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::keys::address_key;

/// Open connections per client address.
type PerAddress = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `limits.max_connections` are open.
    Total,
    /// `limits.max_connections_per_address` are open from this client's address.
    PerAddress,
}

/// Open connections, in all and per client address.
#[derive(Debug)]
pub struct Slots {
    total: Arc<Semaphore>,
    max: usize,
    /// The per-address cap; 0: none. Changed by [`Slots::set_per_address`].
    per_address: AtomicUsize,
    by_address: PerAddress,
}

/// One open connection's place; freed when dropped.
#[derive(Debug)]
pub struct Slot {
    _total: OwnedSemaphorePermit,
    address: Option<(IpAddr, PerAddress)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((address, map)) = self.address.take() {
            let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(open) = map.get_mut(&address) {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    map.remove(&address);
                }
            }
        }
    }
}

impl Slots {
    /// At most `max` connections (at least 1), and `per_address` from one address.
    pub fn new(max: usize, per_address: Option<usize>) -> Self {
        let max = max.max(1);
        Self {
            total: Arc::new(Semaphore::new(max)),
            max,
            per_address: AtomicUsize::new(per_address.unwrap_or(0)),
            by_address: Arc::default(),
        }
    }

    /// Caps connections per address at `per_address` from now on (`None`: no cap); open
    /// connections over a lowered cap stay open.
    pub fn set_per_address(&self, per_address: Option<usize>) {
        self.per_address
            .store(per_address.unwrap_or(0), Ordering::Relaxed);
    }

    fn per_address(&self) -> Option<usize> {
        Some(self.per_address.load(Ordering::Relaxed)).filter(|cap| *cap > 0)
    }

    /// A place for a connection from `peer`; `exempt` peers (trusted proxies, which carry
    /// many people's connections) count only toward the total.
    ///
    /// # Errors
    /// [`Refused`] saying which cap is reached.
    pub fn admit(&self, peer: IpAddr, exempt: bool) -> Result<Slot, Refused> {
        let total = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Total)?;
        let address = match self.per_address() {
            Some(cap) if !exempt => {
                let key = address_key(peer);
                let mut map = self
                    .by_address
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let open = map.entry(key).or_insert(0);
                if *open >= cap {
                    return Err(Refused::PerAddress);
                }
                *open += 1;
                Some((key, self.by_address.clone()))
            }
            _ => None,
        };
        Ok(Slot {
            _total: total,
            address,
        })
    }

    /// How many connections are open.
    pub fn open(&self) -> usize {
        self.max - self.total.available_permits()
    }
}

/// A connection's socket with its [`Slot`]: the place is freed when the socket closes, also
/// after an upgrade hands the socket to a WebSocket relay, so open tunnels count too.
#[derive(Debug)]
pub struct Held<S> {
    io: S,
    _slot: Slot,
}

impl<S> Held<S> {
    /// `io`, holding `slot` until it is dropped.
    pub fn new(io: S, slot: Slot) -> Self {
        Self { io, _slot: slot }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Held<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Held<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// What one connection has done: requests started, and requests in progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    pub requests: u64,
    pub active: usize,
}

/// Tells a connection's watcher ([`close_when`]) when requests start and end.
#[derive(Debug, Clone)]
pub struct Activity(Arc<watch::Sender<Seen>>);

/// A request in progress; it ends when dropped (with the response body).
#[derive(Debug)]
pub struct InProgress(Arc<watch::Sender<Seen>>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0
            .send_modify(|seen| seen.active = seen.active.saturating_sub(1));
    }
}

impl Activity {
    /// A new connection's activity, and the receiver for [`close_when`].
    pub fn new() -> (Self, watch::Receiver<Seen>) {
        let (tx, rx) = watch::channel(Seen::default());
        (Self(Arc::new(tx)), rx)
    }

    /// A request starts.
    pub fn request(&self) -> InProgress {
        self.0.send_modify(|seen| {
            seen.requests += 1;
            seen.active += 1;
        });
        InProgress(self.0.clone())
    }
}

/// Why a connection should be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// No complete request head within the first-request deadline of accept.
    HeaderTimeout,
    /// No request in progress for the idle timeout.
    Idle,
}

/// Resolves when the connection watched by `seen` should close: no request within
/// `first_request` of now (call it at accept), or none in progress for `idle`. Never
/// resolves once the connection has gone.
pub async fn close_when(
    mut seen: watch::Receiver<Seen>,
    first_request: Duration,
    idle: Duration,
) -> Close {
    let first = tokio::time::timeout(first_request, seen.wait_for(|s| s.requests > 0))
        .await
        .map(|asked| asked.is_ok());
    match first {
        Err(_) => return Close::HeaderTimeout,
        Ok(false) => std::future::pending().await,
        Ok(true) => {}
    }
    loop {
        let quiet = seen.wait_for(|s| s.active == 0).await.is_ok();
        if !quiet {
            std::future::pending::<()>().await;
        }
        match tokio::time::timeout(idle, seen.changed()).await {
            Err(_) => return Close::Idle,
            Ok(Err(_)) => std::future::pending::<()>().await,
            Ok(Ok(())) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_in_all_and_per_address() {
        let slots = Slots::new(3, Some(2));
        let a1 = slots.admit(ip("192.0.2.1"), false).unwrap();
        let _a2 = slots.admit(ip("192.0.2.1"), false).unwrap();
        assert_eq!(
            slots.admit(ip("192.0.2.1"), false).unwrap_err(),
            Refused::PerAddress
        );
        // The same /64 is the same client.
        let _v6 = slots.admit(ip("2001:db8::1"), false).unwrap();
        assert_eq!(slots.open(), 3);
        assert_eq!(
            slots.admit(ip("192.0.2.9"), true).unwrap_err(),
            Refused::Total
        );
        drop(a1);
        assert_eq!(slots.open(), 2);
        let _a3 = slots.admit(ip("192.0.2.1"), false).unwrap();
        // A refused admission held nothing.
        assert_eq!(slots.open(), 3);
        let slots = Slots::new(10, Some(1));
        let _p1 = slots.admit(ip("2001:db8::1"), false).unwrap();
        assert!(slots.admit(ip("2001:db8::2"), false).is_err());
        assert!(slots.admit(ip("2001:db8::2"), true).is_ok());
        assert!(slots.by_address.lock().unwrap().len() == 1);
    }

    #[tokio::test]
    async fn a_socket_holds_its_place_until_it_closes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let slots = Slots::new(1, None);
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut held = Held::new(ours, slots.admit(ip("192.0.2.1"), false).unwrap());
        held.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        theirs.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
        // Wherever the socket goes (an upgrade hands it on), its place goes with it.
        let moved = Box::new(held);
        assert_eq!(slots.open(), 1);
        drop(moved);
        assert_eq!(slots.open(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_closes_at_the_deadline() {
        let (_activity, seen) = Activity::new();
        let start = Instant::now();
        let close = close_when(seen, Duration::from_secs(10), Duration::from_secs(60)).await;
        assert_eq!(close, Close::HeaderTimeout);
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_end_of_the_last_request() {
        let (activity, seen) = Activity::new();
        let start = Instant::now();
        let watch = tokio::spawn(close_when(
            seen,
            Duration::from_secs(10),
            Duration::from_secs(60),
        ));
        tokio::time::sleep(Duration::from_secs(5)).await;
        let request = activity.request();
        // A request in progress for a long time is not idle.
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert!(!watch.is_finished());
        drop(request);
        let ended = Instant::now();
        // A second request resets the idle clock.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(activity.request());
        let last = Instant::now();
        assert_eq!(watch.await.unwrap(), Close::Idle);
        assert_eq!(last.elapsed(), Duration::from_secs(60));
        assert!(ended.duration_since(start) >= Duration::from_secs(305));
    }

    #[tokio::test(start_paused = true)]
    async fn a_gone_connection_never_closes() {
        let (activity, seen) = Activity::new();
        drop(activity.request());
        drop(activity);
        let close = close_when(seen, Duration::from_secs(1), Duration::from_secs(1));
        assert!(tokio::time::timeout(Duration::from_secs(3600), close)
            .await
            .is_err());
    }
}
