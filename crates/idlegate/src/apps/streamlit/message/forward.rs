//! The server's `ForwardMsg`: which session was created, whether a script is running.

use super::super::protowire::{LenAction, Visitor, Walker, WireType};
use super::ProtoError;

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
    /// `new_session.initialize.environment_info.streamlit_version`, the app's Streamlit
    /// version, if valid UTF-8 of at most [`MAX_SESSION_ID_LEN`] bytes.
    pub streamlit_version: Option<String>,
}

/// Longest session id captured; Streamlit's are 36-character UUIDs.
pub const MAX_SESSION_ID_LEN: usize = 64;

/// `ForwardMsg` and nested field numbers (streamlit 1.67 protos).
pub(super) mod fields {
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
    /// `Initialize.environment_info`.
    pub const INITIALIZE_ENVIRONMENT_INFO: u32 = 3;
    /// `EnvironmentInfo.streamlit_version`.
    pub const ENVIRONMENT_STREAMLIT_VERSION: u32 = 1;
    /// `SessionStatus.script_is_running`.
    pub const STATUS_SCRIPT_IS_RUNNING: u32 = 2;
    /// `AuthRedirect.url`.
    pub const AUTH_REDIRECT_URL: u32 = 1;
}

/// Wire type of a `ForwardMsg.type` member; `None` for other numbers.
fn forward_member(field: u32) -> Option<WireType> {
    match field {
        fields::SCRIPT_FINISHED | fields::HEARTBEAT_ACK => Some(WireType::Varint),
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
    Environment,
    ChangedStatus,
}

/// A short string field (a session id, a version) captured into a fixed buffer.
#[derive(Clone, Copy, Debug)]
enum Text {
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
    session_id: Text,
    version: Text,
    init_running: Option<bool>,
    changed_running: bool,
    script_finished: u64,
}

impl Default for FwdState {
    fn default() -> Self {
        Self {
            kind: None,
            unknown: None,
            session_id: Text::Absent,
            version: Text::Absent,
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
        let text = |captured: Text| match captured {
            Text::Captured { buf, len } if kind == fields::NEW_SESSION => buf
                .get(..len)
                .and_then(|id| std::str::from_utf8(id).ok())
                .map(str::to_owned),
            _ => None,
        };
        let session_id = text(self.session_id);
        let script_is_running = match kind {
            fields::SESSION_STATUS_CHANGED => Some(self.changed_running),
            fields::NEW_SESSION => self.init_running,
            _ => None,
        };
        ForwardSummary {
            kind: Some(kind),
            session_id,
            script_is_running,
            script_finished: (kind == fields::SCRIPT_FINISHED).then_some(self.script_finished),
            streamlit_version: text(self.version),
        }
    }
}

impl Visitor for FwdState {
    type Ctx = FwdCtx;

    fn tag(&mut self, ctx: FwdCtx, field: u32, _wire_type: WireType) {
        if ctx == FwdCtx::ForwardMsg
            && field != fields::HASH
            && field != fields::METADATA
            && forward_member(field).is_none()
        {
            self.unknown = Some(field);
        }
    }

    fn varint(&mut self, ctx: FwdCtx, field: u32, value: u64) {
        match ctx {
            FwdCtx::ForwardMsg if forward_member(field) == Some(WireType::Varint) => {
                self.set_member(field);
                if field == fields::SCRIPT_FINISHED {
                    self.script_finished = value;
                }
            }
            FwdCtx::InitializeStatus if field == fields::STATUS_SCRIPT_IS_RUNNING => {
                self.init_running = Some(value != 0);
            }
            FwdCtx::ChangedStatus if field == fields::STATUS_SCRIPT_IS_RUNNING => {
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
                    fields::NEW_SESSION => LenAction::Descend(FwdCtx::NewSession),
                    fields::SESSION_STATUS_CHANGED => LenAction::Descend(FwdCtx::ChangedStatus),
                    _ => LenAction::Skip,
                }
            }
            (FwdCtx::NewSession, fields::NEW_SESSION_INITIALIZE) => {
                LenAction::Descend(FwdCtx::Initialize)
            }
            (FwdCtx::Initialize, fields::INITIALIZE_SESSION_STATUS) => {
                // Presence alone means "not running" until field 2 says so;
                // a repeated occurrence merges into the previous one.
                self.init_running = Some(self.init_running.unwrap_or(false));
                LenAction::Descend(FwdCtx::InitializeStatus)
            }
            (FwdCtx::Initialize, fields::INITIALIZE_SESSION_ID) => {
                capture(&mut self.session_id, len)
            }
            (FwdCtx::Initialize, fields::INITIALIZE_ENVIRONMENT_INFO) => {
                LenAction::Descend(FwdCtx::Environment)
            }
            (FwdCtx::Environment, fields::ENVIRONMENT_STREAMLIT_VERSION) => {
                capture(&mut self.version, len)
            }
            _ => LenAction::Skip,
        }
    }

    fn bytes(&mut self, ctx: FwdCtx, field: u32, piece: &[u8]) {
        let target = match (ctx, field) {
            (FwdCtx::Initialize, fields::INITIALIZE_SESSION_ID) => &mut self.session_id,
            (FwdCtx::Environment, fields::ENVIRONMENT_STREAMLIT_VERSION) => &mut self.version,
            _ => return,
        };
        if let Text::Captured { buf, len } = target {
            // The walker never hands over more than the announced length,
            // which was checked against the buffer; stay defensive anyway.
            let end = len.saturating_add(piece.len());
            match buf.get_mut(*len..end) {
                Some(dst) => {
                    dst.copy_from_slice(piece);
                    *len = end;
                }
                None => *target = Text::TooLong,
            }
        }
    }
}

/// Starts capturing a string field of `len` bytes into `text`, if it fits.
fn capture(text: &mut Text, len: u64) -> LenAction<FwdCtx> {
    match usize::try_from(len) {
        Ok(len) if len <= MAX_SESSION_ID_LEN => {
            *text = Text::Captured {
                buf: [0; MAX_SESSION_ID_LEN],
                len: 0,
            };
            LenAction::Capture
        }
        _ => {
            *text = Text::TooLong;
            LenAction::Skip
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
