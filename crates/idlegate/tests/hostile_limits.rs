//! Hostile clients against a real gateway's limits (`idlegate::limits`): connections that
//! send nothing, only the HTTP/2 preface, or go idle are closed within the documented time;
//! the connection caps hold; one address cannot lock a user out of sign-in; an oversized
//! sign-in form is refused before any work; Argon2 checks at once never exceed the bound.
//! Every wait is on an event (EOF, a counter) with a deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use idlegate::config::{Config, ConfigBuilder};
use idlegate::limits::{Limit, Limits};
use idlegate::tracker::EndReason;
use idlegate::Server;
use testkit::proc::wait_until;
use testkit::upstream::FakeUpstream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::time::Instant;

const PASSWORD: &str = "correct horse battery";
/// Slack on top of a documented timeout for the close to arrive.
const SLACK: Duration = Duration::from_secs(3);

/// A gateway run in-process, with its limits in reach.
struct Gateway {
    addr: SocketAddr,
    limits: Arc<Limits>,
    _stop: oneshot::Sender<EndReason>,
    _upstream: FakeUpstream,
    _dir: tempfile::TempDir,
}

impl Gateway {
    async fn start(config: ConfigBuilder) -> Result<Gateway> {
        let upstream = FakeUpstream::start().await?;
        let dir = tempfile::tempdir()?;
        let hash = idlegate::auth::password::hash(PASSWORD).map_err(anyhow::Error::msg)?;
        let users = dir.path().join("users");
        std::fs::write(&users, format!("alice:{hash}\n"))?;
        let config = config
            .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
            .upstream(upstream.url())
            .users_file(&users)
            .cookie_secure(false)
            .build()?;
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let server = Server::from_listener(listener, config)?;
        let addr = server.local_addr()?;
        let limits = server.limits();
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(server.run(async move { stopped.await.unwrap_or(EndReason::Shutdown) }));
        Ok(Gateway {
            addr,
            limits,
            _stop: stop,
            _upstream: upstream,
            _dir: dir,
        })
    }

    fn hits(&self, limit: Limit) -> u64 {
        self.limits.hits().get(limit)
    }

    /// A TCP connection from `from` (any 127/8 address is this host).
    async fn connect_from(&self, from: [u8; 4]) -> Result<TcpStream> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((from, 0)))?;
        Ok(socket.connect(self.addr).await?)
    }

    /// One HTTP/1.1 request on a new connection from `from`: status and headers.
    async fn send_from(
        &self,
        from: [u8; 4],
        request: Request<Full<Bytes>>,
    ) -> Result<http::Response<Bytes>> {
        let stream = self.connect_from(from).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(http::Response::from_parts(parts, body))
    }

    /// Posts the sign-in form from `from`, as the sign-in page does.
    async fn sign_in_from(&self, from: [u8; 4], user: &str, password: &str) -> Result<StatusCode> {
        let body = serde_urlencoded::to_string([("username", user), ("password", password)])?;
        Ok(self.post_login(from, body).await?.status())
    }

    async fn post_login(&self, from: [u8; 4], body: String) -> Result<http::Response<Bytes>> {
        let origin = format!("http://{}", self.addr);
        let request = Request::post(format!("{origin}/_idlegate/login"))
            .header("host", self.addr.to_string())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", &origin)
            .header("sec-fetch-site", "same-origin")
            .body(Full::new(Bytes::from(body)))?;
        self.send_from(from, request).await
    }
}

/// Reads until the peer closes the connection (EOF or reset), at most `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Result<Duration> {
    let start = Instant::now();
    tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .context("the connection is still open")?;
    Ok(start.elapsed())
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_header_deadline() -> Result<()> {
    let gw = Gateway::start(Config::builder().header_read_timeout(secs(1))).await?;
    let mut silent = gw.connect_from([127, 0, 0, 1]).await?;
    let took = closed_within(&mut silent, secs(1) + SLACK).await?;
    ensure!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );
    ensure!(gw.hits(Limit::HeaderTimeout) == 1);
    Ok(())
}

#[tokio::test]
async fn the_http2_preface_alone_or_in_part_is_closed() -> Result<()> {
    let gw = Gateway::start(Config::builder().header_read_timeout(secs(1))).await?;
    for preface in [&b"PRI"[..], b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"] {
        let mut conn = gw.connect_from([127, 0, 0, 1]).await?;
        conn.write_all(preface).await?;
        closed_within(&mut conn, secs(1) + SLACK).await?;
    }
    ensure!(gw.hits(Limit::HeaderTimeout) == 2);
    Ok(())
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed() -> Result<()> {
    let gw = Gateway::start(Config::builder().connection_idle_timeout(secs(1))).await?;
    let stream = gw.connect_from([127, 0, 0, 1]).await?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    let conn = tokio::spawn(conn);
    let response = sender
        .send_request(
            Request::get(format!("http://{}/_idlegate/healthz", gw.addr))
                .body(Empty::<Bytes>::new())?,
        )
        .await?;
    ensure!(response.status() == StatusCode::OK);
    response.into_body().collect().await?;
    let start = Instant::now();
    tokio::time::timeout(secs(1) + SLACK, conn)
        .await
        .context("the idle HTTP/2 connection is still open")??
        .ok();
    ensure!(start.elapsed() >= Duration::from_millis(900));
    ensure!(gw.hits(Limit::IdleConnection) == 1);
    Ok(())
}

#[tokio::test]
async fn the_connection_caps_hold() -> Result<()> {
    let gw = Gateway::start(Config::builder().max_connections(3, 2)).await?;
    let _a1 = gw.connect_from([127, 0, 0, 1]).await?;
    let mut a2 = gw.connect_from([127, 0, 0, 1]).await?;
    // A third from the same address is closed at once.
    let mut a3 = gw.connect_from([127, 0, 0, 1]).await?;
    closed_within(&mut a3, SLACK).await?;
    ensure!(gw.hits(Limit::ConnectionsPerAddress) == 1);
    let _b1 = gw.connect_from([127, 0, 0, 2]).await?;
    // Three are open: a fourth from anywhere is closed at once.
    let mut c1 = gw.connect_from([127, 0, 0, 3]).await?;
    closed_within(&mut c1, SLACK).await?;
    ensure!(gw.hits(Limit::ConnectionsTotal) == 1);
    // A freed place is taken again, and served.
    a2.shutdown().await?;
    drop(a2);
    let limits = gw.limits.clone();
    wait_until(SLACK, Duration::from_millis(20), async || {
        let open = limits.connections.open();
        ensure!(open == 2, "{open} connections open");
        Ok(())
    })
    .await?;
    let health = Request::get(format!("http://{}/_idlegate/healthz", gw.addr))
        .header("host", gw.addr.to_string())
        .body(Full::new(Bytes::new()))?;
    ensure!(gw.send_from([127, 0, 0, 3], health).await?.status() == StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn one_address_cannot_lock_alice_out() -> Result<()> {
    let gw = Gateway::start(Config::builder()).await?;
    let attacker = [127, 0, 0, 1];
    for _ in 0..10 {
        let status = gw.sign_in_from(attacker, "nobody", "guess").await?;
        ensure!(status == StatusCode::UNAUTHORIZED, "{status}");
    }
    for _ in 0..11 {
        let status = gw.sign_in_from(attacker, "alice", "guess").await?;
        ensure!(status == StatusCode::TOO_MANY_REQUESTS, "{status}");
    }
    ensure!(gw.hits(Limit::SignInAddress) == 11);
    let status = gw.sign_in_from([127, 0, 0, 2], "alice", PASSWORD).await?;
    ensure!(status == StatusCode::SEE_OTHER, "alice got {status}");
    Ok(())
}

#[tokio::test]
async fn oversized_sign_in_fields_are_refused_before_any_work() -> Result<()> {
    let gw = Gateway::start(Config::builder()).await?;
    let huge = "u".repeat(1_500_000);
    for _ in 0..60 {
        let body = serde_urlencoded::to_string([("username", huge.as_str()), ("password", "x")])?;
        let status = gw.post_login([127, 0, 0, 1], body).await?.status();
        ensure!(status == StatusCode::PAYLOAD_TOO_LARGE, "{status}");
    }
    let long = "u".repeat(257);
    for _ in 0..20 {
        let status = gw.sign_in_from([127, 0, 0, 1], &long, "x").await?;
        ensure!(status == StatusCode::BAD_REQUEST, "{status}");
    }
    ensure!(gw.hits(Limit::SignInForm) == 20);
    // Nothing was kept, not even an attempt against the address.
    ensure!(gw.limits.sign_ins.keys() == 0);
    ensure!(gw.limits.password_checks.peak() == 0);
    Ok(())
}

#[tokio::test]
async fn password_checks_at_once_never_exceed_the_bound() -> Result<()> {
    let gw = Arc::new(Gateway::start(Config::builder().password_checks(2)).await?);
    let attempts = (0..16u8).map(|i| {
        let gw = gw.clone();
        tokio::spawn(async move { gw.sign_in_from([127, 0, 1, i], "alice", "guess").await })
    });
    let mut refused = 0;
    for attempt in attempts {
        let status = attempt.await??;
        ensure!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status}"
        );
        refused += usize::from(status == StatusCode::SERVICE_UNAVAILABLE);
    }
    let peak = gw.limits.password_checks.peak();
    ensure!((1..=2).contains(&peak), "{peak} checks ran at once");
    ensure!(gw.hits(Limit::PasswordCheckRefused) == refused as u64);
    ensure!(gw.limits.password_checks.in_use() == 0);
    Ok(())
}

/// The page script's report API and sign-out read small bodies only, and a request to
/// idlegate's own routes must arrive whole within the deadline: a body sent slowly (or not
/// at all) cannot hold memory for as long as its client likes.
#[tokio::test]
async fn own_routes_take_small_bodies_within_a_deadline() -> Result<()> {
    use idlegate::limits::keys::{MAX_SMALL_BODY, OWN_ROUTE_DEADLINE};
    use tokio::io::AsyncWriteExt;
    let gw = Gateway::start(Config::builder()).await?;
    let origin = format!("http://{}", gw.addr);
    // (Sign-out reads no body at all.)
    for path in ["/_idlegate/tab"] {
        let big = "x".repeat(MAX_SMALL_BODY + 1);
        let request = Request::post(format!("{origin}{path}"))
            .header("host", gw.addr.to_string())
            .header("origin", &origin)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(big)))?;
        let status = gw.send_from([127, 0, 0, 1], request).await?.status();
        ensure!(status == StatusCode::PAYLOAD_TOO_LARGE, "{path}: {status}");
    }
    // A body promised and never sent: 408 at the deadline, counted.
    let mut stream = gw.connect_from([127, 0, 0, 1]).await?;
    let head = format!(
        "POST /_idlegate/tab HTTP/1.1\r\nhost: {}\r\norigin: {origin}\r\n\
         content-type: application/json\r\ncontent-length: 4000\r\n\r\n{{\"t\":",
        gw.addr
    );
    stream.write_all(head.as_bytes()).await?;
    let started = tokio::time::Instant::now();
    let mut answer = Vec::new();
    let read = async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(OWN_ROUTE_DEADLINE + secs(5), read)
        .await
        .context("no answer after the deadline")??;
    let text = String::from_utf8_lossy(&answer);
    ensure!(text.starts_with("HTTP/1.1 408"), "{text}");
    ensure!(started.elapsed() >= OWN_ROUTE_DEADLINE - secs(1));
    ensure!(gw.hits(Limit::RequestDeadline) == 1);
    Ok(())
}
