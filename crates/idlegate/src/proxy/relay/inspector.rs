//! One direction's view of a relayed session socket: frames read, messages decoded into the
//! tab's signals, traffic counted.

use crate::apps::{DecodeError, MessageDecoder, MessageKind};
use crate::error::chain;
use crate::tracker::TabConnection;
use crate::ws::traffic::{Direction, Traffic};
use crate::ws::{FrameError, FrameEvent, FrameReader, Opcode, Role};

#[derive(Debug, thiserror::Error)]
pub(super) enum InspectError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// One direction's view of the stream.
pub(super) struct Inspector<'a> {
    pub(super) reader: FrameReader,
    traffic: &'a Traffic,
    direction: Direction,
    decoder: Box<dyn MessageDecoder>,
    /// Decode errors close the connection (browser side) or skip the message (app side).
    strict: bool,
    /// Whether the message in progress is one the decoder reads.
    reading: bool,
    data_frame: bool,
    poisoned: bool,
}

impl<'a> Inspector<'a> {
    pub(super) fn new(
        role: Role,
        max: u64,
        decoder: Box<dyn MessageDecoder>,
        traffic: &'a Traffic,
    ) -> Self {
        Self {
            reader: FrameReader::new(role, max),
            traffic,
            direction: match role {
                Role::FromClient => Direction::ToApp,
                Role::FromServer => Direction::ToBrowser,
            },
            decoder,
            strict: role == Role::FromClient,
            reading: false,
            data_frame: false,
            poisoned: false,
        }
    }

    pub(super) fn inspect(
        &mut self,
        bytes: &[u8],
        conn: &TabConnection,
    ) -> Result<(), InspectError> {
        let Self {
            reader,
            traffic,
            direction,
            decoder,
            strict,
            reading,
            data_frame,
            poisoned,
        } = self;
        let mut error: Option<DecodeError> = None;
        let mut frames = 0;
        let fed = reader.feed(bytes, &mut |event| match event {
            FrameEvent::Header(header) => {
                let kind = match header.opcode {
                    Opcode::Binary => Some(MessageKind::Binary),
                    Opcode::Text => Some(MessageKind::Text),
                    Opcode::Continuation | Opcode::Close | Opcode::Ping | Opcode::Pong => None,
                };
                *data_frame = match (kind, header.opcode) {
                    (Some(kind), _) => {
                        *reading = decoder.reads(kind);
                        if *reading {
                            *poisoned = false;
                            decoder.begin(kind);
                        }
                        *reading
                    }
                    (None, Opcode::Continuation) => *reading,
                    (None, _) => false,
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
                frames += 1;
                if *data_frame && header.fin && !*poisoned {
                    if let Err(e) = decoder.finish(&mut |signal| conn.signal(signal)) {
                        *poisoned = true;
                        error.get_or_insert(e);
                    }
                }
            }
        });
        traffic.add(*direction, frames, bytes.len() as u64);
        fed?;
        match error {
            Some(e) if *strict => Err(e.into()),
            Some(e) => {
                tracing::debug!(tab = conn.tab_id(), error = %chain(&e), "skipped an app message idlegate could not read");
                Ok(())
            }
            None => Ok(()),
        }
    }
}
