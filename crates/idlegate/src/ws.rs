//! WebSocket framing (RFC 6455 §5.2) and idlegate's entry in the subprotocol list
//! ([`subprotocol`]): what the relay, the app kinds and idlegate's own connections to the
//! app share. Incremental frame reader and encoder.
//!
//! The proxy relays WebSocket bytes unchanged; this module only *observes*
//! them. [`FrameReader`] is fed every byte that passes in one direction, in
//! chunks of any size, and reports frame headers, unmasked payload pieces and
//! frame ends so that higher layers can classify messages without buffering
//! whole frames.
//!
//! Responsibilities:
//! - validate the framing rules that make a byte stream unambiguous (opcode,
//!   control-frame limits, masking per direction, fragmentation order,
//!   length encoding, a configured per-frame payload limit);
//! - unmask client payloads, tracking the mask offset across chunk
//!   boundaries, using a bounded reusable scratch buffer;
//! - encode frames and close payloads for the few frames the proxy writes
//!   itself.
//!
//! It must not: allocate per call in the steady state, buffer payloads, look
//! inside payloads (UTF-8 validity of text frames, close codes, extensions),
//! or perform I/O. The RSV bits are reported but not rejected, because a
//! negotiated extension may legitimately set them; non-minimal length
//! encodings are accepted because the bytes are relayed unchanged and the
//! endpoints decide.

use std::fmt;

pub mod subprotocol;
pub mod traffic;

#[cfg(test)]
mod tests;

/// Largest piece of masked payload unmasked at once. Bounds the scratch
/// buffer so a multi-megabyte frame never causes a large allocation.
const SCRATCH_LEN: usize = 4096;

/// Longest possible header: 2 fixed bytes, 8 length bytes, 4 mask bytes.
const MAX_HEADER_LEN: usize = 14;

/// Largest payload a control frame may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: u64 = 125;

/// Frame opcode (RFC 6455 §5.2); reserved values are rejected while reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    /// Control frames (close, ping, pong) may appear between the fragments
    /// of a data message and must be short and unfragmented.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }

    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Decodes a 4-bit wire value; `None` for reserved opcodes.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            0x0 => Some(Opcode::Continuation),
            0x1 => Some(Opcode::Text),
            0x2 => Some(Opcode::Binary),
            0x8 => Some(Opcode::Close),
            0x9 => Some(Opcode::Ping),
            0xA => Some(Opcode::Pong),
            _ => None,
        }
    }
}

/// Which endpoint produced the bytes being read. Client frames must be
/// masked and server frames must not be (RFC 6455 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    FromClient,
    FromServer,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::FromClient => "client",
            Role::FromServer => "server",
        })
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// The three RSV bits, right-aligned (RSV1 = 0b100).
    pub rsv: u8,
    pub opcode: Opcode,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

/// What [`FrameReader::feed`] observed, in stream order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameEvent<'a> {
    /// A complete header was read.
    Header(FrameHeader),
    /// The next piece of the current frame's payload, already unmasked.
    /// Never empty.
    Payload(&'a [u8]),
    /// The current frame is complete. Emitted right after `Header` for
    /// frames with an empty payload.
    End(FrameHeader),
}

/// A framing violation. The stream cannot be resynchronised after one, so
/// the reader keeps returning the same error until it is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    #[error("{opcode:?} control frame payload of {len} bytes exceeds 125")]
    ControlFrameTooLong { opcode: Opcode, len: u64 },
    #[error("{0:?} control frame is fragmented (FIN=0)")]
    FragmentedControlFrame(Opcode),
    #[error("64-bit payload length has its most significant bit set")]
    LengthTopBitSet,
    #[error("payload of {len} bytes exceeds the limit of {max} bytes")]
    PayloadTooLarge { len: u64, max: u64 },
    #[error("{role} frame has wrong masking (masked: {masked})")]
    WrongMasking { role: Role, masked: bool },
    #[error("continuation frame without a fragmented message in progress")]
    UnexpectedContinuation,
    #[error("new {0:?} data frame while a fragmented message is in progress")]
    ExpectedContinuation(Opcode),
}

/// Incremental, zero-copy-where-possible reader for one direction of a
/// WebSocket connection.
#[derive(Debug)]
pub struct FrameReader {
    role: Role,
    max_payload: u64,
    /// Header bytes collected so far when a header straddles chunks.
    header_buf: [u8; MAX_HEADER_LEN],
    header_len: usize,
    /// The frame whose payload is being read; `None` while reading a header.
    current: Option<FrameHeader>,
    remaining: u64,
    /// Position in the 4-byte mask of the next payload byte.
    mask_offset: usize,
    fragmented: bool,
    failed: Option<FrameError>,
    scratch: Vec<u8>,
}

impl FrameReader {
    /// `max_payload` limits each frame's payload (not the whole message).
    pub fn new(role: Role, max_payload: u64) -> Self {
        // Only client frames are masked; server payloads are passed through
        // as sub-slices of the input and never need the scratch buffer.
        let scratch = match role {
            Role::FromClient => Vec::with_capacity(SCRATCH_LEN),
            Role::FromServer => Vec::new(),
        };
        Self {
            role,
            max_payload,
            header_buf: [0; MAX_HEADER_LEN],
            header_len: 0,
            current: None,
            remaining: 0,
            mask_offset: 0,
            fragmented: false,
            failed: None,
            scratch,
        }
    }

    /// Feeds the next bytes of the stream, in order, in chunks of any size,
    /// calling `on_event` for everything they complete. After an error the
    /// reader is poisoned: every later call returns the same error.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        on_event: &mut impl FnMut(FrameEvent<'_>),
    ) -> Result<(), FrameError> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        let result = self.feed_inner(bytes, on_event);
        if let Err(err) = result {
            self.failed = Some(err);
        }
        result
    }

    /// True when the bytes fed so far end exactly at a frame boundary.
    pub fn at_boundary(&self) -> bool {
        self.current.is_none() && self.header_len == 0
    }

    /// Bytes still needed to complete the current frame once its header has
    /// been read; `None` while inside a header or at a boundary.
    pub fn remaining_payload(&self) -> Option<u64> {
        self.current.map(|_| self.remaining)
    }

    /// True while a fragmented data message (FIN=0, then continuations) is
    /// in progress, up to the end of its final continuation frame.
    pub fn in_fragmented_message(&self) -> bool {
        self.fragmented
    }

    fn feed_inner(
        &mut self,
        mut bytes: &[u8],
        on_event: &mut impl FnMut(FrameEvent<'_>),
    ) -> Result<(), FrameError> {
        while !bytes.is_empty() {
            match self.current {
                None => bytes = self.read_header(bytes, on_event)?,
                Some(header) => bytes = self.read_payload(header, bytes, on_event),
            }
        }
        Ok(())
    }

    /// Consumes header bytes, returning the rest of the input.
    fn read_header<'b>(
        &mut self,
        bytes: &'b [u8],
        on_event: &mut impl FnMut(FrameEvent<'_>),
    ) -> Result<&'b [u8], FrameError> {
        // Fast path: the whole header is in this chunk, parse it in place.
        if self.header_len == 0 {
            if let [b0, b1, ..] = *bytes {
                let need = header_len(b1);
                if let Some((header_bytes, rest)) = bytes.split_at_checked(need) {
                    let header = self.decode_header(b0, b1, header_bytes)?;
                    self.start_frame(header, on_event);
                    return Ok(rest);
                }
            }
        }
        // Slow path: collect the header across chunks. The first two bytes
        // determine the full header length.
        let have = self.header_len;
        let need = match self.header_buf {
            [_, b1, ..] if have >= 2 => header_len(b1),
            _ => 2,
        };
        let take = need.saturating_sub(have).min(bytes.len());
        let (head, rest) = bytes.split_at(take);
        if let Some(dst) = self.header_buf.get_mut(have..have + take) {
            dst.copy_from_slice(head);
        }
        self.header_len = have + take;
        if self.header_len >= 2 {
            let [b0, b1, ..] = self.header_buf;
            let full = header_len(b1);
            if self.header_len == full {
                let buf = self.header_buf;
                let header = self.decode_header(b0, b1, &buf[..full])?;
                self.header_len = 0;
                self.start_frame(header, on_event);
            }
        }
        Ok(rest)
    }

    /// Decodes and validates a complete header (`raw` holds all of it).
    fn decode_header(&self, b0: u8, b1: u8, raw: &[u8]) -> Result<FrameHeader, FrameError> {
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0x7;
        let opcode = Opcode::from_u8(b0 & 0x0F).ok_or(FrameError::ReservedOpcode(b0 & 0x0F))?;
        let masked = b1 & 0x80 != 0;
        if masked != (self.role == Role::FromClient) {
            return Err(FrameError::WrongMasking {
                role: self.role,
                masked,
            });
        }
        let (payload_len, mask_at) = match (b1 & 0x7F, raw) {
            (126, [_, _, a, b, ..]) => (u64::from(u16::from_be_bytes([*a, *b])), 4),
            (127, [_, _, a, b, c, d, e, f, g, h, ..]) => {
                (u64::from_be_bytes([*a, *b, *c, *d, *e, *f, *g, *h]), 10)
            }
            (len, _) => (u64::from(len), 2),
        };
        if payload_len >> 63 != 0 {
            return Err(FrameError::LengthTopBitSet);
        }
        let mask = match raw.get(mask_at..mask_at + 4) {
            Some(&[k0, k1, k2, k3]) if masked => Some([k0, k1, k2, k3]),
            _ => None,
        };
        if opcode.is_control() {
            if !fin {
                return Err(FrameError::FragmentedControlFrame(opcode));
            }
            if payload_len > MAX_CONTROL_PAYLOAD {
                return Err(FrameError::ControlFrameTooLong {
                    opcode,
                    len: payload_len,
                });
            }
        } else if opcode == Opcode::Continuation {
            if !self.fragmented {
                return Err(FrameError::UnexpectedContinuation);
            }
        } else if self.fragmented {
            return Err(FrameError::ExpectedContinuation(opcode));
        }
        if payload_len > self.max_payload {
            return Err(FrameError::PayloadTooLarge {
                len: payload_len,
                max: self.max_payload,
            });
        }
        Ok(FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len,
        })
    }

    fn start_frame(&mut self, header: FrameHeader, on_event: &mut impl FnMut(FrameEvent<'_>)) {
        if !header.opcode.is_control() && !header.fin {
            self.fragmented = true;
        }
        on_event(FrameEvent::Header(header));
        if header.payload_len == 0 {
            self.end_frame(header, on_event);
        } else {
            self.current = Some(header);
            self.remaining = header.payload_len;
            self.mask_offset = 0;
        }
    }

    fn end_frame(&mut self, header: FrameHeader, on_event: &mut impl FnMut(FrameEvent<'_>)) {
        self.current = None;
        if header.opcode == Opcode::Continuation && header.fin {
            self.fragmented = false;
        }
        on_event(FrameEvent::End(header));
    }

    /// Consumes payload bytes of `header`'s frame, returning the rest.
    fn read_payload<'b>(
        &mut self,
        header: FrameHeader,
        bytes: &'b [u8],
        on_event: &mut impl FnMut(FrameEvent<'_>),
    ) -> &'b [u8] {
        let n = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let (payload, rest) = bytes.split_at(n);
        match header.mask {
            None => on_event(FrameEvent::Payload(payload)),
            Some(key) => {
                for piece in payload.chunks(SCRATCH_LEN) {
                    self.scratch.clear();
                    self.scratch.extend_from_slice(piece);
                    self.mask_offset = apply_mask(&mut self.scratch, key, self.mask_offset);
                    on_event(FrameEvent::Payload(&self.scratch));
                }
            }
        }
        // `n` fits in u64 because it is at most `self.remaining`.
        self.remaining -= n as u64;
        if self.remaining == 0 {
            self.end_frame(header, on_event);
        }
        rest
    }
}

/// Total header length implied by the second header byte.
fn header_len(b1: u8) -> usize {
    let ext = match b1 & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
    2 + ext + mask
}

/// XORs `buf` with `key`, starting at position `offset` within the key, and
/// returns the key position for the byte after `buf`. Works eight bytes at a
/// time because this runs on every client byte.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) -> usize {
    let k = [
        key[offset & 3],
        key[(offset + 1) & 3],
        key[(offset + 2) & 3],
        key[(offset + 3) & 3],
    ];
    let wide = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut words = buf.chunks_exact_mut(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    // Whole words leave the key position unchanged, so the tail starts at k[0].
    for (byte, m) in words.into_remainder().iter_mut().zip(k.iter().cycle()) {
        *byte ^= m;
    }
    (offset + buf.len()) & 3
}

/// Appends one frame to `out`. `mask: Some(k)` masks the payload (client to
/// server); `None` leaves it clear (server to client). The caller keeps
/// control frames within 125 bytes and unfragmented.
pub fn encode_frame(
    out: &mut Vec<u8>,
    opcode: Opcode,
    fin: bool,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let fin_bit = if fin { 0x80 } else { 0 };
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    out.push(fin_bit | opcode.as_u8());
    let len = payload.len();
    if let Ok(short @ 0..=125) = u8::try_from(len) {
        out.push(mask_bit | short);
    } else if let Ok(medium) = u16::try_from(len) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&medium.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        None => out.extend_from_slice(payload),
        Some(key) => {
            out.extend_from_slice(&key);
            let start = out.len();
            out.extend_from_slice(payload);
            if let Some(body) = out.get_mut(start..) {
                apply_mask(body, key, 0);
            }
        }
    }
}

/// Close-frame payload: 2-byte big-endian status code followed by the UTF-8
/// reason, cut on a character boundary so the payload fits a control frame.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    const MAX_REASON: usize = MAX_CONTROL_PAYLOAD as usize - 2;
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = reason.get(..end).unwrap_or_default();
    let mut out = Vec::with_capacity(2 + reason.len());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
    out
}
