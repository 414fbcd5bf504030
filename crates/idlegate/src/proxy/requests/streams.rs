//! A tab's response bodies on their way to the browser: pumped from the app by a task of
//! their own, read as they pass ([`Watch::saw`]), and cut when the tab ends, whether or not
//! the browser reads (a browser that stops reading must not keep the app's side open).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{mpsc, watch};

use super::{Link, Sessions};
use crate::lifecycle::Signal;
use crate::proxy::sse::EventStream;
use crate::proxy::Body;
use crate::tracker::Ending;

/// Pieces of a body held between the app and a browser that reads slowly.
const IN_FLIGHT: usize = 4;
/// How long the farewell may wait for a browser that does not read.
const FAREWELL_WAIT: Duration = Duration::from_secs(1);

/// What a response body of a tab's request does as it passes.
pub(super) struct Watch {
    link: Arc<Link>,
    /// Reads the app's events (event streams only).
    reader: Option<EventStream>,
    /// This stream's events in progress.
    running: usize,
    /// For the stream that holds the app's session: where its tab is kept, and its id.
    held: Option<(Arc<Sessions>, String)>,
    /// Sent on an event stream when the tab ends, before it is cut.
    farewell: Option<Bytes>,
}

impl Watch {
    /// A watch for `link`'s tab: `reader` reads an event stream; `held` is where the tab is
    /// kept and its id, for the stream that holds the app's session; `farewell` is sent on
    /// an event stream when the tab ends.
    pub(super) fn new(
        link: Arc<Link>,
        reader: Option<EventStream>,
        held: Option<(Arc<Sessions>, String)>,
        farewell: Option<Bytes>,
    ) -> Self {
        Self {
            link,
            reader,
            running: 0,
            held,
            farewell,
        }
    }

    /// The app sent `data`.
    fn saw(&mut self, data: &[u8]) {
        let Some(reader) = &mut self.reader else {
            return;
        };
        let mut signals = Vec::new();
        if let Err(e) = reader.feed(data, &mut |signal| signals.push(signal)) {
            tracing::debug!(error = %crate::error::chain(&e), "an app event idlegate could not read");
        }
        for signal in signals {
            match signal {
                Signal::Running(true) => {
                    self.running += 1;
                    self.link.running(true);
                }
                Signal::Running(false) if self.running > 0 => {
                    self.running -= 1;
                    self.link.running(false);
                }
                Signal::Running(false) => {}
                other => self.link.signal(other),
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        for _ in 0..self.running {
            self.link.running(false);
        }
        if let Some((sessions, id)) = &self.held {
            self.link.closed();
            sessions.forget(id, &self.link);
        }
    }
}

/// The app's response body, passed on as it comes (see the module).
pub(super) fn watched(body: Incoming, watch: Watch) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, hyper::Error>>(IN_FLIGHT);
    let ending = watch.link.ending.clone();
    tokio::spawn(pump(body, watch, ending, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    });
    Body::from_stream(stream)
}

/// Moves the body's pieces from the app to the browser until either side is done or the
/// tab ends; dropping the app's body closes that connection (the app sees the page leave).
async fn pump(
    mut body: Incoming,
    mut watch: Watch,
    mut ending: watch::Receiver<Option<Ending>>,
    tx: mpsc::Sender<Result<Bytes, hyper::Error>>,
) {
    loop {
        let frame = tokio::select! {
            biased;
            _ = ending.changed() => break,
            () = tx.closed() => return,
            frame = body.frame() => frame,
        };
        let data = match frame {
            None => return,
            Some(Err(e)) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
        };
        watch.saw(&data);
        tokio::select! {
            biased;
            _ = ending.changed() => break,
            sent = tx.send(Ok(data)) => if sent.is_err() { return },
        }
    }
    drop(body);
    if let Some(last) = watch.farewell.take() {
        let _ = tokio::time::timeout(FAREWELL_WAIT, tx.send(Ok(last))).await;
    }
}
