//! Reading Gradio's event messages (`gradio/server_messages.py`), the `data` of the events
//! on `/gradio_api/queue/data` (and of the heartbeat, `ALIVE`): only `msg`, which Gradio
//! writes first (`BaseMessage`), is read, from the message's first bytes, so large outputs
//! cost nothing.
//!
//! - `process_starts`: an event's function starts running (the tab is busy);
//! - `process_completed`: it finished, or failed, or was cancelled;
//! - everything else (`estimation`, `progress`, `process_generating`, `log`, `heartbeat`,
//!   `close_stream`, `unexpected_error`, …) says nothing about idleness.

use crate::apps::{DecodeError, MessageDecoder, MessageKind};
use crate::lifecycle::Signal;

/// How much of a message is kept to find its `msg`.
const HEAD: usize = 256;

/// The decoder for Gradio's event streams.
#[derive(Debug, Default)]
pub struct QueueEvents {
    head: Vec<u8>,
}

impl MessageDecoder for QueueEvents {
    fn reads(&self, kind: MessageKind) -> bool {
        kind == MessageKind::Text
    }

    fn begin(&mut self, _kind: MessageKind) {
        self.head.clear();
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let room = HEAD.saturating_sub(self.head.len());
        self.head.extend_from_slice(&bytes[..room.min(bytes.len())]);
        Ok(())
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Signal)) -> Result<(), DecodeError> {
        match message_kind(&self.head) {
            Some("process_starts") => emit(Signal::Running(true)),
            Some("process_completed") => emit(Signal::Running(false)),
            _ => {}
        }
        Ok(())
    }
}

/// The value of the top-level `"msg"` string of a JSON object that begins `{"msg": "…"`,
/// (spaces allowed), from its first bytes.
pub fn message_kind(head: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(head)
        .or_else(|e| std::str::from_utf8(&head[..e.valid_up_to()]))
        .ok()?;
    let rest = text.trim_start().strip_prefix('{')?.trim_start();
    let rest = rest.strip_prefix("\"msg\"")?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    let value = &rest[..end];
    value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b == b'_')
        .then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals(message: &str) -> Result<Vec<Signal>, DecodeError> {
        let mut decoder = QueueEvents::default();
        decoder.begin(MessageKind::Text);
        for piece in message.as_bytes().chunks(5) {
            decoder.feed(piece)?;
        }
        let mut out = Vec::new();
        decoder.finish(&mut |s| out.push(s))?;
        Ok(out)
    }

    #[test]
    fn runs_start_and_finish() -> Result<(), DecodeError> {
        let starts = r#"{"msg": "process_starts", "event_id": "e1", "eta": null}"#;
        assert_eq!(signals(starts)?, [Signal::Running(true)]);
        let big = format!(
            r#"{{"msg":"process_completed","event_id":"e1","output":{{"data":["{}"]}},"success":true}}"#,
            "x".repeat(100_000)
        );
        assert_eq!(signals(&big)?, [Signal::Running(false)]);
        Ok(())
    }

    #[test]
    fn other_messages_say_nothing() -> Result<(), DecodeError> {
        for message in [
            "ALIVE",
            r#"{"msg":"estimation","rank":0}"#,
            r#"{"msg":"progress","progress_data":[]}"#,
            r#"{"msg":"heartbeat"}"#,
            r#"{"event_id":"e","msg":"process_starts"}"#,
            r#"{"msg":"process_\"starts"}"#,
            "",
        ] {
            assert!(signals(message)?.is_empty(), "{message}");
        }
        Ok(())
    }
}
