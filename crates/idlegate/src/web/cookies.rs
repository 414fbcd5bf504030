//! Every cookie idlegate reads from a request or sets in a response, through the `cookie`
//! crate: reading a `Cookie` header ([`find`], [`names`]) and writing `Set-Cookie` ([`set`],
//! [`removal`]). idlegate's cookies are always `HttpOnly` and `SameSite=Lax`, and `Secure`
//! when the site is served over HTTPS (`login.cookie_secure`). Every one of them is named
//! `idlegate-…` (or `__Host-idlegate-…`, [`is_own`]) and none reaches the app
//! ([`for_app`]).

use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

/// The cookies of a request's `Cookie` headers (there may be several, as in HTTP/2), in
/// order. Malformed pairs are skipped; values are given without surrounding quotes.
fn all(headers: &HeaderMap) -> impl Iterator<Item = Cookie<'_>> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
}

/// The value of the first cookie named `name`, without surrounding quotes.
pub fn find<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let value = all(headers).find(|c| c.name() == name)?.value_raw()?;
    Some(
        match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(unquoted) => unquoted,
            None => value,
        },
    )
}

/// The names of the request's cookies, in order.
pub fn names(headers: &HeaderMap) -> Vec<String> {
    all(headers).map(|c| c.name().to_owned()).collect()
}

/// Whether a cookie is idlegate's own: named `idlegate-…`, with or without a `__Host-` or
/// `__Secure-` prefix (RFC 6265bis §4.1.3). Names are case-sensitive (RFC 6265 §5.3).
pub fn is_own(name: &[u8]) -> bool {
    let bare = name
        .strip_prefix(b"__Host-")
        .or_else(|| name.strip_prefix(b"__Secure-"))
        .unwrap_or(name);
    bare.starts_with(b"idlegate-")
}

/// The request's cookies as the app gets them: idlegate's own ([`is_own`]) removed, every
/// other pair kept byte for byte and in order, all in one `Cookie` field joined with `"; "`
/// (HTTP/2 browsers send a field per cookie, RFC 9113 §8.2.3, and some apps read only the
/// first). No field is left when no cookie remains. Empty pairs are dropped.
pub fn for_app(headers: &mut HeaderMap) {
    let fields: Vec<HeaderValue> = headers.get_all(COOKIE).iter().cloned().collect();
    if fields.is_empty() {
        return;
    }
    let mut joined: Vec<u8> = Vec::new();
    for field in &fields {
        for pair in field.as_bytes().split(|b| *b == b';') {
            let pair = pair.trim_ascii();
            let name = pair
                .split(|b| *b == b'=')
                .next()
                .unwrap_or(pair)
                .trim_ascii();
            if pair.is_empty() || is_own(name) {
                continue;
            }
            if !joined.is_empty() {
                joined.extend_from_slice(b"; ");
            }
            joined.extend_from_slice(pair);
        }
    }
    headers.remove(COOKIE);
    // Built from bytes of valid header values joined with "; ": always valid.
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        if !joined.is_empty() {
            headers.insert(COOKIE, value);
        }
    }
}

/// `Set-Cookie` for `name=value` on `path`; a session cookie unless `max_age` is given.
pub fn set(
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<Duration>,
    secure: bool,
) -> HeaderValue {
    let mut cookie = Cookie::build((name.to_owned(), value.to_owned()))
        .path(path.to_owned())
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure);
    if let Some(age) = max_age {
        let seconds = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
        cookie = cookie.max_age(cookie::time::Duration::seconds(seconds));
    }
    header_value(&cookie.build())
}

/// `Set-Cookie` that deletes the cookie `name` set on `path`.
pub fn removal(name: &str, path: &str, secure: bool) -> HeaderValue {
    let cookie = Cookie::build((name.to_owned(), ""))
        .path(path.to_owned())
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(cookie::time::Duration::ZERO);
    header_value(&cookie.build())
}

fn header_value(cookie: &Cookie<'_>) -> HeaderValue {
    // A cookie built from a name and value that passed `Cookie`'s checks formats to
    // visible ASCII; anything else would be a bug, answered with an inert header.
    HeaderValue::from_str(&cookie.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("idlegate-invalid=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(cookies: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in cookies {
            headers.append(COOKIE, HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    #[test]
    fn cookies_are_found_across_headers_and_quotes_are_dropped() {
        let headers = request(&["a=1; b=\"two\"", "c=3;; junk; d=4"]);
        assert_eq!(find(&headers, "a"), Some("1"));
        assert_eq!(find(&headers, "b"), Some("two"));
        assert_eq!(find(&headers, "d"), Some("4"));
        assert_eq!(find(&headers, "e"), None);
        assert_eq!(names(&headers), ["a", "b", "c", "d"]);
    }

    #[test]
    fn idlegate_cookies_are_told_apart_by_name() {
        for own in [
            "idlegate-login",
            "__Host-idlegate-login",
            "__Secure-idlegate-x",
            "idlegate-oidc",
        ] {
            assert!(is_own(own.as_bytes()), "{own}");
        }
        for theirs in [
            "_streamlit_xsrf",
            "idlegate",
            "Idlegate-login",
            "x-idlegate-a",
            "",
        ] {
            assert!(!is_own(theirs.as_bytes()), "{theirs}");
        }
    }

    #[test]
    fn the_app_gets_one_line_without_idlegate_cookies() {
        let mut headers = request(&[
            "a=1; __Host-idlegate-login=abc.def",
            "idlegate-oidc=xyz",
            "b=\"two words\";;  c=3=4 ",
        ]);
        for_app(&mut headers);
        let all: Vec<_> = headers.get_all(COOKIE).iter().collect();
        assert_eq!(all, ["a=1; b=\"two words\"; c=3=4"]);
        let mut only_ours = request(&["idlegate-login=x", "__Host-idlegate-login=y"]);
        for_app(&mut only_ours);
        assert!(!only_ours.contains_key(COOKIE));
        let mut none = HeaderMap::new();
        for_app(&mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn other_cookies_keep_their_bytes() {
        let raw = HeaderValue::from_bytes(b"k=\xe9t\xe9; idlegate-login=1; z=%00").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, raw);
        for_app(&mut headers);
        assert_eq!(headers[COOKIE].as_bytes(), b"k=\xe9t\xe9; z=%00");
    }

    #[test]
    fn set_and_removal_carry_the_attributes() {
        let value = set("n", "v", "/p/", Some(Duration::from_secs(600)), true);
        let text = value.to_str().unwrap();
        for part in [
            "n=v",
            "Path=/p/",
            "Max-Age=600",
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        let session = set("n", "v", "/", None, false);
        assert!(!session.to_str().unwrap().contains("Max-Age"));
        assert!(!session.to_str().unwrap().contains("Secure"));
        let gone = removal("n", "/", false);
        let text = gone.to_str().unwrap();
        assert!(text.starts_with("n=;"), "{text}");
        assert!(text.contains("Max-Age=0"), "{text}");
    }
}
