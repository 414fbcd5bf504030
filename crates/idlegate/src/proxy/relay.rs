//! Relaying one tab's session socket between browser and app, watching what passes.
//!
//! Bytes pass through unchanged in both directions. Each direction feeds a
//! [`FrameReader`] (frame boundaries, opcodes) and the app's [`MessageDecoder`] (what each
//! message means); the resulting [`crate::tracker::Signal`]s go to the tab's
//! [`TabConnection`]. Pings, pongs and text frames are never decoded.
//!
//! When the tab ends, the app→browser direction first completes the frame in flight and the
//! browser→app direction closes the app's socket so the app drops the session; then the
//! page gets its [`Farewell`]: the app's messages that send it to the "session ended" page,
//! or, for a page that cannot be sent elsewhere (in an iframe), that draw the notice in
//! place, after which the socket is held open so the page does not reconnect. When either
//! side goes away, the other side is closed too.
//!
//! Browser-side protocol errors close the connection; app-side message errors are only
//! logged, since the app is trusted and the browser will judge its own messages.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};

use crate::apps::{App, Farewell, Message};
use crate::error::chain;
use crate::tracker::{EndNotice, Ending, TabConnection};
use crate::ws::traffic::Traffic;
use crate::ws::{close_payload, encode_frame, FrameEvent, FrameReader, Opcode, Role};

/// Read buffer per direction while little flows: an idle tab costs this much per direction.
const BUFFER_MIN: usize = 1024;
/// Largest read buffer, reached by doubling while reads fill the buffer (a big app message).
const BUFFER_MAX: usize = 64 * 1024;
/// How long the browser gets to leave after it was sent away, and the app to finish a frame.
const LINGER: Duration = Duration::from_secs(3);

/// How long a page held after its farewell keeps its socket; then it is closed (and a page
/// that reconnects gets the same farewell again).
pub const HOLD_FOR: Duration = Duration::from_secs(600);

/// Relay settings that do not change per connection.
pub struct RelayOptions<'a> {
    /// Largest frame accepted from the browser.
    pub max_message_bytes: u64,
    /// What a page is told when its tab ends.
    pub farewell: &'a (dyn Fn(&EndNotice) -> Farewell + Sync),
    /// Where frames and bytes relayed are counted.
    pub traffic: &'a Traffic,
}

/// Why a relay stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The browser closed or lost its connection.
    BrowserClosed,
    /// The app closed its side.
    AppClosed,
    /// The tab ended (or another connection took it over).
    Ended(Ending),
    /// A protocol error on either side.
    ProtocolError,
}

/// Relays until the browser or the app goes away, or the tab ends.
pub async fn run<C, U>(
    client: C,
    upstream: U,
    conn: &TabConnection,
    app: &dyn App,
    options: &RelayOptions<'_>,
) -> Outcome
where
    C: AsyncRead + AsyncWrite + Send,
    U: AsyncRead + AsyncWrite + Send,
{
    let (client_read, client_write) = tokio::io::split(client);
    let (app_read, app_write) = tokio::io::split(upstream);
    let (browser_decoder, app_decoder) = app.decoders();
    let mut from_browser = Inspector::new(
        Role::FromClient,
        options.max_message_bytes,
        browser_decoder,
        options.traffic,
    );
    let mut from_app = Inspector::new(Role::FromServer, u64::MAX, app_decoder, options.traffic);
    let (stop, stopped) = watch::channel(None::<Outcome>);

    let up = browser_to_app(
        client_read,
        app_write,
        &mut from_browser,
        conn,
        &stop,
        stopped.clone(),
    );
    let down = app_to_browser(app_read, client_write, &mut from_app, conn, &stop, stopped);
    let ((a, browser_read), (b, browser_write)) = tokio::join!(up, down);
    let outcome = a.or(b).unwrap_or(Outcome::BrowserClosed);
    if let (Outcome::Ended(ending), Some(read), Some(write)) =
        (&outcome, browser_read, browser_write)
    {
        let farewell = ending
            .notify_browser
            .then(|| (options.farewell)(&ending.notice));
        say_farewell(read, write, &mut from_browser.reader, farewell).await;
    }
    outcome
}

/// Gives a page that never reached the app (its session had ended, it must sign in) its
/// farewell.
pub async fn farewell_alone<S>(browser: S, farewell: Farewell)
where
    S: AsyncRead + AsyncWrite,
{
    let (read, write) = tokio::io::split(browser);
    let mut reader = FrameReader::new(Role::FromClient, 1 << 20);
    say_farewell(read, write, &mut reader, Some(farewell)).await;
}

/// Tells the page its tab ended (or closes it quietly when `farewell` is `None`), then lets
/// it leave on its own, or holds it.
async fn say_farewell<R, W>(
    mut from: R,
    mut to: W,
    reader: &mut FrameReader,
    farewell: Option<Farewell>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Some(farewell) = farewell else {
        let mut frame = Vec::new();
        encode_frame(
            &mut frame,
            Opcode::Close,
            true,
            &close_payload(1000, ""),
            None,
        );
        let _ = to.write_all(&frame).await;
        let _ = to.shutdown().await;
        return;
    };
    if send_messages(&mut to, &farewell.messages).await.is_err() {
        return;
    }
    if !farewell.hold {
        // Keep reading so the browser can take the redirect and leave on its own.
        drain(&mut from, Instant::now() + LINGER).await;
        return;
    }
    let until = Instant::now() + HOLD_FOR;
    let mut buf = [0u8; 1024];
    while let Ok(Ok(n)) = timeout_at(until, from.read(&mut buf)).await {
        if n == 0 {
            return;
        }
        let mut asked = false;
        let read = reader.feed(&buf[..n], &mut |event| {
            if let FrameEvent::End(header) = event {
                asked |= header.fin && matches!(header.opcode, Opcode::Binary | Opcode::Text);
            }
        });
        if read.is_err() {
            return;
        }
        if asked && send_messages(&mut to, &farewell.again).await.is_err() {
            return;
        }
    }
    let mut frame = Vec::new();
    encode_frame(
        &mut frame,
        Opcode::Close,
        true,
        &close_payload(1000, ""),
        None,
    );
    let _ = to.write_all(&frame).await;
}

async fn send_messages<W: AsyncWrite + Unpin>(
    to: &mut W,
    messages: &[Message],
) -> std::io::Result<()> {
    let mut frames = Vec::new();
    for message in messages {
        match message {
            Message::Binary(bytes) => encode_frame(&mut frames, Opcode::Binary, true, bytes, None),
            Message::Text(text) => {
                encode_frame(&mut frames, Opcode::Text, true, text.as_bytes(), None)
            }
        }
    }
    to.write_all(&frames).await?;
    to.flush().await
}

/// Browser→app. On the tab's end, returns the browser's read half for the farewell.
async fn browser_to_app<R, W>(
    mut from: R,
    mut to: W,
    inspector: &mut Inspector<'_>,
    conn: &TabConnection,
    stop: &watch::Sender<Option<Outcome>>,
    mut stopped: watch::Receiver<Option<Outcome>>,
) -> (Option<Outcome>, Option<R>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut ending = conn.ending();
    let mut buf = ReadBuffer::new();
    loop {
        tokio::select! {
            biased;
            _ = ending.changed() => {
                let ended = ending.borrow().clone().unwrap_or_else(Ending::quiet);
                close_app_side(&mut to, &inspector.reader).await;
                return (Some(Outcome::Ended(ended)), Some(from));
            }
            _ = stopped.changed() => {
                let _ = to.shutdown().await;
                return (None, None);
            }
            read = from.read(buf.space()) => {
                let n = match read {
                    Ok(0) | Err(_) => {
                        let _ = stop.send(Some(Outcome::BrowserClosed));
                        close_app_side(&mut to, &inspector.reader).await;
                        return (Some(Outcome::BrowserClosed), None);
                    }
                    Ok(n) => n,
                };
                let n = buf.filled(n);
                if let Err(e) = inspector.inspect(buf.data(n), conn) {
                    tracing::info!(tab = conn.tab_id(), error = %chain(&e), "closing a tab connection: bad data from the browser");
                    let _ = stop.send(Some(Outcome::ProtocolError));
                    let _ = to.shutdown().await;
                    return (Some(Outcome::ProtocolError), None);
                }
                if to.write_all(buf.data(n)).await.is_err() {
                    let _ = stop.send(Some(Outcome::AppClosed));
                    return (Some(Outcome::AppClosed), None);
                }
            }
        }
    }
}

/// App→browser. On the tab's end, finishes the frame in flight and returns the browser's
/// write half for the farewell (none when the frame could not be finished).
async fn app_to_browser<R, W>(
    mut from: R,
    mut to: W,
    inspector: &mut Inspector<'_>,
    conn: &TabConnection,
    stop: &watch::Sender<Option<Outcome>>,
    mut stopped: watch::Receiver<Option<Outcome>>,
) -> (Option<Outcome>, Option<W>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut ending = conn.ending();
    let mut buf = ReadBuffer::new();
    loop {
        tokio::select! {
            biased;
            _ = ending.changed() => {
                if !finish_frame(&mut from, &mut to, inspector, conn, buf.space()).await {
                    return (None, None);
                }
                return (None, Some(to));
            }
            _ = stopped.changed() => return (None, None),
            read = from.read(buf.space()) => {
                let n = match read {
                    Ok(0) | Err(_) => {
                        let _ = to.shutdown().await;
                        let _ = stop.send(Some(Outcome::AppClosed));
                        return (Some(Outcome::AppClosed), None);
                    }
                    Ok(n) => n,
                };
                let n = buf.filled(n);
                if let Err(e) = inspector.inspect(buf.data(n), conn) {
                    tracing::warn!(tab = conn.tab_id(), error = %chain(&e), "closing a tab connection: bad framing from the app");
                    let _ = stop.send(Some(Outcome::ProtocolError));
                    let _ = to.shutdown().await;
                    return (Some(Outcome::ProtocolError), None);
                }
                if to.write_all(buf.data(n)).await.is_err() {
                    let _ = stop.send(Some(Outcome::BrowserClosed));
                    return (Some(Outcome::BrowserClosed), None);
                }
            }
        }
    }
}

/// A read buffer that stays small while a tab is idle and grows while data streams.
struct ReadBuffer {
    bytes: Vec<u8>,
}

impl ReadBuffer {
    fn new() -> Self {
        Self {
            bytes: vec![0; BUFFER_MIN],
        }
    }

    /// Where the next read goes.
    fn space(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// The first `n` bytes, as read.
    fn data(&self, n: usize) -> &[u8] {
        &self.bytes[..n]
    }

    /// Records that a read returned `n` bytes and sizes the buffer for the next one: double
    /// after a full read, back to the minimum after a small one. Returns `n`.
    fn filled(&mut self, n: usize) -> usize {
        let len = self.bytes.len();
        if n == len && len < BUFFER_MAX {
            // Keep the bytes just read; the caller uses them before the next read.
            self.bytes.resize(len * 2, 0);
        } else if n <= BUFFER_MIN / 2 && len > BUFFER_MIN {
            let mut small = vec![0; BUFFER_MIN];
            small[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = small;
        }
        n
    }
}

/// Relays the rest of the frame in flight, so that the next byte the browser gets starts a
/// frame. Returns `false` if that was not possible in time.
async fn finish_frame<R, W>(
    from: &mut R,
    to: &mut W,
    inspector: &mut Inspector<'_>,
    conn: &TabConnection,
    buf: &mut [u8],
) -> bool
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let deadline = Instant::now() + LINGER;
    while !inspector.reader.at_boundary() {
        // Read no further than the end of this frame; inside a header, byte by byte.
        let want = inspector
            .reader
            .remaining_payload()
            .map_or(1, |left| left.min(buf.len() as u64) as usize)
            .max(1);
        let n = match timeout_at(deadline, from.read(&mut buf[..want])).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return false,
        };
        if inspector.inspect(&buf[..n], conn).is_err() || to.write_all(&buf[..n]).await.is_err() {
            return false;
        }
    }
    true
}

/// Closes the app's side: a close frame when the stream is at a frame boundary, then FIN.
async fn close_app_side<W: AsyncWrite + Unpin>(to: &mut W, reader: &FrameReader) {
    if reader.at_boundary() {
        let mut frame = Vec::with_capacity(8);
        encode_frame(
            &mut frame,
            Opcode::Close,
            true,
            &close_payload(1000, ""),
            Some(rand::random()),
        );
        let _ = to.write_all(&frame).await;
    }
    let _ = to.shutdown().await;
}

/// Reads and discards until the peer closes or the deadline passes.
async fn drain<R: AsyncRead + Unpin>(from: &mut R, deadline: Instant) {
    let mut sink = [0u8; 1024];
    while let Ok(Ok(n)) = timeout_at(deadline, from.read(&mut sink)).await {
        if n == 0 {
            break;
        }
    }
}

mod inspector;
#[cfg(test)]
mod tests;

use inspector::Inspector;
