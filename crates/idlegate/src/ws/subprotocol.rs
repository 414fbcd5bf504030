//! idlegate's entry in a WebSocket handshake's `Sec-WebSocket-Protocol` list.
//!
//! The page script names its tab token when the page opens the app's session socket, as one
//! more subprotocol the browser offers: `idlegate.tab.<token>`. A subprotocol, not the URL,
//! because URLs reach access logs (the ingress's, the app's) and a token there could be
//! replayed by whoever reads them; browsers let a page set no other handshake header.
//! idlegate takes the entry out before the app sees the handshake, and answers with the app's
//! choice of subprotocol (or, when the app chose none, with this entry, since a browser that
//! offered subprotocols fails a handshake that selects none).
//!
//! Subprotocol names are RFC 7230 tokens (RFC 6455 §4.1), which the token's alphabet
//! (base64url) stays within.

use http::header::{HeaderMap, HeaderValue, SEC_WEBSOCKET_PROTOCOL};

/// The header the page script names its tab token in, on the requests of a request-shaped
/// tab session (Gradio), which opens no socket (the proxy's `requests` module reads it).
pub const TAB_HEADER: http::header::HeaderName =
    http::header::HeaderName::from_static("x-idlegate-tab");

/// Prefix of idlegate's subprotocol entry; the tab token follows.
pub const TAB_PROTOCOL_PREFIX: &str = "idlegate.tab.";

/// Whether a page token has the form the script makes (random, URL-safe base64). Anything
/// else is ignored, so no odd bytes reach the registry or the logs.
pub fn is_token(value: &str) -> bool {
    (16..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Takes idlegate's entries out of the request's `Sec-WebSocket-Protocol` list. Returns the
/// tab token (the first well-formed one) and whether the list had any entry of idlegate's.
/// The header is rewritten with the other entries in their order, or removed when none is
/// left. Works on bytes, so a value that is not text still loses idlegate's entries.
pub fn take_tab_token(headers: &mut HeaderMap) -> (Option<String>, bool) {
    let prefix = TAB_PROTOCOL_PREFIX.as_bytes();
    let values: Vec<Vec<u8>> = headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect();
    let entries: Vec<&[u8]> = values
        .iter()
        .flat_map(|v| v.split(|b| *b == b','))
        .map(|e| e.trim_ascii())
        .collect();
    if !entries.iter().any(|e| e.starts_with(prefix)) {
        return (None, false);
    }
    let token = entries
        .iter()
        .filter_map(|e| e.strip_prefix(prefix))
        .filter_map(|t| std::str::from_utf8(t).ok())
        .find(|t| is_token(t))
        .map(str::to_owned);
    let rest: Vec<&[u8]> = entries
        .into_iter()
        .filter(|e| !e.starts_with(prefix))
        .collect();
    headers.remove(SEC_WEBSOCKET_PROTOCOL);
    if !rest.is_empty() {
        if let Ok(value) = HeaderValue::from_bytes(&rest.join(&b", "[..])) {
            headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
        }
    }
    (token, true)
}

/// The subprotocol entry that names `token`.
pub fn tab_protocol(token: &str) -> String {
    format!("{TAB_PROTOCOL_PREFIX}{token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocols(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(value).unwrap(),
        );
        headers
    }

    #[test]
    fn the_token_is_taken_out_and_the_apps_entries_keep_their_order() {
        let mut headers =
            protocols("streamlit, xsrf|token, session-id, idlegate.tab.AbCdEfGhIjKlMnOpQrStUv");
        let (token, ours) = take_tab_token(&mut headers);
        assert_eq!(token.as_deref(), Some("AbCdEfGhIjKlMnOpQrStUv"));
        assert!(ours);
        assert_eq!(
            headers[SEC_WEBSOCKET_PROTOCOL],
            "streamlit, xsrf|token, session-id"
        );
    }

    #[test]
    fn a_list_of_ours_only_leaves_no_header() {
        let mut headers = protocols("idlegate.tab.AbCdEfGhIjKlMnOpQrStUv");
        let (token, ours) = take_tab_token(&mut headers);
        assert!(token.is_some() && ours);
        assert!(!headers.contains_key(SEC_WEBSOCKET_PROTOCOL));
    }

    #[test]
    fn without_our_entry_nothing_changes() {
        let mut headers = protocols("streamlit, PLACEHOLDER_AUTH_TOKEN");
        assert_eq!(take_tab_token(&mut headers), (None, false));
        assert_eq!(
            headers[SEC_WEBSOCKET_PROTOCOL],
            "streamlit, PLACEHOLDER_AUTH_TOKEN"
        );
        let mut empty = HeaderMap::new();
        assert_eq!(take_tab_token(&mut empty), (None, false));
    }

    #[test]
    fn a_value_that_is_not_text_still_loses_our_entry() {
        let mut headers = HeaderMap::new();
        headers.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_bytes(b"\xdbx, idlegate.tab.AbCdEfGhIjKlMnOpQrStUv").unwrap(),
        );
        let (token, ours) = take_tab_token(&mut headers);
        assert!(token.is_some() && ours);
        assert_eq!(headers[SEC_WEBSOCKET_PROTOCOL].as_bytes(), b"\xdbx");
    }

    #[test]
    fn malformed_tokens_are_dropped_but_still_removed() {
        for bad in ["short", "has space-aaaaaaaaaaaaaaaa", &"a".repeat(65), ""] {
            let mut headers = protocols(&format!("streamlit, idlegate.tab.{bad}"));
            assert_eq!(take_tab_token(&mut headers), (None, true));
            assert_eq!(headers[SEC_WEBSOCKET_PROTOCOL], "streamlit");
        }
    }
}
