//! Reading JSON text messages whole, for kinds whose session sockets speak JSON (Shiny).

use serde_json::Value;

use super::DecodeError;

/// The largest JSON message idlegate reads, in bytes (1 MiB). A larger one is relayed
/// unread: it says nothing about idleness (a person's activity is judged from the small
/// messages a page sends), and reading it would cost memory per connection.
pub const MAX_JSON_MESSAGE: usize = 1 << 20;

/// The buffer capacity kept between messages, in bytes; also how much of an oversized
/// message is kept ([`JsonText::head`]).
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
        if self.oversized {
            return;
        }
        if self.buffer.len() + bytes.len() > MAX_JSON_MESSAGE {
            // Only the start is kept, for a look at it ([`JsonText::head`]).
            self.oversized = true;
            self.buffer.truncate(KEPT_CAPACITY);
            self.buffer.shrink_to(KEPT_CAPACITY);
            return;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The first 64 KiB of a message over [`MAX_JSON_MESSAGE`] (`None` for others): where
    /// the kind of a large message is said before its data.
    pub fn head(&self) -> Option<&[u8]> {
        self.oversized.then_some(self.buffer.as_slice())
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
            self.buffer.clear();
            return Ok(None);
        }
        let value = serde_json::from_slice(&self.buffer).map_err(DecodeError::new);
        self.buffer.clear();
        value.map(Some)
    }
}

impl JsonText {
    /// Like [`JsonText::take`], but reads Python's `json.dumps` extensions too: `NaN`,
    /// `Infinity` and `-Infinity` outside strings are read as `null` (apps' messages carry
    /// them in data; what idlegate needs is elsewhere in the message).
    ///
    /// # Errors
    /// The message is not JSON, even so.
    pub fn take_lenient(&mut self) -> Result<Option<Value>, DecodeError> {
        if self.oversized {
            return self.take();
        }
        match serde_json::from_slice(&self.buffer) {
            Ok(value) => {
                self.buffer.clear();
                Ok(Some(value))
            }
            Err(_) => {
                let cleaned = without_non_finite(&self.buffer);
                self.buffer.clear();
                serde_json::from_slice(&cleaned)
                    .map(Some)
                    .map_err(DecodeError::new)
            }
        }
    }
}

/// Parses JSON text as Python's `json` module reads it: `NaN`, `Infinity` and `-Infinity`
/// outside strings are read as `null`. `None` for text that is not JSON even so.
pub fn parse_lenient(text: &[u8]) -> Option<Value> {
    serde_json::from_slice(text)
        .ok()
        .or_else(|| serde_json::from_slice(&without_non_finite(text)).ok())
}

/// `text` with `NaN`, `Infinity` and `-Infinity` outside strings replaced by `null`.
fn without_non_finite(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    let mut i = 0;
    while i < text.len() {
        let byte = text[i];
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            out.push(byte);
            i += 1;
            continue;
        }
        let rest = &text[i..];
        let word = [&b"-Infinity"[..], b"Infinity", b"NaN"]
            .into_iter()
            .find(|word| rest.starts_with(word));
        if let Some(word) = word {
            out.extend_from_slice(b"null");
            i += word.len();
            continue;
        }
        in_string = byte == b'"';
        out.push(byte);
        i += 1;
    }
    out
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

    #[test]
    fn pythons_non_finite_numbers_are_read_as_null_outside_strings() -> Result<(), DecodeError> {
        let mut text = JsonText::default();
        text.begin();
        text.feed(br#"{"a":[NaN,-Infinity,Infinity,1],"s":"NaN \" Infinity","k":NaN}"#);
        assert_eq!(
            text.take_lenient()?,
            Some(
                serde_json::json!({"a": [null, null, null, 1], "s": "NaN \" Infinity", "k": null})
            )
        );
        text.begin();
        text.feed(b"{nope");
        assert!(text.take_lenient().is_err());
        Ok(())
    }
}
