//! One view of a request path: the path as the app's server will route it.
//!
//! The app's server decodes percent-escapes before it routes (uvicorn puts the decoded path
//! in the ASGI `scope["path"]`; Starlette matches routes against it), so a session socket
//! at `/ws/stream` is also reached at `/ws/%73tream`, `/ws%2Fstream` and `/%77s/stream`. Anything idlegate decides from a path (its own routes, the app's session
//! socket, uploads, health polls) must see the same thing, or a request could be one thing to
//! idlegate and another to the app.
//!
//! [`canonical`] therefore rewrites a path the way a server would read it: percent-escapes
//! decoded once, dot segments resolved (RFC 3986 §5.2.4), runs of slashes collapsed. The
//! result is encoded again where a byte cannot stand in a path as it is, so it is a valid
//! request target, and decoding it once gives the path the app routes. Dispatch forwards
//! this canonical path, so what idlegate classified is exactly what the app receives.

use std::borrow::Cow;

/// A request path that cannot be made canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The request target is not an absolute path (`*`, an empty target).
    #[error("the request target must be an absolute path")]
    NotAbsolute,
}

/// The canonical form of a request path (without its query): percent-escapes decoded once,
/// `.` and `..` segments resolved, repeated slashes collapsed, then every byte that cannot
/// stand in a path as it is (controls, space, `%`, `?`, `#`, non-ASCII, …) percent-encoded
/// with upper-case hex digits.
///
/// Borrows `raw` when it is already canonical (the common case costs one scan), so the
/// canonical form of a canonical path is itself. Invalid
/// escapes (`%zz`, a lone `%`) are kept as text, as servers do, so they come out as `%25zz`.
///
/// # Errors
///
/// [`PathError::NotAbsolute`] when `raw` does not start with `/`.
pub fn canonical(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_canonical(raw.as_bytes()) {
        return Ok(Cow::Borrowed(raw));
    }
    let decoded = decode_once(raw.as_bytes());
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut parts = decoded.split(|b| *b == b'/').skip(1).peekable();
    // Whether the path ends in a slash (or in a dot segment, which names a directory).
    let mut trailing = false;
    while let Some(segment) = parts.next() {
        let last = parts.peek().is_none();
        match segment {
            b"" => trailing = last,
            b"." => trailing = last,
            b".." => {
                segments.pop();
                trailing = last;
            }
            other => {
                segments.push(other);
                trailing = false;
            }
        }
    }
    let mut out = String::with_capacity(raw.len());
    for segment in &segments {
        out.push('/');
        encode_into(&mut out, segment);
    }
    if trailing || segments.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// Whether `byte` may stand in a canonical path as it is: RFC 3986 `pchar` without
/// `%` (unreserved, sub-delims, `:` and `@`), and `/`.
fn is_path_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

/// Canonical already: path bytes and the escapes [`encode_into`] writes (upper-case, only
/// for bytes that cannot stand as they are), no empty, `.` or `..` segments (a single
/// trailing slash is fine).
fn is_canonical(raw: &[u8]) -> bool {
    let mut i = 0;
    while i < raw.len() {
        let byte = raw[i];
        if byte == b'%' {
            let escaped = raw
                .get(i + 1..i + 3)
                .filter(|hh| {
                    hh.iter()
                        .all(|d| d.is_ascii_digit() || d.is_ascii_uppercase())
                })
                .and_then(|hh| Some(hex(hh[0])? << 4 | hex(hh[1])?));
            match escaped {
                Some(decoded) if !is_path_byte(decoded) => i += 3,
                _ => return false,
            }
        } else if is_path_byte(byte) {
            i += 1;
        } else {
            return false;
        }
    }
    let mut segments = raw.split(|b| *b == b'/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if (segment.is_empty() && !last) || segment == b"." || segment == b".." {
            return false;
        }
    }
    true
}

/// Decodes `%XX` escapes once; anything else (including malformed escapes) stays as it is.
fn decode_once(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(hi), Some(lo)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

fn encode_into(out: &mut String, segment: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in segment {
        if is_path_byte(byte) && byte != b'/' {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
    }
}

/// Decodes a canonical path once, the way the app's server reads it, for tests and logs.
pub fn decoded(canonical: &str) -> Vec<u8> {
    decode_once(canonical.as_bytes())
}

#[cfg(test)]
mod tests;
