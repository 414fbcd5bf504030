//! `fakeapp`: a lightweight stand-in for a Streamlit server, for load tests.
//!
//! It serves the HTTP routes a browser touches when it opens a Streamlit page (the
//! index page, a static asset, the health and host-config endpoints) and the app's
//! WebSocket at `<base>/_stcore/stream`, where it answers `BackMsg.rerun_script` with the
//! messages Streamlit sends for a script run that draws nothing. With `--echo` it echoes
//! every message instead, for round-trip latency tests. Idle WebSocket connections cost
//! little (a 4 KiB read buffer by default), so one process holds tens of thousands.
//!
//! The first line on stdout is `listening on http://ADDR`; it serves until SIGTERM or
//! SIGINT.

#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use benchkit::proto;
use bytes::Bytes;
use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;
use tokio::signal::unix::{signal, SignalKind};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A lightweight stand-in for a Streamlit server (HTTP pages and the app WebSocket).
#[derive(Debug, Parser)]
#[command(name = "fakeapp", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed on the first stdout line).
    #[arg(long, default_value = "127.0.0.1:8501")]
    listen: SocketAddr,

    /// URL path prefix the app is served under, like Streamlit's `server.baseUrlPath`
    /// (e.g. `/app`). Empty serves at the root.
    #[arg(long, default_value = "")]
    base_path: String,

    /// Serve this file as the index page instead of the built-in Streamlit-like shell.
    #[arg(long, value_name = "FILE")]
    index: Option<PathBuf>,

    /// Echo every WebSocket message back unchanged instead of acting like Streamlit.
    #[arg(long)]
    echo: bool,

    /// Send a WebSocket ping to every client every SECS seconds (Streamlit uses 30).
    #[arg(long, value_name = "SECS")]
    ping_interval: Option<u64>,

    /// Read buffer allocated per WebSocket connection, in bytes (tungstenite's default
    /// is 131072).
    #[arg(long, value_name = "BYTES", default_value_t = benchkit::WS_READ_BUFFER)]
    ws_read_buffer: usize,

    /// Listen backlog (pending connections the kernel queues before accept).
    #[arg(long, default_value_t = 4096)]
    backlog: u32,
}

/// What every connection shares.
struct App {
    base: String,
    index: Bytes,
    app_js: Bytes,
    echo: bool,
    ping_interval: Option<Duration>,
    ws_config: WebSocketConfig,
}

type Body = Full<Bytes>;

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // Not fatal: the process can still serve up to the current limit.
    if let Err(err) = benchkit::raise_nofile_limit() {
        eprintln!("fakeapp: could not raise the open-file limit: {err}");
    }
    let index = match &args.index {
        Some(path) => {
            Bytes::from(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => Bytes::from(builtin_index()),
    };
    let app = Arc::new(App {
        base: normalize_base(&args.base_path),
        index,
        app_js: Bytes::from(builtin_app_js()),
        echo: args.echo,
        ping_interval: args
            .ping_interval
            .filter(|s| *s > 0)
            .map(Duration::from_secs),
        ws_config: benchkit::ws_config(args.ws_read_buffer),
    });

    let socket = if args.listen.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .context("creating the listening socket")?;
    socket.set_reuseaddr(true)?;
    socket
        .bind(args.listen)
        .with_context(|| format!("binding {}", args.listen))?;
    let listener = socket.listen(args.backlog).context("listening")?;
    let local = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{local}")?;
        out.flush()?;
    }

    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Typically EMFILE under overload: back off briefly, keep serving.
                    eprintln!("fakeapp: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let app = Arc::clone(&app);
                async move { Ok::<_, Infallible>(handle(app, req)) }
            });
            // Errors here are client disconnects mid-request; nothing to report.
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
    Ok(())
}

/// `""` stays empty; anything else gets one leading slash and no trailing slash.
fn normalize_base(raw: &str) -> String {
    let trimmed = raw.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix(app.base.as_str()) else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    if rest == "/_stcore/stream" {
        return upgrade(app, req);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    match rest {
        "/_stcore/health" => plain(StatusCode::OK, "ok"),
        "/_stcore/host-config" => with_type(
            StatusCode::OK,
            Bytes::from_static(b"{}"),
            "application/json",
        ),
        "/static/app.js" => with_type(StatusCode::OK, app.app_js.clone(), "application/javascript"),
        _ if rest.starts_with("/_stcore/") || rest.starts_with("/static/") => {
            plain(StatusCode::NOT_FOUND, "not found")
        }
        _ => with_type(StatusCode::OK, app.index.clone(), "text/html"),
    }
}

fn with_type(status: StatusCode, body: Bytes, content_type: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    with_type(status, Bytes::from_static(text.as_bytes()), "text/plain")
}

fn header_has_token(req: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Answers a WebSocket upgrade request with 101 and hands the upgraded connection to
/// [`serve_ws`].
fn upgrade(app: Arc<App>, mut req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET
        || !header_has_token(&req, header::UPGRADE, "websocket")
        || !header_has_token(&req, header::CONNECTION, "upgrade")
        || req
            .headers()
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_none_or(|v| v.as_bytes() != b"13")
    {
        return plain(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade");
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return plain(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let accept = derive_accept_key(key.as_bytes());
    let protocol = req
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.split(',').map(str::trim).find(|p| !p.is_empty()))
        .and_then(|p| HeaderValue::from_str(p).ok());

    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve_ws(app, TokioIo::new(upgraded)).await,
            Err(err) => eprintln!("fakeapp: WebSocket upgrade failed: {err}"),
        }
    });

    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = protocol {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    resp
}

/// Waits for the next ping tick, or forever without one.
async fn next_tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Serves one WebSocket connection until the client closes it or it fails.
async fn serve_ws<S>(app: Arc<App>, io: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(app.ws_config)).await;
    let mut pings = app.ping_interval.map(|every| {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    // Made on the first rerun, so idle connections that never run a script stay small.
    let mut new_session: Option<Bytes> = None;
    loop {
        let msg = tokio::select! {
            msg = ws.next() => msg,
            () = next_tick(&mut pings) => {
                if ws.send(Message::Ping(Bytes::new())).await.is_err() {
                    break;
                }
                continue;
            }
        };
        let msg = match msg {
            Some(Ok(msg)) => msg,
            // Closed, or a protocol/IO error: either way the connection is done.
            Some(Err(_)) | None => break,
        };
        let sent = match msg {
            Message::Binary(_) | Message::Text(_) if app.echo => ws.send(msg).await,
            Message::Binary(data) if proto::is_rerun_script(&data) => {
                let session = new_session
                    .get_or_insert_with(|| Bytes::from(proto::new_session(&proto::uuid_like())))
                    .clone();
                script_run(&mut ws, session).await
            }
            // Pings are answered and closes acknowledged by tungstenite itself; other
            // BackMsgs need no reply from a stand-in app.
            _ => Ok(()),
        };
        if sent.is_err() {
            break;
        }
    }
}

/// Sends what Streamlit sends for a rerun of a script that draws nothing.
async fn script_run<S>(
    ws: &mut WebSocketStream<S>,
    new_session: Bytes,
) -> Result<(), tokio_tungstenite::tungstenite::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.feed(Message::Binary(new_session)).await?;
    ws.feed(Message::Binary(Bytes::from_static(&proto::STATUS_RUNNING)))
        .await?;
    ws.feed(Message::Binary(Bytes::from_static(&proto::STATUS_IDLE)))
        .await?;
    ws.feed(Message::Binary(Bytes::from_static(&proto::SCRIPT_FINISHED)))
        .await?;
    ws.flush().await
}

/// The built-in index page: shaped like Streamlit's HTML shell (a `<head>` with meta
/// tags, a stylesheet and a module script, a `#root` div), about 7.8 KB.
fn builtin_index() -> String {
    const TARGET: usize = 7_800;
    let head = "<!doctype html>\n<html lang=\"en\">\n<head>\n\
        <meta charset=\"UTF-8\" />\n\
        <meta name=\"viewport\" content=\"width=device-width, initial-scale=1, shrink-to-fit=no\" />\n\
        <link rel=\"shortcut icon\" href=\"./favicon.png\" />\n\
        <link rel=\"preload\" href=\"./static/media/SourceSansVF-Upright.ttf.woff2\" as=\"font\" type=\"font/woff2\" crossorigin />\n\
        <title>Streamlit</title>\n\
        <!-- initialize window.prerenderReady to false and then set to true in React app when app is ready for indexing -->\n\
        <script>window.prerenderReady = false</script>\n\
        <script type=\"module\" crossorigin src=\"./static/app.js\"></script>\n\
        <style>\n";
    let tail = "</style>\n</head>\n<body>\n\
        <noscript>You need to enable JavaScript to run this app.</noscript>\n\
        <div id=\"root\"></div>\n</body>\n</html>\n";
    let mut page = String::with_capacity(TARGET + 200);
    page.push_str(head);
    let mut i = 0;
    while page.len() + tail.len() < TARGET - 80 {
        page.push_str(&format!(
            ".st-emotion-cache-{i:04x}{{display:flex;flex-direction:column;gap:1rem;\
             font-family:\"Source Sans Pro\",sans-serif;color:rgb(49,51,63)}}\n"
        ));
        i += 1;
    }
    page.push_str(tail);
    page
}

/// The built-in static asset, about 2 KB of JavaScript.
fn builtin_app_js() -> String {
    let mut js = String::from(
        "// Stand-in application bundle served by fakeapp.\n\
         \"use strict\";\n\
         const proto = location.protocol === \"https:\" ? \"wss:\" : \"ws:\";\n\
         const base = location.pathname.replace(/\\/[^/]*$/, \"\");\n\
         const ws = new WebSocket(`${proto}//${location.host}${base}/_stcore/stream`, [\"streamlit\"]);\n\
         ws.binaryType = \"arraybuffer\";\n\
         ws.onopen = () => ws.send(new Uint8Array([0x5a, 0x00]));\n\
         ws.onmessage = (ev) => {\n\
         \x20 const b = new Uint8Array(ev.data);\n\
         \x20 if (b[0] === 0xc2 && b[1] === 0x01) { location.reload(); }\n\
         };\n",
    );
    let mut i = 0;
    while js.len() < 1_980 {
        js.push_str(&format!(
            "export function widget{i}(el, v) {{ el.dataset.value = String(v); return el; }}\n"
        ));
        i += 1;
    }
    js
}
