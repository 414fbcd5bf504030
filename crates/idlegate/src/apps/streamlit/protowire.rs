//! Streaming walker over the protobuf wire format.
//!
//! [`Walker`] is fed a serialized protobuf message in chunks of any size and
//! reports tags, varint values and length-delimited fields to a [`Visitor`],
//! which decides per length-delimited field whether to skip it, descend into
//! it as a nested message, or receive its bytes. Skipped fields are passed
//! over by counting, so a multi-megabyte field costs nothing per byte.
//!
//! Responsibilities: enforce the structural rules needed to walk untrusted
//! input safely (varints at most 10 bytes, no groups or invalid wire types,
//! nested lengths within their parent, a fixed maximum nesting depth, no
//! message ending mid-field) with O(1) memory.
//!
//! It must not: allocate, buffer field contents, or know any message schema;
//! meaning is the visitor's job.

#[cfg(test)]
mod tests;

/// Longest valid varint encoding of a 64-bit value.
pub const MAX_VARINT_LEN: u8 = 10;

/// The wire types a walker accepts (groups are rejected).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireType {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

/// A structural error in the protobuf input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("varint longer than 10 bytes (field {field:?})")]
    VarintTooLong { field: Option<u32> },
    #[error("invalid tag {0:#x} (field number 0 or above 2^29-1)")]
    InvalidTag(u64),
    #[error("field {field} uses group wire type {wire_type}, which is not supported")]
    Group { field: u32, wire_type: u8 },
    #[error("field {field} uses invalid wire type {wire_type}")]
    InvalidWireType { field: u32, wire_type: u8 },
    #[error(
        "field {field} of {len} bytes overruns its enclosing message ({available} bytes left)"
    )]
    NestedOverrun {
        field: u32,
        len: u64,
        available: u64,
    },
    #[error("field {field:?} runs past the end of its enclosing message")]
    FieldOverrun { field: Option<u32> },
    #[error("message nested deeper than {0} levels")]
    TooDeep(usize),
    #[error("message truncated inside field {field:?}")]
    Truncated { field: Option<u32> },
}

/// What to do with a length-delimited field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LenAction<C> {
    /// Pass over its bytes without looking at them.
    Skip,
    /// Walk it as a nested message, reported under context `C`.
    Descend(C),
    /// Hand its bytes to [`Visitor::bytes`], possibly in several pieces.
    Capture,
}

/// Receives what a [`Walker`] finds. `ctx` identifies the message type the
/// field belongs to (the root context or one returned via
/// [`LenAction::Descend`]).
pub trait Visitor {
    type Ctx: Copy;

    /// Every tag, before its value. Lets a visitor notice unknown fields of
    /// any wire type.
    fn tag(&mut self, _ctx: Self::Ctx, _field: u32, _wire_type: WireType) {}

    /// A complete varint value.
    fn varint(&mut self, ctx: Self::Ctx, field: u32, value: u64);

    /// A length-delimited field of `len` bytes is about to start; `len` is
    /// already known to fit in the enclosing message.
    fn len_field(&mut self, ctx: Self::Ctx, field: u32, len: u64) -> LenAction<Self::Ctx>;

    /// The next piece of a field the visitor asked to [`LenAction::Capture`].
    fn bytes(&mut self, _ctx: Self::Ctx, _field: u32, _piece: &[u8]) {}
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading a tag; `len` bytes of it seen so far.
    Tag {
        acc: u64,
        len: u8,
    },
    Varint {
        field: u32,
        acc: u64,
        len: u8,
    },
    /// Reading the length prefix of a length-delimited field.
    Len {
        field: u32,
        acc: u64,
        len: u8,
    },
    Skip {
        field: u32,
        left: u64,
    },
    Capture {
        field: u32,
        left: u64,
    },
}

const TAG_START: State = State::Tag { acc: 0, len: 0 };

#[derive(Clone, Copy, Debug)]
struct Level<C> {
    ctx: C,
    field: u32,
    /// Absolute stream offset at which this nested message ends.
    end: u64,
}

/// Streaming protobuf walker with at most `DEPTH` nested messages open below
/// the root.
#[derive(Clone, Debug)]
pub struct Walker<C: Copy, const DEPTH: usize> {
    root: C,
    stack: [Level<C>; DEPTH],
    depth: usize,
    /// Bytes consumed since the start of the message.
    pos: u64,
    state: State,
}

impl<C: Copy, const DEPTH: usize> Walker<C, DEPTH> {
    pub fn new(root: C) -> Self {
        Self {
            root,
            stack: [Level {
                ctx: root,
                field: 0,
                end: 0,
            }; DEPTH],
            depth: 0,
            pos: 0,
            state: TAG_START,
        }
    }

    /// Forgets the message in progress.
    pub fn reset(&mut self) {
        self.depth = 0;
        self.pos = 0;
        self.state = TAG_START;
    }

    /// Checks that the message ended on a field boundary with no nested
    /// message open, then resets for the next message.
    pub fn finish(&mut self) -> Result<(), ProtoError> {
        let result = match self.state {
            State::Tag { len: 0, .. } => match self.top() {
                None => Ok(()),
                Some(level) => Err(ProtoError::Truncated {
                    field: Some(level.field),
                }),
            },
            State::Tag { .. } => Err(ProtoError::Truncated { field: None }),
            State::Varint { field, .. }
            | State::Len { field, .. }
            | State::Skip { field, .. }
            | State::Capture { field, .. } => Err(ProtoError::Truncated { field: Some(field) }),
        };
        self.reset();
        result
    }

    /// Walks the next bytes of the message.
    pub fn feed<V: Visitor<Ctx = C>>(
        &mut self,
        mut bytes: &[u8],
        visitor: &mut V,
    ) -> Result<(), ProtoError> {
        while let Some((&byte, rest)) = bytes.split_first() {
            match self.state {
                State::Skip { field, left } => {
                    let n = take_len(left, bytes.len());
                    self.pos += n as u64;
                    bytes = bytes.get(n..).unwrap_or_default();
                    self.advance_counted(field, left - n as u64);
                }
                State::Capture { field, left } => {
                    let n = take_len(left, bytes.len());
                    let (piece, rest) = bytes.split_at(n);
                    visitor.bytes(self.ctx(), field, piece);
                    self.pos += n as u64;
                    bytes = rest;
                    if left == n as u64 {
                        self.field_done();
                    } else {
                        self.state = State::Capture {
                            field,
                            left: left - n as u64,
                        };
                    }
                }
                State::Tag { acc, len } => {
                    self.consume_varint_byte(None)?;
                    bytes = rest;
                    match push_varint(acc, len, byte, None)? {
                        Varint::More { acc, len } => self.state = State::Tag { acc, len },
                        Varint::Done(tag) => self.start_field(tag, visitor)?,
                    }
                }
                State::Varint { field, acc, len } => {
                    self.consume_varint_byte(Some(field))?;
                    bytes = rest;
                    match push_varint(acc, len, byte, Some(field))? {
                        Varint::More { acc, len } => self.state = State::Varint { field, acc, len },
                        Varint::Done(value) => {
                            visitor.varint(self.ctx(), field, value);
                            self.field_done();
                        }
                    }
                }
                State::Len { field, acc, len } => {
                    self.consume_varint_byte(Some(field))?;
                    bytes = rest;
                    match push_varint(acc, len, byte, Some(field))? {
                        Varint::More { acc, len } => self.state = State::Len { field, acc, len },
                        Varint::Done(value) => self.start_len_field(field, value, visitor)?,
                    }
                }
            }
        }
        Ok(())
    }

    fn top(&self) -> Option<&Level<C>> {
        self.depth.checked_sub(1).and_then(|i| self.stack.get(i))
    }

    fn ctx(&self) -> C {
        self.top().map_or(self.root, |level| level.ctx)
    }

    /// Bytes left in the innermost open nested message; `None` at the root,
    /// whose end is only known at `finish`.
    fn available(&self) -> Option<u64> {
        self.top().map(|level| level.end.saturating_sub(self.pos))
    }

    /// Accounts for one byte of a tag, varint or length prefix, rejecting it
    /// if it lies beyond the enclosing message.
    fn consume_varint_byte(&mut self, field: Option<u32>) -> Result<(), ProtoError> {
        if self.available() == Some(0) {
            return Err(ProtoError::FieldOverrun { field });
        }
        self.pos += 1;
        Ok(())
    }

    fn start_field<V: Visitor<Ctx = C>>(
        &mut self,
        tag: u64,
        visitor: &mut V,
    ) -> Result<(), ProtoError> {
        let field = u32::try_from(tag >> 3)
            .ok()
            .filter(|&f| f != 0)
            .ok_or(ProtoError::InvalidTag(tag))?;
        // The low three bits always fit in a u8.
        let wire_type = (tag & 7) as u8;
        let wire = match wire_type {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            5 => WireType::Fixed32,
            3 | 4 => return Err(ProtoError::Group { field, wire_type }),
            _ => return Err(ProtoError::InvalidWireType { field, wire_type }),
        };
        visitor.tag(self.ctx(), field, wire);
        match wire {
            WireType::Varint => {
                self.state = State::Varint {
                    field,
                    acc: 0,
                    len: 0,
                }
            }
            WireType::Len => {
                self.state = State::Len {
                    field,
                    acc: 0,
                    len: 0,
                }
            }
            WireType::Fixed64 => self.start_counted(field, 8)?,
            WireType::Fixed32 => self.start_counted(field, 4)?,
        }
        Ok(())
    }

    fn check_fits(&self, field: u32, len: u64) -> Result<(), ProtoError> {
        match self.available() {
            Some(available) if len > available => Err(ProtoError::NestedOverrun {
                field,
                len,
                available,
            }),
            _ => Ok(()),
        }
    }

    fn start_counted(&mut self, field: u32, len: u64) -> Result<(), ProtoError> {
        self.check_fits(field, len)?;
        self.advance_counted(field, len);
        Ok(())
    }

    fn advance_counted(&mut self, field: u32, left: u64) {
        if left == 0 {
            self.field_done();
        } else {
            self.state = State::Skip { field, left };
        }
    }

    fn start_len_field<V: Visitor<Ctx = C>>(
        &mut self,
        field: u32,
        len: u64,
        visitor: &mut V,
    ) -> Result<(), ProtoError> {
        self.check_fits(field, len)?;
        match visitor.len_field(self.ctx(), field, len) {
            LenAction::Skip => self.advance_counted(field, len),
            LenAction::Capture if len == 0 => self.field_done(),
            LenAction::Capture => self.state = State::Capture { field, left: len },
            LenAction::Descend(ctx) => {
                let end = self
                    .pos
                    .checked_add(len)
                    .ok_or(ProtoError::FieldOverrun { field: Some(field) })?;
                let slot = self
                    .stack
                    .get_mut(self.depth)
                    .ok_or(ProtoError::TooDeep(DEPTH))?;
                *slot = Level { ctx, field, end };
                self.depth += 1;
                self.field_done();
            }
        }
        Ok(())
    }

    /// Returns to reading tags and closes every nested message that ends
    /// exactly here.
    fn field_done(&mut self) {
        self.state = TAG_START;
        while let Some(level) = self.top() {
            if level.end != self.pos {
                break;
            }
            self.depth -= 1;
        }
    }
}

enum Varint {
    More { acc: u64, len: u8 },
    Done(u64),
}

/// Adds one byte to a little-endian base-128 varint.
fn push_varint(acc: u64, len: u8, byte: u8, field: Option<u32>) -> Result<Varint, ProtoError> {
    // Bits beyond 64 in the tenth byte are dropped, as protobuf parsers do.
    let acc = acc | (u64::from(byte & 0x7F) << (7 * u32::from(len)));
    let len = len + 1;
    if byte & 0x80 == 0 {
        Ok(Varint::Done(acc))
    } else if len >= MAX_VARINT_LEN {
        Err(ProtoError::VarintTooLong { field })
    } else {
        Ok(Varint::More { acc, len })
    }
}

/// How many of `available` input bytes to take when `left` are wanted.
fn take_len(left: u64, available: usize) -> usize {
    usize::try_from(left).map_or(available, |left| left.min(available))
}
