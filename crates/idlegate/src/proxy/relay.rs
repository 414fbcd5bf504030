//! Relaying one tab's session socket between browser and app, watching what passes.
//!
//! Bytes pass through unchanged in both directions. Each direction feeds a
//! [`FrameReader`] (frame boundaries, opcodes) and the app's [`MessageDecoder`] (what each
//! message means); the resulting [`crate::tracker::Signal`]s go to the tab's
//! [`TabConnection`]. Pings, pongs and text frames are never decoded.
//!
//! When the tab ends, the app→browser direction first completes the frame in flight, then
//! sends the app's redirect message (the page navigates to the "session ended" page), while
//! the browser→app direction closes the app's socket so the app drops the session. When
//! either side goes away, the other side is closed too.
//!
//! Browser-side protocol errors close the connection; app-side message errors are only
//! logged, since the app is trusted and the browser will judge its own messages.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};

use super::frame::{
    close_payload, encode_frame, FrameError, FrameEvent, FrameReader, Opcode, Role,
};
use crate::apps::{App, DecodeError, MessageDecoder};
use crate::tracker::{EndReason, Ending, TabConnection};

/// Read buffer per direction while little flows: an idle tab costs this much per direction.
const BUFFER_MIN: usize = 1024;
/// Largest read buffer, reached by doubling while reads fill the buffer (a big app message).
const BUFFER_MAX: usize = 64 * 1024;
/// How long the browser gets to leave after it was sent away, and the app to finish a frame.
const LINGER: Duration = Duration::from_secs(3);

/// Relay settings that do not change per connection.
pub struct RelayOptions<'a> {
    /// Largest frame accepted from the browser.
    pub max_message_bytes: u64,
    /// URL of the "session ended" page for a reason.
    pub ended_url: &'a (dyn Fn(EndReason) -> String + Sync),
}

/// Why a relay stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(Debug, thiserror::Error)]
enum InspectError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// One direction's view of the stream.
struct Inspector {
    reader: FrameReader,
    decoder: Box<dyn MessageDecoder>,
    /// Decode errors close the connection (browser side) or skip the message (app side).
    strict: bool,
    binary_message: bool,
    data_frame: bool,
    poisoned: bool,
}

impl Inspector {
    fn new(role: Role, max: u64, decoder: Box<dyn MessageDecoder>) -> Self {
        Self {
            reader: FrameReader::new(role, max),
            decoder,
            strict: role == Role::FromClient,
            binary_message: false,
            data_frame: false,
            poisoned: false,
        }
    }

    fn inspect(&mut self, bytes: &[u8], conn: &TabConnection) -> Result<(), InspectError> {
        let Self {
            reader,
            decoder,
            strict,
            binary_message,
            data_frame,
            poisoned,
        } = self;
        let mut error: Option<DecodeError> = None;
        reader.feed(bytes, &mut |event| match event {
            FrameEvent::Header(header) => {
                *data_frame = match header.opcode {
                    Opcode::Binary => {
                        *binary_message = true;
                        *poisoned = false;
                        decoder.begin();
                        true
                    }
                    Opcode::Text => {
                        *binary_message = false;
                        false
                    }
                    Opcode::Continuation => *binary_message,
                    Opcode::Close | Opcode::Ping | Opcode::Pong => false,
                };
            }
            FrameEvent::Payload(piece) => {
                if *data_frame && !*poisoned {
                    if let Err(e) = decoder.feed(piece) {
                        *poisoned = true;
                        error.get_or_insert(e);
                    }
                }
            }
            FrameEvent::End(header) => {
                if *data_frame && header.fin && !*poisoned {
                    if let Err(e) = decoder.finish(&mut |signal| conn.signal(signal)) {
                        *poisoned = true;
                        error.get_or_insert(e);
                    }
                }
            }
        })?;
        match error {
            Some(e) if *strict => Err(e.into()),
            Some(e) => {
                tracing::debug!(tab = conn.tab_id(), error = %e, "skipped an app message idlegate could not read");
                Ok(())
            }
            None => Ok(()),
        }
    }
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
    let mut from_browser =
        Inspector::new(Role::FromClient, options.max_message_bytes, browser_decoder);
    let mut from_app = Inspector::new(Role::FromServer, u64::MAX, app_decoder);
    let (stop, stopped) = watch::channel(None::<Outcome>);

    let up = browser_to_app(
        client_read,
        app_write,
        &mut from_browser,
        conn,
        &stop,
        stopped.clone(),
    );
    let down = app_to_browser(
        app_read,
        client_write,
        &mut from_app,
        conn,
        app,
        options,
        &stop,
        stopped,
    );
    let (a, b) = tokio::join!(up, down);
    a.or(b).unwrap_or(Outcome::BrowserClosed)
}

async fn browser_to_app<R, W>(
    mut from: R,
    mut to: W,
    inspector: &mut Inspector,
    conn: &TabConnection,
    stop: &watch::Sender<Option<Outcome>>,
    mut stopped: watch::Receiver<Option<Outcome>>,
) -> Option<Outcome>
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
                let ended = (*ending.borrow()).unwrap_or(Ending { reason: EndReason::Closed, notify_browser: false });
                close_app_side(&mut to, &inspector.reader).await;
                // Keep reading so the browser can take the redirect and leave on its own.
                drain(&mut from, Instant::now() + LINGER).await;
                return Some(Outcome::Ended(ended));
            }
            _ = stopped.changed() => {
                let _ = to.shutdown().await;
                return None;
            }
            read = from.read(buf.space()) => {
                let n = match read {
                    Ok(0) | Err(_) => {
                        let _ = stop.send(Some(Outcome::BrowserClosed));
                        close_app_side(&mut to, &inspector.reader).await;
                        return Some(Outcome::BrowserClosed);
                    }
                    Ok(n) => n,
                };
                let n = buf.filled(n);
                if let Err(e) = inspector.inspect(buf.data(n), conn) {
                    tracing::info!(tab = conn.tab_id(), error = %e, "closing a tab connection: bad data from the browser");
                    let _ = stop.send(Some(Outcome::ProtocolError));
                    let _ = to.shutdown().await;
                    return Some(Outcome::ProtocolError);
                }
                if to.write_all(buf.data(n)).await.is_err() {
                    let _ = stop.send(Some(Outcome::AppClosed));
                    return Some(Outcome::AppClosed);
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn app_to_browser<R, W>(
    mut from: R,
    mut to: W,
    inspector: &mut Inspector,
    conn: &TabConnection,
    app: &dyn App,
    options: &RelayOptions<'_>,
    stop: &watch::Sender<Option<Outcome>>,
    mut stopped: watch::Receiver<Option<Outcome>>,
) -> Option<Outcome>
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
                let ended = (*ending.borrow()).unwrap_or(Ending { reason: EndReason::Closed, notify_browser: false });
                if !finish_frame(&mut from, &mut to, inspector, conn, buf.space()).await {
                    return None;
                }
                let mut frame = Vec::new();
                let redirect = ended
                    .notify_browser
                    .then(|| app.redirect_message(&(options.ended_url)(ended.reason)))
                    .flatten();
                match redirect {
                    Some(message) => encode_frame(&mut frame, Opcode::Binary, true, &message, None),
                    None => encode_frame(&mut frame, Opcode::Close, true, &close_payload(1000, ended.reason.as_str()), None),
                }
                let _ = to.write_all(&frame).await;
                let _ = to.flush().await;
                return None;
            }
            _ = stopped.changed() => return None,
            read = from.read(buf.space()) => {
                let n = match read {
                    Ok(0) | Err(_) => {
                        let _ = to.shutdown().await;
                        let _ = stop.send(Some(Outcome::AppClosed));
                        return Some(Outcome::AppClosed);
                    }
                    Ok(n) => n,
                };
                let n = buf.filled(n);
                if let Err(e) = inspector.inspect(buf.data(n), conn) {
                    tracing::warn!(tab = conn.tab_id(), error = %e, "closing a tab connection: bad framing from the app");
                    let _ = stop.send(Some(Outcome::ProtocolError));
                    let _ = to.shutdown().await;
                    return Some(Outcome::ProtocolError);
                }
                if to.write_all(buf.data(n)).await.is_err() {
                    let _ = stop.send(Some(Outcome::BrowserClosed));
                    return Some(Outcome::BrowserClosed);
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
    inspector: &mut Inspector,
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

#[cfg(test)]
mod tests;
