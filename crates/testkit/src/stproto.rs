//! Just enough of Streamlit's protobuf protocol for tests, hand-coded.
//!
//! The gateway under test parses Streamlit's messages itself; the tests must
//! not reuse that code, or a shared misunderstanding of the protocol would
//! pass unnoticed. So this module encodes and decodes the few fields tests
//! need directly from the wire format, with field numbers taken from
//! Streamlit's `.proto` files (`BackMsg.proto`, `ForwardMsg.proto`,
//! `ClientState.proto`, `NewSession.proto`, `SessionStatus.proto`,
//! `AuthRedirect.proto`, `Delta.proto`, `Element.proto`, `Markdown.proto`).
//! Unknown fields are skipped, as protobuf requires.

use anyhow::{bail, Context, Result};

/// Field numbers of the messages this module reads and writes.
pub mod field {
    /// `BackMsg.stop_script` (bool).
    pub const BACK_STOP_SCRIPT: u32 = 7;
    /// `BackMsg.rerun_script` (`ClientState`).
    pub const BACK_RERUN_SCRIPT: u32 = 11;
    /// `BackMsg.app_heartbeat` (bool).
    pub const BACK_APP_HEARTBEAT: u32 = 17;

    /// `ClientState.query_string`.
    pub const CLIENT_QUERY_STRING: u32 = 1;
    /// `ClientState.page_script_hash`.
    pub const CLIENT_PAGE_SCRIPT_HASH: u32 = 3;
    /// `ClientState.fragment_id`.
    pub const CLIENT_FRAGMENT_ID: u32 = 5;
    /// `ClientState.is_auto_rerun`.
    pub const CLIENT_IS_AUTO_RERUN: u32 = 6;

    /// `ForwardMsg.hash` (not a message type).
    pub const FWD_HASH: u32 = 1;
    /// `ForwardMsg.metadata` (not a message type).
    pub const FWD_METADATA: u32 = 2;
    /// `ForwardMsg.new_session`.
    pub const FWD_NEW_SESSION: u32 = 4;
    /// `ForwardMsg.delta`.
    pub const FWD_DELTA: u32 = 5;
    /// `ForwardMsg.script_finished` (enum).
    pub const FWD_SCRIPT_FINISHED: u32 = 6;
    /// `ForwardMsg.session_status_changed`.
    pub const FWD_SESSION_STATUS_CHANGED: u32 = 9;
    /// `ForwardMsg.auto_rerun`.
    pub const FWD_AUTO_RERUN: u32 = 21;
    /// `ForwardMsg.auth_redirect`.
    pub const FWD_AUTH_REDIRECT: u32 = 24;

    /// `NewSession.initialize`.
    pub const NEW_SESSION_INITIALIZE: u32 = 1;
    /// `Initialize.session_id`.
    pub const INITIALIZE_SESSION_ID: u32 = 6;
    /// `SessionStatus.script_is_running`.
    pub const STATUS_SCRIPT_IS_RUNNING: u32 = 2;
    /// `AutoRerun.interval` (float, seconds).
    pub const AUTO_RERUN_INTERVAL: u32 = 1;
    /// `AutoRerun.fragment_id`.
    pub const AUTO_RERUN_FRAGMENT_ID: u32 = 2;
    /// `AuthRedirect.url`.
    pub const AUTH_REDIRECT_URL: u32 = 1;
    /// `Delta.new_element`.
    pub const DELTA_NEW_ELEMENT: u32 = 3;
    /// `Element.markdown`.
    pub const ELEMENT_MARKDOWN: u32 = 29;
    /// `Markdown.body`.
    pub const MARKDOWN_BODY: u32 = 1;
}

/// `ForwardMsg.ScriptFinishedStatus` values.
pub mod script_finished {
    /// The script ran to the end.
    pub const FINISHED_SUCCESSFULLY: u64 = 0;
    /// The script could not be compiled.
    pub const FINISHED_WITH_COMPILE_ERROR: u64 = 1;
    /// The run was interrupted because a new run was requested.
    pub const FINISHED_EARLY_FOR_RERUN: u64 = 2;
    /// A fragment (not the whole script) ran to the end.
    pub const FINISHED_FRAGMENT_RUN_SUCCESSFULLY: u64 = 3;
}

/// One thing a Streamlit client observes on its WebSocket.
#[derive(Debug, Clone, PartialEq)]
pub enum StEvent {
    /// `ForwardMsg.new_session`: a script run started; carries the session id.
    NewSession {
        /// `Initialize.session_id`, empty if absent.
        session_id: String,
    },
    /// `ForwardMsg.session_status_changed`.
    Status {
        /// `SessionStatus.script_is_running`.
        running: bool,
    },
    /// `ForwardMsg.script_finished`, with a [`script_finished`] value.
    ScriptFinished(u64),
    /// `ForwardMsg.auto_rerun`: the frontend should rerun a fragment on a
    /// timer (`st.fragment(run_every=...)`), with `is_auto_rerun` set.
    AutoRerun {
        /// Seconds between reruns.
        interval_secs: f32,
        /// The fragment to rerun.
        fragment_id: String,
    },
    /// `ForwardMsg.auth_redirect`: the browser is told to navigate away.
    AuthRedirect {
        /// Where the browser should go.
        url: String,
    },
    /// `ForwardMsg.delta`: a change to the page.
    Delta {
        /// The body of a new markdown element (what `st.write("text")` and
        /// `st.markdown` produce), if that is what this delta adds.
        markdown: Option<String>,
        /// Media URLs the delta names (`/media/…`: images, audio, downloads).
        media: Vec<String>,
    },
    /// Any other `ForwardMsg`, identified by the field number of its type.
    Other(u32),
    /// The WebSocket closed (or the connection dropped without a close
    /// frame, in which case `code` is `None` and `reason` describes it).
    Closed {
        /// Close code from the server's close frame.
        code: Option<u16>,
        /// Close reason, or a description of how the connection ended.
        reason: String,
    },
}

/// The parts of a `ClientState` a test can set in a rerun request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RerunRequest {
    /// URL query string without the leading `?`.
    pub query_string: String,
    /// Which page to run (multipage apps); empty means the main page.
    pub page_script_hash: String,
    /// Run only this fragment.
    pub fragment_id: String,
    /// Marks the rerun as timer-driven (`st.fragment(run_every=...)`) rather
    /// than caused by the user.
    pub is_auto_rerun: bool,
}

/// Encodes `BackMsg { rerun_script: ClientState { ... } }`.
pub fn encode_rerun(req: &RerunRequest) -> Vec<u8> {
    let mut state = Vec::new();
    put_string(&mut state, field::CLIENT_QUERY_STRING, &req.query_string);
    put_string(
        &mut state,
        field::CLIENT_PAGE_SCRIPT_HASH,
        &req.page_script_hash,
    );
    put_string(&mut state, field::CLIENT_FRAGMENT_ID, &req.fragment_id);
    if req.is_auto_rerun {
        put_varint_field(&mut state, field::CLIENT_IS_AUTO_RERUN, 1);
    }
    let mut msg = Vec::new();
    put_bytes(&mut msg, field::BACK_RERUN_SCRIPT, &state);
    msg
}

/// Encodes `BackMsg { stop_script: true }`.
pub fn encode_stop_script() -> Vec<u8> {
    let mut msg = Vec::new();
    put_varint_field(&mut msg, field::BACK_STOP_SCRIPT, 1);
    msg
}

/// Encodes `BackMsg { app_heartbeat: true }`.
pub fn encode_app_heartbeat() -> Vec<u8> {
    let mut msg = Vec::new();
    put_varint_field(&mut msg, field::BACK_APP_HEARTBEAT, 1);
    msg
}

/// Decodes a `ForwardMsg` into the event a test cares about.
pub fn decode_forward_msg(buf: &[u8]) -> Result<StEvent> {
    for item in fields(buf) {
        let (number, value) = item?;
        // hash and metadata accompany every message; the remaining field is
        // the member of the `type` oneof that says what the message is.
        if number == field::FWD_HASH || number == field::FWD_METADATA {
            continue;
        }
        return Ok(match (number, value) {
            (field::FWD_NEW_SESSION, Value::Bytes(b)) => {
                let init = find_bytes(b, field::NEW_SESSION_INITIALIZE)?.unwrap_or_default();
                let session_id =
                    find_bytes(init, field::INITIALIZE_SESSION_ID)?.unwrap_or_default();
                StEvent::NewSession {
                    session_id: utf8(session_id)?,
                }
            }
            (field::FWD_SESSION_STATUS_CHANGED, Value::Bytes(b)) => StEvent::Status {
                running: find_varint(b, field::STATUS_SCRIPT_IS_RUNNING)?.unwrap_or(0) != 0,
            },
            (field::FWD_SCRIPT_FINISHED, Value::Varint(status)) => StEvent::ScriptFinished(status),
            (field::FWD_AUTO_RERUN, Value::Bytes(b)) => StEvent::AutoRerun {
                interval_secs: find_fixed32(b, field::AUTO_RERUN_INTERVAL)?
                    .map_or(0.0, f32::from_bits),
                fragment_id: utf8(
                    find_bytes(b, field::AUTO_RERUN_FRAGMENT_ID)?.unwrap_or_default(),
                )?,
            },
            (field::FWD_AUTH_REDIRECT, Value::Bytes(b)) => StEvent::AuthRedirect {
                url: utf8(find_bytes(b, field::AUTH_REDIRECT_URL)?.unwrap_or_default())?,
            },
            (field::FWD_DELTA, Value::Bytes(b)) => {
                let element = find_bytes(b, field::DELTA_NEW_ELEMENT)?;
                let markdown = match element {
                    Some(element) => find_bytes(element, field::ELEMENT_MARKDOWN)?,
                    None => None,
                };
                let body = match markdown {
                    Some(markdown) => Some(utf8(
                        find_bytes(markdown, field::MARKDOWN_BODY)?.unwrap_or_default(),
                    )?),
                    None => None,
                };
                StEvent::Delta {
                    markdown: body,
                    media: media_urls(b),
                }
            }
            (other, _) => StEvent::Other(other),
        });
    }
    bail!("ForwardMsg without a message type ({} bytes)", buf.len())
}

/// The `/media/<file>` URLs anywhere in an encoded message: Streamlit names media by URL
/// in the elements that show or offer them.
fn media_urls(bytes: &[u8]) -> Vec<String> {
    let needle = b"/media/";
    let mut urls = Vec::new();
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(needle.len()).position(|w| w == needle) {
        let start = at + found;
        let end = bytes[start..]
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || b"/._-".contains(b)))
            .map_or(bytes.len(), |n| start + n);
        urls.push(String::from_utf8_lossy(&bytes[start..end]).into_owned());
        at = end;
    }
    urls
}

/// A decoded protobuf field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: strings, bytes, embedded messages, packed repeats.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

/// Iterates over the top-level fields of an encoded protobuf message.
pub fn fields(mut buf: &[u8]) -> impl Iterator<Item = Result<(u32, Value<'_>)>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        let item = next_field(&mut buf);
        if item.is_err() {
            // Stop after the first error; the rest of the buffer is garbage.
            buf = &[];
        }
        Some(item)
    })
}

fn next_field<'a>(buf: &mut &'a [u8]) -> Result<(u32, Value<'a>)> {
    let key = get_varint(buf)?;
    let number = u32::try_from(key >> 3).context("field number out of range")?;
    let value = match key & 7 {
        0 => Value::Varint(get_varint(buf)?),
        1 => Value::Fixed64(u64::from_le_bytes(take(buf, 8)?.try_into()?)),
        2 => {
            let len = usize::try_from(get_varint(buf)?)?;
            Value::Bytes(take(buf, len)?)
        }
        5 => Value::Fixed32(u32::from_le_bytes(take(buf, 4)?.try_into()?)),
        wire => bail!("unsupported protobuf wire type {wire} for field {number}"),
    };
    Ok((number, value))
}

/// The last occurrence of length-delimited field `number` (protobuf's
/// last-one-wins rule for singular fields).
fn find_bytes(buf: &[u8], number: u32) -> Result<Option<&[u8]>> {
    let mut found = None;
    for item in fields(buf) {
        if let (n, Value::Bytes(b)) = item? {
            if n == number {
                found = Some(b);
            }
        }
    }
    Ok(found)
}

/// The last occurrence of varint field `number`.
fn find_varint(buf: &[u8], number: u32) -> Result<Option<u64>> {
    let mut found = None;
    for item in fields(buf) {
        if let (n, Value::Varint(v)) = item? {
            if n == number {
                found = Some(v);
            }
        }
    }
    Ok(found)
}

/// The last occurrence of 32-bit field `number` (floats, fixed32).
fn find_fixed32(buf: &[u8], number: u32) -> Result<Option<u32>> {
    let mut found = None;
    for item in fields(buf) {
        if let (n, Value::Fixed32(v)) = item? {
            if n == number {
                found = Some(v);
            }
        }
    }
    Ok(found)
}

fn utf8(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).context("protobuf string is not UTF-8")
}

fn take<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8]> {
    if buf.len() < len {
        bail!("truncated protobuf: need {len} bytes, have {}", buf.len());
    }
    let (head, tail) = buf.split_at(len);
    *buf = tail;
    Ok(head)
}

fn get_varint(buf: &mut &[u8]) -> Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let [byte, rest @ ..] = *buf else {
            bail!("truncated protobuf varint");
        };
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    bail!("protobuf varint longer than 10 bytes")
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_varint_field(out: &mut Vec<u8>, number: u32, value: u64) {
    put_varint(out, u64::from(number) << 3);
    put_varint(out, value);
}

fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_varint(out, (u64::from(number) << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// proto3 omits empty strings, so this writes nothing for `""`.
fn put_string(out: &mut Vec<u8>, number: u32, s: &str) {
    if !s.is_empty() {
        put_bytes(out, number, s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rerun_encoding_matches_protobuf() {
        // BackMsg{rerun_script: ClientState{query_string: "a=1", is_auto_rerun: true}}
        // as serialized by Python's protobuf.
        let req = RerunRequest {
            query_string: "a=1".into(),
            is_auto_rerun: true,
            ..Default::default()
        };
        assert_eq!(
            encode_rerun(&req),
            [0x5a, 0x07, 0x0a, 0x03, b'a', b'=', b'1', 0x30, 0x01]
        );
        // An empty ClientState is still a present rerun_script field.
        assert_eq!(encode_rerun(&RerunRequest::default()), [0x5a, 0x00]);
        assert_eq!(encode_stop_script(), [0x38, 0x01]);
        assert_eq!(encode_app_heartbeat(), [0x88, 0x01, 0x01]);
    }

    #[test]
    fn decodes_forward_messages() {
        // ForwardMsg{hash: "h", new_session: {initialize: {session_id: "abc"}}}
        let mut init = Vec::new();
        put_string(&mut init, field::INITIALIZE_SESSION_ID, "abc");
        let mut new_session = Vec::new();
        put_bytes(&mut new_session, field::NEW_SESSION_INITIALIZE, &init);
        let mut msg = Vec::new();
        put_string(&mut msg, field::FWD_HASH, "h");
        put_bytes(&mut msg, field::FWD_NEW_SESSION, &new_session);
        assert_eq!(
            decode_forward_msg(&msg).unwrap(),
            StEvent::NewSession {
                session_id: "abc".into()
            }
        );

        // script_finished = 0 is still encoded because it is a oneof member.
        let mut msg = Vec::new();
        put_varint_field(&mut msg, field::FWD_SCRIPT_FINISHED, 0);
        assert_eq!(
            decode_forward_msg(&msg).unwrap(),
            StEvent::ScriptFinished(0)
        );

        let mut redirect = Vec::new();
        put_string(&mut redirect, field::AUTH_REDIRECT_URL, "/x");
        let mut msg = Vec::new();
        put_bytes(&mut msg, field::FWD_AUTH_REDIRECT, &redirect);
        assert_eq!(
            decode_forward_msg(&msg).unwrap(),
            StEvent::AuthRedirect { url: "/x".into() }
        );

        let mut msg = Vec::new();
        put_bytes(&mut msg, 26, &[]);
        assert_eq!(decode_forward_msg(&msg).unwrap(), StEvent::Other(26));
        assert!(decode_forward_msg(&[0x22, 0x05, 0x01]).is_err());
    }

    #[test]
    fn varint_round_trip() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            let mut slice = buf.as_slice();
            assert_eq!(get_varint(&mut slice).unwrap(), v);
            assert!(slice.is_empty());
        }
    }
}
