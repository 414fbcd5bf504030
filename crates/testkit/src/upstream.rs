//! A small in-process HTTP/1.1 app for tests of HTTP relaying, where a real Streamlit would
//! only add start-up time and noise: [`FakeUpstream`].
//!
//! It answers each path with a configured [`Reply`] (status, headers, a whole body, or a
//! body streamed in chunks with pauses between them), and any other path with an echo of
//! the request as JSON. It records every request it received ([`Received`]: method, path,
//! query, headers, body), so a test can assert exactly what reached the app. A WebSocket
//! upgrade is accepted (unless a reply is configured for its path) and every text or binary
//! frame is sent back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

type Body = BoxBody<Bytes, Infallible>;

/// How a [`Reply`]'s body is sent.
#[derive(Debug, Clone)]
enum ReplyBody {
    /// All at once, with a `Content-Length`.
    Whole(Bytes),
    /// Chunk by chunk (`Transfer-Encoding: chunked`), waiting `gap` before each chunk.
    Chunks { chunks: Vec<Bytes>, gap: Duration },
}

/// A configured answer for one path of a [`FakeUpstream`].
#[derive(Debug, Clone)]
pub struct Reply {
    status: StatusCode,
    headers: Vec<(String, String)>,
    body: ReplyBody,
}

impl Reply {
    /// An answer with `status` and an empty body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            headers: Vec::new(),
            body: ReplyBody::Whole(Bytes::new()),
        }
    }

    /// `200 OK` with `body`, sent whole.
    pub fn ok(body: impl Into<Bytes>) -> Reply {
        Reply::status(200).body(body)
    }

    /// Adds a header (several with the same name are all sent, in order).
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends `body` whole, with a `Content-Length`.
    pub fn body(mut self, body: impl Into<Bytes>) -> Reply {
        self.body = ReplyBody::Whole(body.into());
        self
    }

    /// Streams the body as these chunks (chunked transfer encoding, no `Content-Length`),
    /// waiting `gap` before each one: `Duration::ZERO` for a plain streamed body, more for
    /// a slow one.
    pub fn chunks<B: Into<Bytes>>(
        mut self,
        chunks: impl IntoIterator<Item = B>,
        gap: Duration,
    ) -> Reply {
        self.body = ReplyBody::Chunks {
            chunks: chunks.into_iter().map(Into::into).collect(),
            gap,
        };
        self
    }

    fn into_response(self) -> Response<Body> {
        let mut response = Response::new(match self.body {
            ReplyBody::Whole(bytes) => Full::new(bytes).boxed(),
            ReplyBody::Chunks { chunks, gap } => {
                let stream = futures_util::stream::iter(chunks).then(move |chunk| async move {
                    tokio::time::sleep(gap).await;
                    Ok::<_, Infallible>(Frame::data(chunk))
                });
                BodyExt::boxed(StreamBody::new(stream))
            }
        });
        *response.status_mut() = self.status;
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

/// A request as it reached a [`FakeUpstream`].
#[derive(Debug, Clone)]
pub struct Received {
    /// The method.
    pub method: Method,
    /// The path, as sent (still percent-encoded).
    pub path: String,
    /// The query string without `?`, if any.
    pub query: Option<String>,
    /// The HTTP version of the request.
    pub version: Version,
    /// Every header, as received.
    pub headers: HeaderMap,
    /// The whole body (empty for a WebSocket upgrade).
    pub body: Bytes,
}

impl Received {
    /// The value of header `name`, if present once or more (the first) and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// Whether this was a WebSocket upgrade request.
    pub fn is_upgrade(&self) -> bool {
        is_websocket_upgrade(&self.headers)
    }

    /// The echo the upstream answers with for a path without a [`Reply`]: a JSON object
    /// with `method`, `path`, `query` (or null), `headers` (`[name, value]` pairs in order)
    /// and `body` (as text, invalid UTF-8 replaced).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "method": self.method.as_str(),
            "path": self.path,
            "query": self.query,
            "headers": self
                .headers
                .iter()
                .map(|(k, v)| [k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()])
                .collect::<Vec<_>>(),
            "body": String::from_utf8_lossy(&self.body),
        })
    }
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

#[derive(Default)]
struct State {
    replies: Mutex<Vec<(String, Reply)>>,
    received: Mutex<Vec<Received>>,
}

/// An HTTP/1.1 app on `127.0.0.1:<ephemeral>` inside the test process, for tests of what
/// idlegate relays. Stops when dropped.
pub struct FakeUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    grown: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl FakeUpstream {
    /// Starts the app. Until [`FakeUpstream::reply`] says otherwise, every path answers
    /// `200` with an echo of the request (see [`Received::to_json`]).
    pub async fn start() -> Result<FakeUpstream> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the fake upstream")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let (grew, grown) = watch::channel(0usize);
        let grew = Arc::new(grew);
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (state, grew) = (state.clone(), grew.clone());
                    tokio::spawn(async move {
                        let service = service_fn(move |request| {
                            let (state, grew) = (state.clone(), grew.clone());
                            async move { Ok::<_, Infallible>(answer(request, &state, &grew).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .with_upgrades()
                            .await;
                    });
                }
            }
        });
        Ok(FakeUpstream {
            addr,
            state,
            grown,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The app's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers requests for exactly `path` (without the query) with `reply` from now on. A
    /// reply for a WebSocket path refuses the upgrade with it.
    pub fn reply(&self, path: &str, reply: Reply) {
        if let Ok(mut replies) = self.state.replies.lock() {
            replies.retain(|(p, _)| p != path);
            replies.push((path.to_owned(), reply));
        }
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.state
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The requests received so far for `path` (without the query), in order.
    pub fn received_at(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits up to `limit` for the first request (since the start) for which `matches`
    /// holds, and returns it.
    pub async fn wait_for_request(
        &self,
        limit: Duration,
        mut matches: impl FnMut(&Received) -> bool,
    ) -> Result<Received> {
        let mut grown = self.grown.clone();
        let by = tokio::time::Instant::now() + limit;
        loop {
            if let Some(found) = self.received().into_iter().find(|r| matches(r)) {
                return Ok(found);
            }
            if !matches!(
                tokio::time::timeout_at(by, grown.changed()).await,
                Ok(Ok(()))
            ) {
                return self
                    .received()
                    .into_iter()
                    .find(|r| matches(r))
                    .with_context(|| format!("no such request reached the app within {limit:?}"));
            }
        }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    mut request: Request<Incoming>,
    state: &State,
    grew: &watch::Sender<usize>,
) -> Response<Body> {
    let upgrade = is_websocket_upgrade(request.headers());
    let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (parts, body) = request.into_parts();
    let body = if upgrade {
        Bytes::new()
    } else {
        body.collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default()
    };
    let received = Received {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        version: parts.version,
        headers: parts.headers.clone(),
        body,
    };
    let reply = state.replies.lock().ok().and_then(|replies| {
        replies
            .iter()
            .find(|(path, _)| *path == received.path)
            .map(|(_, reply)| reply.clone())
    });
    let echo = received.to_json();
    if let Ok(mut all) = state.received.lock() {
        all.push(received);
        grew.send_replace(all.len());
    }
    if let Some(reply) = reply {
        return reply.into_response();
    }
    match on_upgrade {
        Some(on_upgrade) => accept_websocket(&parts.headers, on_upgrade),
        None => Reply::ok(echo.to_string())
            .header("content-type", "application/json")
            .into_response(),
    }
}

/// Switches protocols (choosing the first subprotocol offered, if any) and echoes every
/// text and binary frame until the other side closes.
fn accept_websocket(headers: &HeaderMap, on_upgrade: hyper::upgrade::OnUpgrade) -> Response<Body> {
    let Some(key) = headers.get("sec-websocket-key") else {
        return Reply::status(400)
            .body("no Sec-WebSocket-Key")
            .into_response();
    };
    let accept = derive_accept_key(key.as_bytes());
    let protocol = headers
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|p| p.trim().to_owned());
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(message)) = ws.next().await {
            if message.is_text() || message.is_binary() {
                if ws.send(message).await.is_err() {
                    break;
                }
            } else if message.is_close() {
                break;
            }
        }
    });
    let mut reply = Reply::status(101)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", &accept);
    if let Some(protocol) = protocol {
        reply = reply.header("sec-websocket-protocol", &protocol);
    }
    reply.into_response()
}
