//! Fuzzes the login cookie and the other request inputs sign-in reads: arbitrary bytes as a
//! cookie value must never verify (or panic); as a `Cookie` header, a return path or a
//! socket query they must never panic, and an accepted return path must stay on this site.
#![no_main]

use http::header::{HeaderMap, HeaderValue, COOKIE};
use idlegate::auth::cookie::{cookies, LoginCookie};
use idlegate::client::take_token;
use idlegate::config::CookieKey;
use idlegate::routes::is_app_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let jar = LoginCookie::new(&[CookieKey([7; 32])], true);
    assert_eq!(jar.verify(&text), None, "forged value verified");
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, value);
        let _ = cookies(&headers).count();
        assert_eq!(jar.from_request(&headers), None);
    }
    for base in ["", "/app"] {
        if is_app_path(base, &text) {
            assert!(text.starts_with(&format!("{base}/")));
            assert!(!text.starts_with("//") && !text.contains('\\'));
        }
    }
    let _ = take_token(Some(&text));
});
