//! Accepting browser connections and serving each: the connection caps, the HTTP/1.1 and
//! HTTP/2 settings, and the closes the limits decide.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::SHUTDOWN_GRACE;
use crate::config::Config;
use crate::dispatch::Gateway;
use crate::limits::connections::{close_when, Activity, Close, Held, InProgress, Refused, Slot};
use crate::limits::{Limit, Limits};
use crate::web::Body;

/// Most streams one HTTP/2 connection may have open (RFC 9113 §6.5.2 advises at least 100).
const H2_MAX_STREAMS: u32 = 100;
/// How often an HTTP/2 connection is pinged, and how long the answer may take before the
/// connection is closed as dead.
const H2_PING_EVERY: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// What the accept loop needs, shared by the serving and the draining phases.
pub(super) struct Accepting {
    pub(super) builder: Arc<auto::Builder<TokioExecutor>>,
    pub(super) gateway: Arc<Gateway>,
    pub(super) limits: Arc<Limits>,
    pub(super) stop: CancellationToken,
    pub(super) connections: TaskTracker,
}

impl Accepting {
    /// Accepts browser connections until `done` resolves; returns what it resolved to.
    pub(super) async fn until<T>(
        &self,
        listener: &TcpListener,
        done: impl Future<Output = T>,
    ) -> T {
        tokio::pin!(done);
        // Accept failures (out of descriptors) are logged once a minute, with their count.
        let mut failures = 0u64;
        let mut last_warning: Option<tokio::time::Instant> = None;
        loop {
            let (stream, peer) = tokio::select! {
                value = &mut done => return value,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        failures += 1;
                        let now = tokio::time::Instant::now();
                        if last_warning.is_none_or(|at| now - at >= Duration::from_secs(60)) {
                            tracing::warn!(error = %e, failures, "accept failed (logged once a minute)");
                            last_warning = Some(now);
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let exempt = self.gateway.proxy.config.proxy.is_trusted(peer.ip());
            let slot = match self.limits.connections.admit(peer.ip(), exempt) {
                Ok(slot) => slot,
                Err(refused) => {
                    // Closed at once: the client learns now, and the listener keeps draining.
                    self.limits.hit(match refused {
                        Refused::Total => Limit::ConnectionsTotal,
                        Refused::PerAddress => Limit::ConnectionsPerAddress,
                    });
                    drop(stream);
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            self.connections.spawn(serve(
                Connection { stream, peer, slot },
                self.builder.clone(),
                self.gateway.clone(),
                self.limits.clone(),
                self.stop.clone(),
            ));
        }
    }
}

/// The HTTP/1.1 and HTTP/2 settings for browser connections.
pub(super) fn http_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let proxy = &config.proxy;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(proxy.header_read_timeout)
        .max_buf_size(proxy.max_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(proxy.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(H2_MAX_STREAMS)
        .keep_alive_interval(Some(H2_PING_EVERY))
        .keep_alive_timeout(H2_PING_TIMEOUT);
    builder
}

/// An accepted connection and its place under the connection caps.
struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
}

/// Serves one connection until it ends, the limits close it, or the server stops.
async fn serve(
    connection: Connection,
    builder: Arc<auto::Builder<TokioExecutor>>,
    gateway: Arc<Gateway>,
    limits: Arc<Limits>,
    stop: CancellationToken,
) {
    let Connection { stream, peer, slot } = connection;
    let config = gateway.proxy.config.clone();
    let (activity, seen) = Activity::new();
    let until = close_when(
        seen,
        config.proxy.header_read_timeout,
        limits.idle_timeout(),
    );
    let service = service_fn(move |req| {
        let gateway = gateway.clone();
        let request = activity.request();
        async move {
            let response = gateway.handle(req, peer).await;
            Ok::<_, Infallible>(response.map(|body| held(body, request)))
        }
    });
    let connection =
        builder.serve_connection_with_upgrades(TokioIo::new(Held::new(stream, slot)), service);
    tokio::pin!(connection);
    let close = tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                if e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout) {
                    limits.hit(Limit::HeaderTimeout);
                }
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        close = until => Some(close),
        () = stop.cancelled() => None,
    };
    match close {
        // Nothing was asked: nothing to finish.
        Some(Close::HeaderTimeout) => {
            limits.hit(Limit::HeaderTimeout);
            return;
        }
        Some(Close::Idle) => limits.hit(Limit::IdleConnection),
        None => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
}

/// `body`, keeping `request` in progress until the body is sent or dropped.
fn held(body: Body, request: InProgress) -> Body {
    Body::new(body.map_frame(move |frame| {
        let _in_progress = &request;
        frame
    }))
}
