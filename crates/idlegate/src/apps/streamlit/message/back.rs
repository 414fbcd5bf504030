//! The browser's `BackMsg`: what a message asks the server to do.

use super::super::protowire::{LenAction, Visitor, Walker, WireType};
use super::ProtoError;

/// What a browser's `BackMsg` asks the server to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackMsgKind {
    /// `rerun_script`; `is_auto_rerun` is set for timer-driven fragment
    /// reruns, which are not human activity; `fragment` when it names a
    /// fragment (`ClientState.fragment_id` not empty) rather than the page.
    RerunScript {
        is_auto_rerun: bool,
        fragment: bool,
    },
    StopScript,
    ClearCache,
    SetRunOnSave,
    LoadGitInfo,
    FileUrlsRequest,
    AppHeartbeat,
    BackendOperationRequest,
    DebugDisconnectWebsocket,
    DebugShutdownRuntime,
    /// A top-level field number this version does not know, reported only
    /// when no known `type` member is present (an unknown field may be a
    /// newer non-oneof field, which must not hide a known member).
    Unknown(u32),
    /// No `type` member present.
    Empty,
}

/// `BackMsg` field numbers (streamlit 1.67 `BackMsg.proto`).
pub(super) mod fields {
    pub const CLEAR_CACHE: u32 = 5;
    pub const SET_RUN_ON_SAVE: u32 = 6;
    pub const STOP_SCRIPT: u32 = 7;
    pub const RERUN_SCRIPT: u32 = 11;
    pub const LOAD_GIT_INFO: u32 = 12;
    pub const DEBUG_DISCONNECT_WEBSOCKET: u32 = 14;
    pub const DEBUG_SHUTDOWN_RUNTIME: u32 = 15;
    pub const FILE_URLS_REQUEST: u32 = 16;
    pub const APP_HEARTBEAT: u32 = 17;
    pub const BACKEND_OPERATION_REQUEST: u32 = 19;
    /// `BackendOperationRequest.dataframe_chunk`, and the payloads it competes with.
    pub const BACKEND_DATAFRAME_CHUNK: u32 = 6;
    pub const BACKEND_OTHER_PAYLOADS: [u32; 3] = [3, 4, 5];
    /// `DataframeChunkRequestPayload.source_id` and `.sort`.
    pub const CHUNK_SOURCE_ID: u32 = 1;
    pub const CHUNK_SORT: u32 = 4;
    /// `ClientState.query_string`.
    pub const CLIENT_STATE_QUERY_STRING: u32 = 1;
    /// `ClientState.context_info`, and its `url` and `is_embedded`.
    pub const CLIENT_STATE_CONTEXT_INFO: u32 = 8;
    pub const CONTEXT_URL: u32 = 4;
    pub const CONTEXT_IS_EMBEDDED: u32 = 5;
    /// `ClientState.fragment_id`.
    pub const CLIENT_STATE_FRAGMENT_ID: u32 = 5;
    /// `ClientState.is_auto_rerun`.
    pub const CLIENT_STATE_IS_AUTO_RERUN: u32 = 6;
}

/// The `type` member a `BackMsg` field number denotes, with its wire type.
fn back_member(field: u32) -> Option<(BackMsgKind, WireType)> {
    use BackMsgKind as K;
    use WireType::{Len, Varint};
    Some(match field {
        fields::CLEAR_CACHE => (K::ClearCache, Varint),
        fields::SET_RUN_ON_SAVE => (K::SetRunOnSave, Varint),
        fields::STOP_SCRIPT => (K::StopScript, Varint),
        fields::RERUN_SCRIPT => (
            K::RerunScript {
                is_auto_rerun: false,
                fragment: false,
            },
            Len,
        ),
        fields::LOAD_GIT_INFO => (K::LoadGitInfo, Varint),
        fields::DEBUG_DISCONNECT_WEBSOCKET => (K::DebugDisconnectWebsocket, Varint),
        fields::DEBUG_SHUTDOWN_RUNTIME => (K::DebugShutdownRuntime, Varint),
        fields::FILE_URLS_REQUEST => (K::FileUrlsRequest, Len),
        fields::APP_HEARTBEAT => (K::AppHeartbeat, Varint),
        fields::BACKEND_OPERATION_REQUEST => (K::BackendOperationRequest, Len),
        _ => return None,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BackCtx {
    BackMsg,
    ClientState,
    ContextInfo,
    BackendOperation,
    DataframeChunk,
}

/// Longest page URL kept from a rerun's `context_info`; longer ones are not kept.
pub const MAX_PAGE_URL_LEN: usize = 2048;

/// Where the page that asked for a run is: its URL (as the browser shows it, without its
/// query), its query string, and whether it is embedded in another page (an iframe).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageContext {
    pub url: String,
    pub query: String,
    pub embedded: bool,
}

/// A lazily loaded table's request for rows (`backend_operation_request.dataframe_chunk`):
/// which table source, and which sort order, as hashes of their bytes (`sort` is 0 when
/// the rows are unsorted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkRequest {
    pub source: u64,
    pub sort: u64,
}

/// 64-bit FNV-1a, fed in pieces.
#[derive(Clone, Copy, Debug)]
struct Fnv(u64);

impl Fnv {
    const START: Fnv = Fnv(0xcbf2_9ce4_8422_2325);

    fn feed(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[derive(Clone, Debug, Default)]
struct BackState {
    /// The last known `type` member seen, with `is_auto_rerun` and `fragment`
    /// merged across repeated `rerun_script` occurrences.
    kind: Option<BackMsgKind>,
    unknown: Option<u32>,
    /// The dataframe chunk request of a `backend_operation_request`: its
    /// source id and sort hashed so far.
    chunk: Option<(Fnv, Option<Fnv>)>,
    /// `rerun_script.context_info`: whether present, the URL bytes (cleared,
    /// not freed, between messages), whether the URL was too long, embedding.
    context: bool,
    url: Vec<u8>,
    url_too_long: bool,
    embedded: bool,
    /// `rerun_script.query_string`, like the URL.
    query: Vec<u8>,
}

impl BackState {
    /// Forgets the message, keeping the URL buffer's allocation.
    fn clear(&mut self) {
        let mut url = std::mem::take(&mut self.url);
        url.clear();
        let mut query = std::mem::take(&mut self.query);
        query.clear();
        *self = Self {
            url,
            query,
            ..Self::default()
        };
    }
}

impl Default for Fnv {
    fn default() -> Self {
        Self::START
    }
}

impl BackState {
    fn set_member(&mut self, kind: BackMsgKind) {
        // A repeated rerun_script merges into the previous ClientState, so
        // earlier fields survive unless this occurrence sets them.
        let merged = matches!(
            (self.kind, kind),
            (
                Some(BackMsgKind::RerunScript { .. }),
                BackMsgKind::RerunScript { .. }
            )
        );
        if !merged {
            self.kind = Some(kind);
            self.chunk = None;
            self.context = false;
            self.url.clear();
            self.url_too_long = false;
            self.embedded = false;
            self.query.clear();
        }
    }
}

impl Visitor for BackState {
    type Ctx = BackCtx;

    fn tag(&mut self, ctx: BackCtx, field: u32, _wire_type: WireType) {
        if ctx == BackCtx::BackMsg && back_member(field).is_none() {
            self.unknown = Some(field);
        }
    }

    fn varint(&mut self, ctx: BackCtx, field: u32, value: u64) {
        match ctx {
            BackCtx::BackMsg => {
                if let Some((kind, WireType::Varint)) = back_member(field) {
                    self.set_member(kind);
                }
            }
            BackCtx::ClientState => {
                if field == fields::CLIENT_STATE_IS_AUTO_RERUN {
                    if let Some(BackMsgKind::RerunScript { is_auto_rerun, .. }) = &mut self.kind {
                        *is_auto_rerun = value != 0;
                    }
                }
            }
            BackCtx::ContextInfo => {
                if field == fields::CONTEXT_IS_EMBEDDED {
                    self.embedded = value != 0;
                }
            }
            BackCtx::BackendOperation | BackCtx::DataframeChunk => {}
        }
    }

    fn bytes(&mut self, ctx: BackCtx, field: u32, piece: &[u8]) {
        if ctx == BackCtx::ClientState && field == fields::CLIENT_STATE_QUERY_STRING {
            if self.query.len() + piece.len() > MAX_PAGE_URL_LEN {
                self.url_too_long = true;
            } else {
                self.query.extend_from_slice(piece);
            }
            return;
        }
        if ctx == BackCtx::ContextInfo && field == fields::CONTEXT_URL {
            if self.url.len() + piece.len() > MAX_PAGE_URL_LEN {
                self.url_too_long = true;
            } else {
                self.url.extend_from_slice(piece);
            }
            return;
        }
        if let (BackCtx::DataframeChunk, Some((source, sort))) = (ctx, &mut self.chunk) {
            match field {
                fields::CHUNK_SOURCE_ID => source.feed(piece),
                fields::CHUNK_SORT => sort.get_or_insert(Fnv::START).feed(piece),
                _ => {}
            }
        }
    }

    fn len_field(&mut self, ctx: BackCtx, field: u32, len: u64) -> LenAction<BackCtx> {
        match (ctx, field) {
            (BackCtx::BackendOperation, fields::BACKEND_DATAFRAME_CHUNK) => {
                // The payload oneof: this member replaces any other.
                if self.chunk.is_none() {
                    self.chunk = Some((Fnv::START, None));
                }
                return LenAction::Descend(BackCtx::DataframeChunk);
            }
            (BackCtx::BackendOperation, other) => {
                if fields::BACKEND_OTHER_PAYLOADS.contains(&other) {
                    self.chunk = None;
                }
                return LenAction::Skip;
            }
            (BackCtx::DataframeChunk, fields::CHUNK_SOURCE_ID) => {
                // A string: the last occurrence wins.
                if let Some((source, _)) = &mut self.chunk {
                    *source = Fnv::START;
                }
                return LenAction::Capture;
            }
            // A message: repeated occurrences merge, so their bytes all count.
            (BackCtx::DataframeChunk, fields::CHUNK_SORT) => return LenAction::Capture,
            (BackCtx::DataframeChunk, _) => return LenAction::Skip,
            (BackCtx::ClientState, fields::CLIENT_STATE_CONTEXT_INFO) => {
                self.context = true;
                return LenAction::Descend(BackCtx::ContextInfo);
            }
            (BackCtx::ClientState, fields::CLIENT_STATE_QUERY_STRING) => {
                // A string: the last occurrence wins.
                self.query.clear();
                return LenAction::Capture;
            }
            (BackCtx::ContextInfo, fields::CONTEXT_URL) => {
                // A string: the last occurrence wins.
                self.url.clear();
                self.url_too_long = false;
                return LenAction::Capture;
            }
            (BackCtx::ContextInfo, _) => return LenAction::Skip,
            _ => {}
        }
        if ctx == BackCtx::ClientState {
            // A string: the last occurrence wins, and an empty one clears it.
            if field == fields::CLIENT_STATE_FRAGMENT_ID {
                if let Some(BackMsgKind::RerunScript { fragment, .. }) = &mut self.kind {
                    *fragment = len > 0;
                }
            }
            return LenAction::Skip;
        }
        match back_member(field) {
            Some((kind, WireType::Len)) => {
                self.set_member(kind);
                match field {
                    fields::RERUN_SCRIPT => LenAction::Descend(BackCtx::ClientState),
                    fields::BACKEND_OPERATION_REQUEST => {
                        LenAction::Descend(BackCtx::BackendOperation)
                    }
                    _ => LenAction::Skip,
                }
            }
            _ => LenAction::Skip,
        }
    }
}

/// Classifies one `BackMsg` at a time from its bytes, fed in any chunking.
#[derive(Clone, Debug)]
pub struct BackMsgScanner {
    walker: Walker<BackCtx, 2>,
    state: BackState,
    failed: Option<ProtoError>,
    /// The chunk request of the message `finish` last returned, if it was one.
    chunk: Option<ChunkRequest>,
    /// The page context of the message `finish` last returned, if it was a rerun that
    /// carried one (a URL too long or not UTF-8 is left out).
    page: Option<PageContext>,
}

impl Default for BackMsgScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl BackMsgScanner {
    pub fn new() -> Self {
        Self {
            walker: Walker::new(BackCtx::BackMsg),
            state: BackState::default(),
            failed: None,
            chunk: None,
            page: None,
        }
    }

    /// Walks the next bytes of the current message. After an error, every
    /// call returns it again until `finish` or `reset`.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), ProtoError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.walker.feed(bytes, &mut self.state);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    /// Ends the current message, returning its kind, and resets for the
    /// next one.
    pub fn finish(&mut self) -> Result<BackMsgKind, ProtoError> {
        let failed = self.failed.take();
        let walked = self.walker.finish();
        self.chunk = None;
        if let Some(err) = failed {
            self.state.clear();
            return Err(err);
        }
        if let Err(err) = walked {
            self.state.clear();
            return Err(err);
        }
        let state = &self.state;
        if state.kind == Some(BackMsgKind::BackendOperationRequest) {
            self.chunk = state.chunk.map(|(source, sort)| ChunkRequest {
                source: source.0,
                sort: sort.map_or(0, |sort| sort.0),
            });
        }
        let rerun = matches!(state.kind, Some(BackMsgKind::RerunScript { .. }));
        if rerun && state.context && !state.url_too_long {
            // Allocates only when the page changed.
            let same = self.page.as_ref().is_some_and(|page| {
                page.url.as_bytes() == state.url.as_slice()
                    && page.query.as_bytes() == state.query.as_slice()
                    && page.embedded == state.embedded
            });
            if !same {
                self.page = match (
                    std::str::from_utf8(&state.url),
                    std::str::from_utf8(&state.query),
                ) {
                    (Ok(url), Ok(query)) => Some(PageContext {
                        url: url.to_owned(),
                        query: query.to_owned(),
                        embedded: state.embedded,
                    }),
                    _ => None,
                };
            }
        }
        let kind = match (state.kind, state.unknown) {
            (Some(kind), _) => kind,
            (None, Some(field)) => BackMsgKind::Unknown(field),
            (None, None) => BackMsgKind::Empty,
        };
        self.state.clear();
        Ok(kind)
    }

    /// The table-rows request the message `finish` last returned carried, if it was a
    /// `backend_operation_request` for a `dataframe_chunk`.
    pub fn chunk(&self) -> Option<ChunkRequest> {
        self.chunk
    }

    /// The page the latest rerun that named one came from (`rerun_script.context_info`).
    pub fn page(&self) -> Option<&PageContext> {
        self.page.as_ref()
    }

    /// Discards the message in progress.
    pub fn reset(&mut self) {
        self.walker.reset();
        self.state.clear();
        self.failed = None;
    }
}
