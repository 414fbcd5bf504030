//! Streaming classifiers for Streamlit 1.67 WebSocket messages.
//!
//! Streamlit exchanges one protobuf message per binary WebSocket message:
//! `BackMsg` from browser to server and `ForwardMsg` from server to browser.
//! The proxy needs only a few facts from them (is a rerun automatic, which
//! session was created, is a script running), so [`BackMsgScanner`] and
//! [`ForwardMsgScanner`] walk the wire format as bytes arrive and descend
//! only into the handful of nested messages that carry those facts;
//! everything else, including multi-megabyte deltas, is skipped by length.
//!
//! Decoding follows protobuf semantics so that the classification matches
//! what the Streamlit server itself will decode: for scalars the last
//! occurrence wins, repeated occurrences of a message field are merged, the
//! last member of a oneof wins and switching the oneof member discards what
//! the previous member carried. A known field with an unexpected wire type is
//! treated as an unknown field, as protobuf parsers do.
//!
//! This module must not allocate per byte or per message (apart from the
//! returned session id), keep more than a fixed small amount of state, or
//! depend on any generated protobuf code.

use super::protowire::{LenAction, Visitor, Walker, WireType};

pub use super::protowire::ProtoError;

#[cfg(test)]
mod tests;

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
mod back {
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
        back::CLEAR_CACHE => (K::ClearCache, Varint),
        back::SET_RUN_ON_SAVE => (K::SetRunOnSave, Varint),
        back::STOP_SCRIPT => (K::StopScript, Varint),
        back::RERUN_SCRIPT => (
            K::RerunScript {
                is_auto_rerun: false,
                fragment: false,
            },
            Len,
        ),
        back::LOAD_GIT_INFO => (K::LoadGitInfo, Varint),
        back::DEBUG_DISCONNECT_WEBSOCKET => (K::DebugDisconnectWebsocket, Varint),
        back::DEBUG_SHUTDOWN_RUNTIME => (K::DebugShutdownRuntime, Varint),
        back::FILE_URLS_REQUEST => (K::FileUrlsRequest, Len),
        back::APP_HEARTBEAT => (K::AppHeartbeat, Varint),
        back::BACKEND_OPERATION_REQUEST => (K::BackendOperationRequest, Len),
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
                if field == back::CLIENT_STATE_IS_AUTO_RERUN {
                    if let Some(BackMsgKind::RerunScript { is_auto_rerun, .. }) = &mut self.kind {
                        *is_auto_rerun = value != 0;
                    }
                }
            }
            BackCtx::ContextInfo => {
                if field == back::CONTEXT_IS_EMBEDDED {
                    self.embedded = value != 0;
                }
            }
            BackCtx::BackendOperation | BackCtx::DataframeChunk => {}
        }
    }

    fn bytes(&mut self, ctx: BackCtx, field: u32, piece: &[u8]) {
        if ctx == BackCtx::ClientState && field == back::CLIENT_STATE_QUERY_STRING {
            if self.query.len() + piece.len() > MAX_PAGE_URL_LEN {
                self.url_too_long = true;
            } else {
                self.query.extend_from_slice(piece);
            }
            return;
        }
        if ctx == BackCtx::ContextInfo && field == back::CONTEXT_URL {
            if self.url.len() + piece.len() > MAX_PAGE_URL_LEN {
                self.url_too_long = true;
            } else {
                self.url.extend_from_slice(piece);
            }
            return;
        }
        if let (BackCtx::DataframeChunk, Some((source, sort))) = (ctx, &mut self.chunk) {
            match field {
                back::CHUNK_SOURCE_ID => source.feed(piece),
                back::CHUNK_SORT => sort.get_or_insert(Fnv::START).feed(piece),
                _ => {}
            }
        }
    }

    fn len_field(&mut self, ctx: BackCtx, field: u32, len: u64) -> LenAction<BackCtx> {
        match (ctx, field) {
            (BackCtx::BackendOperation, back::BACKEND_DATAFRAME_CHUNK) => {
                // The payload oneof: this member replaces any other.
                if self.chunk.is_none() {
                    self.chunk = Some((Fnv::START, None));
                }
                return LenAction::Descend(BackCtx::DataframeChunk);
            }
            (BackCtx::BackendOperation, other) => {
                if back::BACKEND_OTHER_PAYLOADS.contains(&other) {
                    self.chunk = None;
                }
                return LenAction::Skip;
            }
            (BackCtx::DataframeChunk, back::CHUNK_SOURCE_ID) => {
                // A string: the last occurrence wins.
                if let Some((source, _)) = &mut self.chunk {
                    *source = Fnv::START;
                }
                return LenAction::Capture;
            }
            // A message: repeated occurrences merge, so their bytes all count.
            (BackCtx::DataframeChunk, back::CHUNK_SORT) => return LenAction::Capture,
            (BackCtx::DataframeChunk, _) => return LenAction::Skip,
            (BackCtx::ClientState, back::CLIENT_STATE_CONTEXT_INFO) => {
                self.context = true;
                return LenAction::Descend(BackCtx::ContextInfo);
            }
            (BackCtx::ClientState, back::CLIENT_STATE_QUERY_STRING) => {
                // A string: the last occurrence wins.
                self.query.clear();
                return LenAction::Capture;
            }
            (BackCtx::ContextInfo, back::CONTEXT_URL) => {
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
            if field == back::CLIENT_STATE_FRAGMENT_ID {
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
                    back::RERUN_SCRIPT => LenAction::Descend(BackCtx::ClientState),
                    back::BACKEND_OPERATION_REQUEST => {
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

/// What the proxy needs to know about one `ForwardMsg`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForwardSummary {
    /// Field number of the `type` oneof member, e.g. `Some(4)` for
    /// `new_session`, `Some(9)` for `session_status_changed`. An unknown
    /// field number is reported only when no known member is present.
    pub kind: Option<u32>,
    /// `new_session.initialize.session_id`, if valid UTF-8 of at most
    /// [`MAX_SESSION_ID_LEN`] bytes.
    pub session_id: Option<String>,
    /// `session_status_changed.script_is_running` (absent means `false`), or
    /// `new_session.initialize.session_status.script_is_running` when that
    /// status is present.
    pub script_is_running: Option<bool>,
    /// The `script_finished` status value.
    pub script_finished: Option<u64>,
}

/// Longest session id captured; Streamlit's are 36-character UUIDs.
pub const MAX_SESSION_ID_LEN: usize = 64;

/// `ForwardMsg` and nested field numbers (streamlit 1.67 protos).
mod fwd {
    pub const HASH: u32 = 1;
    pub const METADATA: u32 = 2;
    pub const NEW_SESSION: u32 = 4;
    pub const SCRIPT_FINISHED: u32 = 6;
    pub const SESSION_STATUS_CHANGED: u32 = 9;
    pub const AUTH_REDIRECT: u32 = 24;
    pub const HEARTBEAT_ACK: u32 = 26;
    /// `NewSession.initialize`.
    pub const NEW_SESSION_INITIALIZE: u32 = 1;
    /// `Initialize.session_status`.
    pub const INITIALIZE_SESSION_STATUS: u32 = 4;
    /// `Initialize.session_id`.
    pub const INITIALIZE_SESSION_ID: u32 = 6;
    /// `SessionStatus.script_is_running`.
    pub const STATUS_SCRIPT_IS_RUNNING: u32 = 2;
    /// `AuthRedirect.url`.
    pub const AUTH_REDIRECT_URL: u32 = 1;
}

/// Wire type of a `ForwardMsg.type` member; `None` for other numbers.
fn forward_member(field: u32) -> Option<WireType> {
    match field {
        fwd::SCRIPT_FINISHED | fwd::HEARTBEAT_ACK => Some(WireType::Varint),
        4 | 5 | 9..=15 | 18..=24 | 27 | 28 => Some(WireType::Len),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FwdCtx {
    ForwardMsg,
    NewSession,
    Initialize,
    InitializeStatus,
    ChangedStatus,
}

/// A session id captured into a fixed buffer.
#[derive(Clone, Copy, Debug)]
enum SessionId {
    Absent,
    /// Present but longer than [`MAX_SESSION_ID_LEN`].
    TooLong,
    Captured {
        buf: [u8; MAX_SESSION_ID_LEN],
        len: usize,
    },
}

#[derive(Clone, Copy, Debug)]
struct FwdState {
    kind: Option<u32>,
    unknown: Option<u32>,
    /// Data of the current member; cleared when the member changes.
    session_id: SessionId,
    init_running: Option<bool>,
    changed_running: bool,
    script_finished: u64,
}

impl Default for FwdState {
    fn default() -> Self {
        Self {
            kind: None,
            unknown: None,
            session_id: SessionId::Absent,
            init_running: None,
            changed_running: false,
            script_finished: 0,
        }
    }
}

impl FwdState {
    fn set_member(&mut self, field: u32) {
        if self.kind != Some(field) {
            *self = Self {
                kind: Some(field),
                unknown: self.unknown,
                ..Self::default()
            };
        }
    }

    fn summary(&self) -> ForwardSummary {
        let Some(kind) = self.kind else {
            return ForwardSummary {
                kind: self.unknown,
                ..ForwardSummary::default()
            };
        };
        let session_id = match self.session_id {
            SessionId::Captured { buf, len } if kind == fwd::NEW_SESSION => buf
                .get(..len)
                .and_then(|id| std::str::from_utf8(id).ok())
                .map(str::to_owned),
            _ => None,
        };
        let script_is_running = match kind {
            fwd::SESSION_STATUS_CHANGED => Some(self.changed_running),
            fwd::NEW_SESSION => self.init_running,
            _ => None,
        };
        ForwardSummary {
            kind: Some(kind),
            session_id,
            script_is_running,
            script_finished: (kind == fwd::SCRIPT_FINISHED).then_some(self.script_finished),
        }
    }
}

impl Visitor for FwdState {
    type Ctx = FwdCtx;

    fn tag(&mut self, ctx: FwdCtx, field: u32, _wire_type: WireType) {
        if ctx == FwdCtx::ForwardMsg
            && field != fwd::HASH
            && field != fwd::METADATA
            && forward_member(field).is_none()
        {
            self.unknown = Some(field);
        }
    }

    fn varint(&mut self, ctx: FwdCtx, field: u32, value: u64) {
        match ctx {
            FwdCtx::ForwardMsg if forward_member(field) == Some(WireType::Varint) => {
                self.set_member(field);
                if field == fwd::SCRIPT_FINISHED {
                    self.script_finished = value;
                }
            }
            FwdCtx::InitializeStatus if field == fwd::STATUS_SCRIPT_IS_RUNNING => {
                self.init_running = Some(value != 0);
            }
            FwdCtx::ChangedStatus if field == fwd::STATUS_SCRIPT_IS_RUNNING => {
                self.changed_running = value != 0;
            }
            _ => {}
        }
    }

    fn len_field(&mut self, ctx: FwdCtx, field: u32, len: u64) -> LenAction<FwdCtx> {
        match (ctx, field) {
            (FwdCtx::ForwardMsg, _) if forward_member(field) == Some(WireType::Len) => {
                self.set_member(field);
                match field {
                    fwd::NEW_SESSION => LenAction::Descend(FwdCtx::NewSession),
                    fwd::SESSION_STATUS_CHANGED => LenAction::Descend(FwdCtx::ChangedStatus),
                    _ => LenAction::Skip,
                }
            }
            (FwdCtx::NewSession, fwd::NEW_SESSION_INITIALIZE) => {
                LenAction::Descend(FwdCtx::Initialize)
            }
            (FwdCtx::Initialize, fwd::INITIALIZE_SESSION_STATUS) => {
                // Presence alone means "not running" until field 2 says so;
                // a repeated occurrence merges into the previous one.
                self.init_running = Some(self.init_running.unwrap_or(false));
                LenAction::Descend(FwdCtx::InitializeStatus)
            }
            (FwdCtx::Initialize, fwd::INITIALIZE_SESSION_ID) => {
                match usize::try_from(len) {
                    Ok(len) if len <= MAX_SESSION_ID_LEN => {
                        self.session_id = SessionId::Captured {
                            buf: [0; MAX_SESSION_ID_LEN],
                            len: 0,
                        };
                        return LenAction::Capture;
                    }
                    _ => self.session_id = SessionId::TooLong,
                }
                LenAction::Skip
            }
            _ => LenAction::Skip,
        }
    }

    fn bytes(&mut self, ctx: FwdCtx, field: u32, piece: &[u8]) {
        if ctx != FwdCtx::Initialize || field != fwd::INITIALIZE_SESSION_ID {
            return;
        }
        if let SessionId::Captured { buf, len } = &mut self.session_id {
            // The walker never hands over more than the announced length,
            // which was checked against the buffer; stay defensive anyway.
            let end = len.saturating_add(piece.len());
            match buf.get_mut(*len..end) {
                Some(dst) => {
                    dst.copy_from_slice(piece);
                    *len = end;
                }
                None => self.session_id = SessionId::TooLong,
            }
        }
    }
}

/// Summarizes one `ForwardMsg` at a time from its bytes, fed in any
/// chunking.
#[derive(Clone, Debug)]
pub struct ForwardMsgScanner {
    walker: Walker<FwdCtx, 3>,
    state: FwdState,
    failed: Option<ProtoError>,
}

impl Default for ForwardMsgScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ForwardMsgScanner {
    pub fn new() -> Self {
        Self {
            walker: Walker::new(FwdCtx::ForwardMsg),
            state: FwdState::default(),
            failed: None,
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

    /// Ends the current message, returning its summary, and resets for the
    /// next one.
    pub fn finish(&mut self) -> Result<ForwardSummary, ProtoError> {
        let failed = self.failed.take();
        let walked = self.walker.finish();
        let state = std::mem::take(&mut self.state);
        if let Some(err) = failed {
            return Err(err);
        }
        walked?;
        Ok(state.summary())
    }

    /// Discards the message in progress.
    pub fn reset(&mut self) {
        self.walker.reset();
        self.state = FwdState::default();
        self.failed = None;
    }
}

/// Appends `value` as a protobuf varint.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        // Truncation keeps the low seven bits, which is the point.
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a length-delimited field.
fn put_len_field(out: &mut Vec<u8>, field: u32, body: &[u8]) {
    put_varint(out, (u64::from(field) << 3) | 2);
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// Serialized `ForwardMsg{auth_redirect{url}}`, which makes the browser
/// navigate to `url`.
pub fn encode_auth_redirect(url: &str) -> Vec<u8> {
    let mut inner = Vec::with_capacity(url.len() + 6);
    put_len_field(&mut inner, fwd::AUTH_REDIRECT_URL, url.as_bytes());
    let mut out = Vec::with_capacity(inner.len() + 8);
    put_len_field(&mut out, fwd::AUTH_REDIRECT, &inner);
    out
}

/// Serialized `BackMsg{set_run_on_save: enabled}`. The app answers it with a status
/// message and changes nothing else for a session that never ran its script.
pub fn encode_set_run_on_save(enabled: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(2);
    put_varint(&mut out, u64::from(back::SET_RUN_ON_SAVE) << 3);
    put_varint(&mut out, u64::from(enabled));
    out
}

/// Field numbers of the messages that draw a page of idlegate's own in place of the app's
/// (streamlit 1.67 `ForwardMsg.proto`, `NewSession.proto`, `Delta.proto`, `Element.proto`,
/// `Markdown.proto`, `AppPage.proto`).
mod page {
    pub const FORWARD_METADATA: u32 = 2;
    pub const FORWARD_NEW_SESSION: u32 = 4;
    pub const FORWARD_DELTA: u32 = 5;
    pub const FORWARD_SCRIPT_FINISHED: u32 = 6;
    pub const FORWARD_SESSION_STATUS_CHANGED: u32 = 9;
    pub const FORWARD_NAVIGATION: u32 = 23;
    pub const METADATA_DELTA_PATH: u32 = 2;
    pub const METADATA_RUN: u32 = 6;
    pub const RUN_SCRIPT_RUN_ID: u32 = 1;
    pub const NEW_SESSION_INITIALIZE: u32 = 1;
    pub const NEW_SESSION_CONFIG: u32 = 6;
    pub const DELTA_NEW_ELEMENT: u32 = 3;
    pub const ELEMENT_MARKDOWN: u32 = 29;
    pub const MARKDOWN_BODY: u32 = 1;
    pub const NAVIGATION_APP_PAGES: u32 = 2;
    pub const NAVIGATION_PAGE_SCRIPT_HASH: u32 = 4;
    pub const APP_PAGE_SCRIPT_HASH: u32 = 1;
    pub const APP_PAGE_NAME: u32 = 2;
    pub const APP_PAGE_IS_DEFAULT: u32 = 4;
}

/// `ForwardMsg.metadata{run{script_run_id}}`.
fn run_metadata(run_id: &str) -> Vec<u8> {
    let mut run = Vec::new();
    put_len_field(&mut run, page::RUN_SCRIPT_RUN_ID, run_id.as_bytes());
    let mut metadata = Vec::new();
    put_len_field(&mut metadata, page::METADATA_RUN, &run);
    metadata
}

/// The messages that replace everything the page shows with `markdown`, in a run of the
/// page's own named `run_id`, with the browser tab titled `title`. Streamlit clears a
/// page's old elements only at the end of a run it started with `new_session`, so the
/// messages are a whole run: `new_session` (with the empty `initialize` and `config` the
/// page needs), `navigation` (one page, which also hides the app's page list), the
/// markdown at the top of the main area, `script_finished` and `session_status_changed`.
///
/// For a page that cannot be sent elsewhere: Streamlit posts `auth_redirect` to the parent
/// of a page in an iframe instead of navigating. Each message is one binary WebSocket
/// message.
pub fn encode_page_replacement(run_id: &str, title: &str, markdown: &str) -> Vec<Vec<u8>> {
    let metadata = run_metadata(run_id);
    let hash = "idlegate-ended";

    let mut new_session = Vec::new();
    put_len_field(&mut new_session, page::NEW_SESSION_INITIALIZE, &[]);
    put_len_field(&mut new_session, page::NEW_SESSION_CONFIG, &[]);
    let mut started = Vec::new();
    put_len_field(&mut started, page::FORWARD_NEW_SESSION, &new_session);
    put_len_field(&mut started, page::FORWARD_METADATA, &metadata);

    let mut app_page = Vec::new();
    put_len_field(&mut app_page, page::APP_PAGE_SCRIPT_HASH, hash.as_bytes());
    put_len_field(&mut app_page, page::APP_PAGE_NAME, title.as_bytes());
    put_varint(&mut app_page, u64::from(page::APP_PAGE_IS_DEFAULT) << 3);
    put_varint(&mut app_page, 1);
    let mut navigation = Vec::new();
    put_len_field(&mut navigation, page::NAVIGATION_APP_PAGES, &app_page);
    put_len_field(
        &mut navigation,
        page::NAVIGATION_PAGE_SCRIPT_HASH,
        hash.as_bytes(),
    );
    let mut navigated = Vec::new();
    put_len_field(&mut navigated, page::FORWARD_NAVIGATION, &navigation);
    put_len_field(&mut navigated, page::FORWARD_METADATA, &metadata);

    let mut body = Vec::new();
    put_len_field(&mut body, page::MARKDOWN_BODY, markdown.as_bytes());
    let mut element = Vec::new();
    put_len_field(&mut element, page::ELEMENT_MARKDOWN, &body);
    let mut delta = Vec::new();
    put_len_field(&mut delta, page::DELTA_NEW_ELEMENT, &element);
    // The first element of the main container: delta_path [0, 0], packed.
    let mut element_metadata = Vec::new();
    put_len_field(&mut element_metadata, page::METADATA_DELTA_PATH, &[0, 0]);
    let mut drawn = Vec::new();
    put_len_field(&mut drawn, page::FORWARD_DELTA, &delta);
    put_len_field(&mut drawn, page::FORWARD_METADATA, &element_metadata);

    let mut finished = Vec::new();
    put_varint(&mut finished, u64::from(page::FORWARD_SCRIPT_FINISHED) << 3);
    put_varint(&mut finished, 0);
    put_len_field(&mut finished, page::FORWARD_METADATA, &metadata);

    let mut idle = Vec::new();
    put_len_field(&mut idle, page::FORWARD_SESSION_STATUS_CHANGED, &[]);

    vec![started, navigated, drawn, finished, idle]
}

/// `ForwardMsg{session_status_changed{script_is_running: true}}`: the answer to a rerun the
/// page asks for on a replaced page, before drawing it again (else the page stays greyed).
pub fn encode_running() -> Vec<u8> {
    let mut status = Vec::new();
    put_varint(&mut status, 2 << 3);
    put_varint(&mut status, 1);
    let mut out = Vec::new();
    put_len_field(&mut out, page::FORWARD_SESSION_STATUS_CHANGED, &status);
    out
}
