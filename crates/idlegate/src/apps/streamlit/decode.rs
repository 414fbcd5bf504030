//! What Streamlit's session socket messages mean for idleness: the browser's `BackMsg`s
//! (reruns, automatic or a person's, and the page they name; stops; sorts of a table) and
//! the server's `ForwardMsg`s (the session id, timers, whether a script runs).

use std::collections::VecDeque;

use super::message::{self, BackMsgKind, BackMsgScanner, ForwardMsgScanner};
use crate::apps::{DecodeError, MessageDecoder, MessageKind};
use crate::lifecycle::Signal;

/// `ForwardMsg.session_status_changed`.
const FORWARD_SESSION_STATUS_CHANGED: u32 = 9;
/// `ForwardMsg.auto_rerun`: the page is to ask for a fragment run on a timer.
const FORWARD_AUTO_RERUN: u32 = 21;

fn decode_error(e: message::ProtoError) -> DecodeError {
    DecodeError::new(e)
}

/// At most this many table sources and sort orders are remembered per connection.
pub(super) const SORT_MEMORY: usize = 16;

/// Browser→app: `BackMsg`.
#[derive(Default)]
pub(super) struct BrowserDecoder {
    scanner: BackMsgScanner,
    sorts: Sorts,
    /// The page last reported to the tracker.
    page: Option<message::PageContext>,
}

/// The sort orders a page's lazily loaded tables asked for. A page asks for rows by itself
/// (after a refresh its tables get new sources and fetch again, in the same order), and when
/// a person scrolls; only a person changes how a table is sorted. So a request for rows is a
/// person's when it sorts a known source differently from before, or sorts a new source in an
/// order none of the page's recent requests used.
#[derive(Default)]
pub(super) struct Sorts {
    /// Recent sources and the sort each last asked for, oldest first.
    pub(super) by_source: VecDeque<(u64, u64)>,
    /// Recent sort orders of any source, oldest first.
    orders: VecDeque<u64>,
}

impl Sorts {
    /// Records a request; returns whether it changed a sort (a person did).
    pub(super) fn changed(&mut self, chunk: message::ChunkRequest) -> bool {
        let known = self
            .by_source
            .iter()
            .position(|(source, _)| *source == chunk.source);
        let changed = match known {
            Some(index) => self
                .by_source
                .remove(index)
                .is_some_and(|(_, sort)| sort != chunk.sort),
            // A new source: the page loading or refreshing a table, unless it asks for an
            // order the page has not used (a person sorted a table it just loaded).
            None => chunk.sort != 0 && !self.orders.contains(&chunk.sort),
        };
        remember(&mut self.by_source, (chunk.source, chunk.sort));
        if !self.orders.contains(&chunk.sort) {
            remember(&mut self.orders, chunk.sort);
        }
        changed
    }
}

fn remember<T>(queue: &mut VecDeque<T>, item: T) {
    if queue.len() == SORT_MEMORY {
        queue.pop_front();
    }
    queue.push_back(item);
}

impl MessageDecoder for BrowserDecoder {
    fn begin(&mut self, _kind: MessageKind) {
        self.scanner.reset();
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        self.scanner.feed(bytes).map_err(decode_error)
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Signal)) -> Result<(), DecodeError> {
        match self.scanner.finish().map_err(decode_error)? {
            BackMsgKind::RerunScript {
                is_auto_rerun,
                fragment,
            } => {
                // Where the page is, from the URL its rerun names (`context_info.url`).
                if self.scanner.page() != self.page.as_ref() {
                    self.page = self.scanner.page().cloned();
                    if let Some(page) = &self.page {
                        if let Some(path) = page_path(page) {
                            emit(Signal::Page {
                                path,
                                embedded: page.embedded,
                            });
                        }
                    }
                }
                emit(Signal::RunRequested {
                    automatic: is_auto_rerun,
                    fragment,
                });
            }
            // Only a person stops a run or clears the cache (the page's menu).
            BackMsgKind::StopScript | BackMsgKind::ClearCache => emit(Signal::PersonMessage),
            // Table rows: a person's only when they change a sort (see `Sorts`).
            BackMsgKind::BackendOperationRequest => {
                if let Some(chunk) = self.scanner.chunk() {
                    if self.sorts.changed(chunk) {
                        emit(Signal::PersonMessage);
                    }
                }
            }
            // The page sends these by itself too: a settings toggle the page restores, the
            // deploy button's git info, upload URLs before an upload (the upload counts),
            // heartbeats, debug messages.
            BackMsgKind::SetRunOnSave
            | BackMsgKind::LoadGitInfo
            | BackMsgKind::FileUrlsRequest
            | BackMsgKind::AppHeartbeat
            | BackMsgKind::DebugDisconnectWebsocket
            | BackMsgKind::DebugShutdownRuntime
            | BackMsgKind::Unknown(_)
            | BackMsgKind::Empty => {}
        }
        Ok(())
    }
}

/// App→browser: `ForwardMsg`.
#[derive(Default)]
pub(super) struct AppDecoder {
    scanner: ForwardMsgScanner,
    /// Where the app's Streamlit version goes once a `new_session` names it.
    version: Option<super::Version>,
}

impl AppDecoder {
    /// A decoder that tells `version` the app's Streamlit version.
    pub(super) fn learning(version: super::Version) -> Self {
        Self {
            version: Some(version),
            ..Self::default()
        }
    }
}

impl MessageDecoder for AppDecoder {
    fn begin(&mut self, _kind: MessageKind) {
        self.scanner.reset();
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        self.scanner.feed(bytes).map_err(decode_error)
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Signal)) -> Result<(), DecodeError> {
        let summary = self.scanner.finish().map_err(decode_error)?;
        if let Some(id) = summary.session_id {
            emit(Signal::SessionId(id));
        }
        if let (Some(version), Some(slot)) = (summary.streamlit_version, &self.version) {
            slot.learn(version);
        }
        if summary.kind == Some(FORWARD_AUTO_RERUN) {
            emit(Signal::TimerSet);
        }
        if summary.kind == Some(FORWARD_SESSION_STATUS_CHANGED) {
            if let Some(running) = summary.script_is_running {
                emit(Signal::Running(running));
            }
        }
        Ok(())
    }
}

/// The path and query a page is at: the path of its URL, and the query string the page
/// names apart (Streamlit keeps the query out of `context_info.url`).
pub(super) fn page_path(page: &message::PageContext) -> Option<String> {
    let path = path_and_query(&page.url)?;
    if page.query.is_empty() {
        return Some(path);
    }
    let path = path.split('?').next().unwrap_or(&path);
    Some(format!("{path}?{}", page.query))
}

/// The path and query of a page URL as the browser shows it (`http://host/p?q#f` →
/// `/p?q`); `None` for anything that is not an absolute http(s) URL.
pub(super) fn path_and_query(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let path = &rest[rest.find('/')?..];
    let path = path.split('#').next().unwrap_or(path);
    (!path.is_empty()).then(|| path.to_owned())
}
