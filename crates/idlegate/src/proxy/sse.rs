//! Reading an event stream (`text/event-stream`, WHATWG HTML §9.2.6 "Interpreting an event
//! stream") as it passes, without holding it: each event's `data` goes to a
//! [`MessageDecoder`] as one text message, in pieces, however the bytes arrive.
//!
//! Lines end with CRLF, LF or CR; an empty line ends an event; an event's `data` lines are
//! joined with LF, and one space after the colon is dropped; comments (`:` first) and the
//! other fields (`event`, `id`, `retry`) are skipped. An event without `data` is no message.

use crate::apps::{DecodeError, MessageDecoder, MessageKind};
use crate::lifecycle::Signal;

/// Longest field name read; longer ones are no field idlegate reads.
const FIELD_MAX: usize = 16;

/// Where the reader is within a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// At the start of a line.
    LineStart,
    /// In a field's name (its bytes so far in `field`).
    Field,
    /// Right after `data:`: one space there is not part of the value.
    DataStart,
    /// In a `data` value: its bytes go to the decoder.
    Data,
    /// In a line whose rest is not read (a comment, another field).
    Skip,
}

/// An event stream reader feeding one decoder.
pub struct EventStream {
    decoder: Box<dyn MessageDecoder>,
    at: At,
    field: Vec<u8>,
    /// The previous byte ended a line with CR: an LF right after it is the same line end.
    after_cr: bool,
    /// The current event has `data` (a message has begun).
    has_data: bool,
    /// The decoder refused the current event: the rest of it is not fed.
    broken: bool,
}

impl EventStream {
    /// A reader whose events' data go to `decoder` (as text messages).
    pub fn new(decoder: Box<dyn MessageDecoder>) -> Self {
        Self {
            decoder,
            at: At::LineStart,
            field: Vec::with_capacity(FIELD_MAX),
            after_cr: false,
            has_data: false,
            broken: false,
        }
    }

    /// Reads the next bytes of the stream; `emit` gets what complete events mean. A
    /// malformed event is skipped (and said once, as the error of this call); reading goes
    /// on with the next one.
    ///
    /// # Errors
    /// The decoder found an event malformed.
    pub fn feed(&mut self, bytes: &[u8], emit: &mut dyn FnMut(Signal)) -> Result<(), DecodeError> {
        let mut first_error = None;
        let mut run_start = 0;
        for (i, &byte) in bytes.iter().enumerate() {
            let eol = byte == b'\n' || byte == b'\r';
            if self.at == At::Data && !eol {
                continue;
            }
            if self.at == At::Data {
                self.data(&bytes[run_start..i]);
            }
            if let Err(e) = self.step(byte, emit) {
                first_error.get_or_insert(e);
            }
            run_start = i + 1;
        }
        if self.at == At::Data {
            self.data(&bytes[run_start.min(bytes.len())..]);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// One byte outside a data value's run.
    fn step(&mut self, byte: u8, emit: &mut dyn FnMut(Signal)) -> Result<(), DecodeError> {
        let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
        if byte == b'\n' || byte == b'\r' {
            if byte == b'\n' && after_cr {
                return Ok(());
            }
            let blank = self.at == At::LineStart;
            if self.at == At::Field && self.field == b"data" {
                // `data` without a colon: an empty value.
                self.data_line();
            }
            self.at = At::LineStart;
            self.field.clear();
            return if blank { self.dispatch(emit) } else { Ok(()) };
        }
        match self.at {
            At::LineStart | At::Field => {
                if byte == b':' {
                    self.at = if self.at == At::Field && self.field == b"data" {
                        self.data_line();
                        At::DataStart
                    } else {
                        At::Skip
                    };
                } else if self.field.len() < FIELD_MAX {
                    self.field.push(byte);
                    self.at = At::Field;
                } else {
                    self.at = At::Skip;
                }
            }
            At::DataStart => {
                self.at = At::Data;
                if byte != b' ' {
                    self.data(&[byte]);
                }
            }
            At::Data | At::Skip => {}
        }
        Ok(())
    }

    /// A `data` line starts: the event's message begins, or its value gets an LF first.
    fn data_line(&mut self) {
        if self.has_data {
            self.data(b"\n");
        } else {
            self.has_data = true;
            self.broken = false;
            self.decoder.begin(MessageKind::Text);
        }
    }

    fn data(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.broken {
            return;
        }
        if self.decoder.feed(bytes).is_err() {
            self.broken = true;
        }
    }

    /// An empty line: the event is complete.
    fn dispatch(&mut self, emit: &mut dyn FnMut(Signal)) -> Result<(), DecodeError> {
        if !std::mem::take(&mut self.has_data) {
            return Ok(());
        }
        if std::mem::take(&mut self.broken) {
            return Err(DecodeError::new("an event's data was refused"));
        }
        self.decoder.finish(emit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects each message's text; `finish` emits a signal per message.
    #[derive(Default)]
    struct Texts {
        current: Vec<u8>,
        seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl MessageDecoder for Texts {
        fn reads(&self, _kind: MessageKind) -> bool {
            true
        }
        fn begin(&mut self, _kind: MessageKind) {
            self.current.clear();
        }
        fn feed(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
            self.current.extend_from_slice(bytes);
            Ok(())
        }
        fn finish(&mut self, emit: &mut dyn FnMut(Signal)) -> Result<(), DecodeError> {
            let text = String::from_utf8_lossy(&self.current).into_owned();
            lock(&self.seen).push(text);
            emit(Signal::TimerSet);
            Ok(())
        }
    }

    fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read_in_pieces(stream: &[u8], piece: usize) -> Result<(Vec<String>, usize), DecodeError> {
        let decoder = Texts::default();
        let seen = decoder.seen.clone();
        let mut reader = EventStream::new(Box::new(decoder));
        let mut signals = 0;
        for chunk in stream.chunks(piece) {
            reader.feed(chunk, &mut |_| signals += 1)?;
        }
        let seen = lock(&seen).clone();
        Ok((seen, signals))
    }

    #[test]
    fn events_are_read_whole_however_the_bytes_arrive() -> Result<(), DecodeError> {
        let stream = b": comment\r\nevent: x\r\ndata: {\"msg\":\"a\"}\r\n\r\ndata:b1\ndata:  b2\n\nid: 7\n\ndata\rdata: c\r\r";
        for piece in [1, 2, 3, 7, stream.len()] {
            let (seen, signals) = read_in_pieces(stream, piece)?;
            assert_eq!(seen, ["{\"msg\":\"a\"}", "b1\n b2", "\nc"], "piece {piece}");
            assert_eq!(signals, 3);
        }
        Ok(())
    }

    #[test]
    fn an_unfinished_event_is_no_message_yet() -> Result<(), DecodeError> {
        let (seen, _) = read_in_pieces(b"data: ALIVE\n", 4)?;
        assert!(seen.is_empty());
        let (seen, _) = read_in_pieces(b"data: ALIVE\n\n", 4)?;
        assert_eq!(seen, ["ALIVE"]);
        Ok(())
    }

    #[test]
    fn long_field_names_are_skipped() -> Result<(), DecodeError> {
        let (seen, _) = read_in_pieces(b"datadatadatadatadata: x\n\ndata: y\n\n", 5)?;
        assert_eq!(seen, ["y"]);
        Ok(())
    }
}
