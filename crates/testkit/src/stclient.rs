//! A protocol-level Streamlit client for tests.
//!
//! [`StClient`] opens `/_stcore/stream` the way Streamlit's frontend does
//! (same subprotocol header, same `Origin`), sends `BackMsg`s and reports the
//! `ForwardMsg`s it receives as [`StEvent`]s. It lets tests exercise the
//! gateway's WebSocket relay precisely and cheaply, without a browser.
//!
//! Messages are encoded by [`crate::stproto`], independently of the gateway's
//! own protocol code.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use http::{HeaderName, HeaderValue, StatusCode, Uri};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::stproto;
pub use crate::stproto::{script_finished, RerunRequest, StEvent};

/// The XSRF placeholder Streamlit's frontend sends when it has no token; the
/// server then simply treats the user as anonymous.
pub const PLACEHOLDER_AUTH_TOKEN: &str = "PLACEHOLDER_AUTH_TOKEN";

/// Path of Streamlit's WebSocket endpoint, relative to the base URL.
pub const STREAM_PATH: &str = "/_stcore/stream";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The outcome of a WebSocket upgrade attempt made with
/// [`StClient::connect_with_headers`].
#[derive(Debug)]
pub enum Upgrade {
    /// The server switched protocols. (Boxed: a client is much larger than
    /// a refusal.)
    Accepted(Box<StClient>),
    /// The server answered the upgrade request with an ordinary HTTP response.
    Refused {
        /// The response status (for example 403).
        status: StatusCode,
        /// The response body, if any, as text.
        body: String,
    },
}

/// What one script run produced, as returned by [`StClient::run_until_finished`].
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The `script_finished` status (see [`script_finished`]).
    pub status: u64,
    /// Every event received up to and including `ScriptFinished`.
    pub events: Vec<StEvent>,
}

impl RunOutcome {
    /// Bodies of the markdown elements the run rendered, in order
    /// (`st.write("text")` renders markdown).
    pub fn markdown(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                StEvent::Delta {
                    markdown: Some(m), ..
                } => Some(m.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The media URLs (`/media/…`) the run's elements named.
    pub fn media(&self) -> Vec<&str> {
        self.events
            .iter()
            .flat_map(|e| match e {
                StEvent::Delta { media, .. } => media.iter().map(String::as_str).collect(),
                _ => Vec::new(),
            })
            .collect()
    }
}

/// A connection to a Streamlit (or gateway) WebSocket endpoint.
#[derive(Debug)]
pub struct StClient {
    ws: Ws,
    session_id: Option<String>,
    /// Set once the connection has ended, so that later reads report the
    /// same close instead of an error.
    closed: Option<StEvent>,
    /// Every event received so far, in order.
    history: Vec<StEvent>,
}

impl StClient {
    /// Connects to `<base_http_url>/_stcore/stream` like Streamlit's frontend:
    /// subprotocols `streamlit, PLACEHOLDER_AUTH_TOKEN[, <previous session id>]`
    /// and an `Origin` equal to the scheme, host and port of `base_http_url`.
    ///
    /// Passing the id of a session that Streamlit still holds (within
    /// `server.disconnectedSessionTTL` of its disconnect) resumes that
    /// session, as a reconnecting browser tab does.
    pub async fn connect(
        base_http_url: &str,
        previous_session_id: Option<&str>,
    ) -> Result<StClient> {
        let headers = Self::default_headers(base_http_url, previous_session_id)?;
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match Self::connect_with_headers(base_http_url, &headers).await? {
            Upgrade::Accepted(client) => Ok(*client),
            Upgrade::Refused { status, body } => {
                bail!("WebSocket upgrade at {base_http_url} refused with {status}: {body}")
            }
        }
    }

    /// The headers [`connect`](Self::connect) sends besides the handshake's
    /// own: `Origin` and `Sec-WebSocket-Protocol`. Tests that need to
    /// deviate can start from these.
    pub fn default_headers(
        base_http_url: &str,
        previous_session_id: Option<&str>,
    ) -> Result<Vec<(String, String)>> {
        let mut protocols = format!("streamlit, {PLACEHOLDER_AUTH_TOKEN}");
        if let Some(id) = previous_session_id {
            protocols.push_str(", ");
            protocols.push_str(id);
        }
        Ok(vec![
            ("Origin".to_owned(), origin_of(base_http_url)?),
            ("Sec-WebSocket-Protocol".to_owned(), protocols),
        ])
    }

    /// Attempts the WebSocket upgrade with exactly `headers` added to the
    /// handshake's mandatory ones (`Host`, `Upgrade`, `Connection`,
    /// `Sec-WebSocket-Key`, `Sec-WebSocket-Version`), and reports a refusal
    /// as [`Upgrade::Refused`] rather than as an error.
    ///
    /// Errors are reserved for failures to reach the server at all.
    pub async fn connect_with_headers(
        base_http_url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Upgrade> {
        Self::handshake(&stream_url(base_http_url)?, headers).await
    }

    /// Like [`connect`](Self::connect) (no previous session), with `extra` headers added to
    /// the handshake (a cookie, a spoofed identity header); a refusal is reported, not an
    /// error.
    pub async fn connect_adding(base_http_url: &str, extra: &[(&str, &str)]) -> Result<Upgrade> {
        let defaults = Self::default_headers(base_http_url, None)?;
        let headers: Vec<(&str, &str)> = defaults
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(extra.iter().copied())
            .collect();
        Self::connect_with_headers(base_http_url, &headers).await
    }

    /// Attempts the handshake at `path` on the server of `base_http_url` (an encoded form
    /// of the session socket's path, say) with [`default_headers`](Self::default_headers).
    pub async fn connect_at_path(base_http_url: &str, path: &str) -> Result<Upgrade> {
        let headers = Self::default_headers(base_http_url, None)?;
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let url = stream_url(base_http_url)?;
        let authority_end = url
            .find("://")
            .and_then(|at| url[at + 3..].find('/').map(|slash| at + 3 + slash))
            .context("a stream URL has a path")?;
        Self::handshake(&format!("{}{path}", &url[..authority_end]), &headers).await
    }

    /// Connects like a page that has idlegate's script: the page names its token as one more
    /// subprotocol, `idlegate.tab.<token>`.
    pub async fn connect_as_page(base_http_url: &str, token: &str) -> Result<StClient> {
        Self::connect_as_page_adding(base_http_url, token, &[]).await
    }

    /// Like [`connect_as_page`](Self::connect_as_page), with `extra` headers (a login cookie).
    pub async fn connect_as_page_adding(
        base_http_url: &str,
        token: &str,
        extra: &[(&str, &str)],
    ) -> Result<StClient> {
        let mut headers = Self::default_headers(base_http_url, None)?;
        for (name, value) in &mut headers {
            if name == "Sec-WebSocket-Protocol" {
                value.push_str(&format!(", idlegate.tab.{token}"));
            }
        }
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(extra.iter().copied())
            .collect();
        let url = stream_url(base_http_url)?;
        match Self::handshake(&url, &headers).await? {
            Upgrade::Accepted(client) => Ok(*client),
            Upgrade::Refused { status, body } => {
                bail!("WebSocket upgrade at {url} refused with {status}: {body}")
            }
        }
    }

    async fn handshake(url: &str, headers: &[(&str, &str)]) -> Result<Upgrade> {
        let mut request = url
            .into_client_request()
            .with_context(|| format!("building WebSocket request for {url}"))?;
        for (name, value) in headers {
            request.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes())
                    .with_context(|| format!("header name {name:?}"))?,
                HeaderValue::from_str(value).with_context(|| format!("header value {value:?}"))?,
            );
        }
        let connect = tokio_tungstenite::connect_async(request);
        let result = tokio::time::timeout(Duration::from_secs(30), connect)
            .await
            .with_context(|| format!("WebSocket handshake with {url} timed out"))?;
        match result {
            Ok((ws, _response)) => Ok(Upgrade::Accepted(Box::new(StClient {
                ws,
                session_id: None,
                closed: None,
                history: Vec::new(),
            }))),
            Err(WsError::Http(response)) => Ok(Upgrade::Refused {
                status: response.status(),
                body: response
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
            }),
            Err(e) => Err(anyhow!(e).context(format!("WebSocket connection to {url} failed"))),
        }
    }

    /// Sends a rerun request for the main page, as the frontend does right
    /// after connecting and on every widget interaction.
    pub async fn send_rerun(&mut self, is_auto_rerun: bool) -> Result<()> {
        self.send_rerun_request(&RerunRequest {
            is_auto_rerun,
            ..Default::default()
        })
        .await
    }

    /// Sends a rerun request with the given client state.
    pub async fn send_rerun_request(&mut self, req: &RerunRequest) -> Result<()> {
        self.send_raw(stproto::encode_rerun(req)).await
    }

    /// Reruns one fragment the way the frontend's timer does for
    /// `st.fragment(run_every=...)` (see [`StEvent::AutoRerun`]).
    pub async fn send_fragment_auto_rerun(&mut self, fragment_id: &str) -> Result<()> {
        self.send_rerun_request(&RerunRequest {
            fragment_id: fragment_id.to_owned(),
            is_auto_rerun: true,
            ..Default::default()
        })
        .await
    }

    /// Asks the server to stop the running script.
    pub async fn send_stop(&mut self) -> Result<()> {
        self.send_raw(stproto::encode_stop_script()).await
    }

    /// Sends an app heartbeat, which the frontend sends periodically while
    /// the tab is open.
    pub async fn send_heartbeat(&mut self) -> Result<()> {
        self.send_raw(stproto::encode_app_heartbeat()).await
    }

    /// Sends arbitrary bytes as one binary WebSocket message.
    pub async fn send_raw(&mut self, bytes: Vec<u8>) -> Result<()> {
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .context("sending a WebSocket message")
    }

    /// Starts the closing handshake with a normal (1000) close.
    pub async fn close(&mut self) -> Result<()> {
        match self.ws.close(None).await {
            Ok(()) | Err(WsError::ConnectionClosed) | Err(WsError::AlreadyClosed) => Ok(()),
            Err(e) => Err(e).context("closing the WebSocket"),
        }
    }

    /// Waits up to `timeout` for the next protocol event.
    ///
    /// Pings are answered and skipped. Once the connection has ended, every
    /// call returns the same [`StEvent::Closed`].
    pub async fn next_event(&mut self, timeout: Duration) -> Result<StEvent> {
        if let Some(closed) = &self.closed {
            return Ok(closed.clone());
        }
        let event = tokio::time::timeout(timeout, self.read_event())
            .await
            .map_err(|_| anyhow!("no Streamlit message within {timeout:?}"))??;
        match &event {
            StEvent::NewSession { session_id } => self.session_id = Some(session_id.clone()),
            StEvent::Closed { .. } => self.closed = Some(event.clone()),
            _ => {}
        }
        self.history.push(event.clone());
        Ok(event)
    }

    async fn read_event(&mut self) -> Result<StEvent> {
        loop {
            let message = match self.ws.next().await {
                None => {
                    return Ok(StEvent::Closed {
                        code: None,
                        reason: "connection ended without a close frame".into(),
                    })
                }
                Some(Ok(message)) => message,
                // A dropped TCP connection is an observable outcome in these
                // tests (a gateway may cut a socket), not a client failure.
                Some(Err(
                    e @ (WsError::Io(_) | WsError::Protocol(_) | WsError::ConnectionClosed),
                )) => {
                    return Ok(StEvent::Closed {
                        code: None,
                        reason: e.to_string(),
                    })
                }
                Some(Err(e)) => return Err(e).context("reading from the WebSocket"),
            };
            match message {
                Message::Binary(bytes) => {
                    return stproto::decode_forward_msg(&bytes).context("decoding a ForwardMsg")
                }
                Message::Close(frame) => {
                    let (code, reason) = match frame {
                        Some(CloseFrame { code, reason }) => {
                            (Some(u16::from(code)), reason.to_string())
                        }
                        None => (None, String::new()),
                    };
                    return Ok(StEvent::Closed { code, reason });
                }
                // tungstenite queues the pong reply itself; it is flushed by
                // the next read or write.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                Message::Text(text) => bail!("unexpected text WebSocket message: {text}"),
            }
        }
    }

    /// Waits until a script run finishes and returns what it produced. Sends
    /// nothing: call [`send_rerun`](Self::send_rerun) first to start a run.
    ///
    /// Runs that were cut short by a newer rerun request are skipped, so
    /// this returns the outcome of the run that actually completed. Fails if
    /// the connection closes first or nothing finishes within `timeout`.
    pub async fn run_until_finished(&mut self, timeout: Duration) -> Result<RunOutcome> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut events = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.next_event(left).await.with_context(|| {
                format!("waiting for script_finished; events so far: {events:?}")
            })?;
            events.push(event.clone());
            match event {
                StEvent::ScriptFinished(status)
                    if status != script_finished::FINISHED_EARLY_FOR_RERUN =>
                {
                    return Ok(RunOutcome { status, events })
                }
                StEvent::Closed { code, reason } => {
                    bail!("connection closed ({code:?}, {reason:?}) before the script finished; events: {events:?}")
                }
                _ => {}
            }
        }
    }

    /// Waits for an `auth_redirect` message and returns its URL. Fails if the
    /// connection closes first or none arrives within `timeout`.
    pub async fn wait_for_auth_redirect(&mut self, timeout: Duration) -> Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self
                .next_event(left)
                .await
                .context("waiting for auth_redirect")?
            {
                StEvent::AuthRedirect { url } => return Ok(url),
                StEvent::Closed { code, reason } => {
                    bail!("connection closed ({code:?}, {reason:?}) without an auth_redirect")
                }
                _ => {}
            }
        }
    }

    /// Waits for the connection to end, skipping any other messages, and
    /// returns the close code and reason.
    pub async fn wait_for_close(&mut self, timeout: Duration) -> Result<(Option<u16>, String)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let StEvent::Closed { code, reason } =
                self.next_event(left).await.context("waiting for close")?
            {
                return Ok((code, reason));
            }
        }
    }

    /// The session id from the most recent `new_session` message, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// Every event received so far, in order.
    pub fn history(&self) -> &[StEvent] {
        &self.history
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }
}

/// `ws[s]://host:port/<base>/_stcore/stream` for an `http[s]://host:port/<base>` URL.
pub fn stream_url(base_http_url: &str) -> Result<String> {
    let uri: Uri = base_http_url
        .parse()
        .with_context(|| format!("invalid base URL {base_http_url:?}"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => "ws",
        Some("https") => "wss",
        other => bail!("base URL {base_http_url:?} must be http(s), not {other:?}"),
    };
    let authority = uri.authority().context("base URL has no host")?;
    let base = uri.path().trim_end_matches('/');
    Ok(format!("{scheme}://{authority}{base}{STREAM_PATH}"))
}

/// The web origin (`scheme://host:port`) of an http(s) URL, as a browser
/// would send it in the `Origin` header.
pub fn origin_of(base_http_url: &str) -> Result<String> {
    let uri: Uri = base_http_url
        .parse()
        .with_context(|| format!("invalid base URL {base_http_url:?}"))?;
    let scheme = uri.scheme_str().context("base URL has no scheme")?;
    let authority = uri.authority().context("base URL has no host")?;
    Ok(format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            stream_url("http://127.0.0.1:8501").unwrap(),
            "ws://127.0.0.1:8501/_stcore/stream"
        );
        assert_eq!(
            stream_url("http://127.0.0.1:8501/app/").unwrap(),
            "ws://127.0.0.1:8501/app/_stcore/stream"
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8501/app").unwrap(),
            "http://127.0.0.1:8501"
        );
        assert!(stream_url("ftp://x").is_err());
    }

    #[test]
    fn protocol_header_carries_previous_session() {
        let headers = StClient::default_headers("http://h:1", Some("abc")).unwrap();
        assert!(headers.contains(&(
            "Sec-WebSocket-Protocol".into(),
            "streamlit, PLACEHOLDER_AUTH_TOKEN, abc".into()
        )));
        assert!(headers.contains(&("Origin".into(), "http://h:1".into())));
    }
}
