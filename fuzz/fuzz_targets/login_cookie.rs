//! Fuzzes the login cookie and the other request inputs sign-in reads: arbitrary bytes as a
//! cookie value must never verify (or panic); as a `Cookie` header, a return path or a
//! socket's subprotocol list they must never panic, an accepted return path must stay on
//! this site, and a tab token taken from the list has the token's form.
#![no_main]

use http::header::{HeaderMap, HeaderValue, COOKIE, SEC_WEBSOCKET_PROTOCOL};
use idlegate::auth::cookie::LoginCookie;
use idlegate::web::cookies;
use idlegate::ws::subprotocol::{is_token, take_tab_token, TAB_PROTOCOL_PREFIX};
use idlegate::config::CookieKey;
use idlegate::web::is_app_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let jar = LoginCookie::new(&[CookieKey([7; 32])], true);
    assert_eq!(jar.verify(&text), None, "forged value verified");
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, value);
        let names = cookies::names(&headers);
        let _ = names.iter().map(|name| cookies::find(&headers, name)).count();
        let mut for_app = headers.clone();
        cookies::for_app(&mut for_app);
        assert_eq!(jar.from_request(&headers), None);
    }
    for base in ["", "/app"] {
        if is_app_path(base, &text) {
            assert!(text.starts_with(&format!("{base}/")));
            assert!(!text.starts_with("//") && !text.contains('\\'));
        }
    }
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
        let (token, _) = take_tab_token(&mut headers);
        assert!(token.is_none_or(|t| is_token(&t)));
        let left = headers
            .get(SEC_WEBSOCKET_PROTOCOL)
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default();
        assert!(
            left.split(|b| *b == b',')
                .all(|entry| !entry.trim_ascii().starts_with(TAB_PROTOCOL_PREFIX.as_bytes())),
            "our entry reached the app"
        );
    }
});
