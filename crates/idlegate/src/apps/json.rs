//! Reading JSON text messages whole, for kinds whose session sockets speak JSON (Shiny).

use serde_json::Value;

use super::DecodeError;

/// The largest JSON message idlegate reads, in bytes (1 MiB). A larger one is relayed
/// unread: it says nothing about idleness (a person's activity is judged from the small
/// messages a page sends), and reading it would cost memory per connection.
pub const MAX_JSON_MESSAGE: usize = 1 << 20;

/// The buffer capacity kept between messages, in bytes.
const KEPT_CAPACITY: usize = 64 * 1024;

/// Collects one text message, then parses it as JSON.
#[derive(Debug, Default)]
pub struct JsonText {
    buffer: Vec<u8>,
    oversized: bool,
}

impl JsonText {
    /// A new message starts.
    pub fn begin(&mut self) {
        // A large message's buffer is not kept for the connection's life.
        if self.buffer.capacity() > KEPT_CAPACITY {
            self.buffer = Vec::new();
        }
        self.buffer.clear();
        self.oversized = false;
    }

    /// The next piece of the message. Pieces past [`MAX_JSON_MESSAGE`] are dropped, and the
    /// message is then read as none.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.oversized || self.buffer.len() + bytes.len() > MAX_JSON_MESSAGE {
            self.oversized = true;
            self.buffer = Vec::new();
            return;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Whether the message read so far holds `needle` (a cheap look before parsing).
    pub fn contains(&self, needle: &[u8]) -> bool {
        !self.oversized && self.buffer.windows(needle.len()).any(|w| w == needle)
    }

    /// The message, parsed (`None` when it was over [`MAX_JSON_MESSAGE`]); the buffer is
    /// emptied.
    ///
    /// # Errors
    /// The message is not JSON.
    pub fn take(&mut self) -> Result<Option<Value>, DecodeError> {
        if self.oversized {
            self.oversized = false;
            return Ok(None);
        }
        let value = serde_json::from_slice(&self.buffer).map_err(DecodeError::new);
        self.buffer.clear();
        value.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_read_from_its_pieces_and_an_oversized_one_as_none() {
        let mut text = JsonText::default();
        text.begin();
        text.feed(br#"{"a":"#);
        text.feed(b"1}");
        assert_eq!(text.take().unwrap(), Some(serde_json::json!({"a": 1})));

        text.begin();
        text.feed(&vec![b' '; MAX_JSON_MESSAGE]);
        text.feed(b"{}");
        assert_eq!(text.take().unwrap(), None);

        text.begin();
        text.feed(b"{not json");
        assert!(text.take().is_err());
    }
}
