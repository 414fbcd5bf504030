//! Cross-site request checks for idlegate's own state-changing requests.
//!
//! Browsers mark where a request comes from (`Sec-Fetch-Site`, `Origin`); a request another
//! site's page made is refused. Requests without either header do not come from a browser
//! page (a browser always sends `Origin` on a cross-origin POST), so they are not a
//! cross-site forgery and pass.
//!
//! `Origin` is compared with the authority the browser addressed ([`Authority`]), not with
//! the `Host` header, which HTTP/2 requests do not carry (RFC 9113 §8.3.1: `:authority`
//! replaces it) and which a proxy in front may rewrite. The schemes are compared one way
//! only: a page served over plain HTTP (which anyone on the network can forge) may not make
//! a request that arrived over HTTPS. The other way, an `https://` page whose request reached
//! idlegate as plain HTTP, is a proxy in front that ends TLS without being trusted to say so
//! (`proxy.trusted_proxies`); nobody can forge an HTTPS page, so it passes.

use http::header::ORIGIN;
use http::HeaderMap;

/// Where a request was addressed to, as the browser saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authority {
    /// `host[:port]`: HTTP/2's `:authority`, else `Host`, or from a trusted proxy in front
    /// its `X-Forwarded-Host` (found by `proxy::headers::authority`). `None` when the
    /// request names none, and then no `Origin` matches.
    pub host: Option<String>,
    /// Whether it arrived over HTTPS (a trusted proxy's `X-Forwarded-Proto`; idlegate itself
    /// speaks plain HTTP).
    pub https: bool,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CrossSite {
    #[error("the request came from another site")]
    OtherSite,
    #[error("the request's Origin does not match its Host")]
    OriginMismatch,
    #[error("the request does not say which site it came from")]
    Unmarked,
}

/// Checks that a request addressed to `authority` was made by a page of this site.
pub fn check_same_origin(headers: &HeaderMap, authority: &Authority) -> Result<(), CrossSite> {
    if let Some(site) = headers.get("sec-fetch-site") {
        // "none" is a person typing the URL or a bookmark: never a forged request.
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return Err(CrossSite::OtherSite);
        }
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let Some((scheme, origin_host)) = origin.to_str().ok().and_then(|o| o.split_once("://")) else {
        return Err(CrossSite::OriginMismatch);
    };
    let scheme_fits = scheme.eq_ignore_ascii_case("https")
        || (scheme.eq_ignore_ascii_case("http") && !authority.https);
    match authority.host.as_deref() {
        Some(host) if scheme_fits && origin_host.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(CrossSite::OriginMismatch),
    }
}

/// Like [`check_same_origin`], but the browser must say where the request came from: for
/// sign-in and sign-out, a request without `Origin` or `Sec-Fetch-Site` is refused.
pub fn require_same_origin(headers: &HeaderMap, authority: &Authority) -> Result<(), CrossSite> {
    if headers.get(ORIGIN).is_none() && headers.get("sec-fetch-site").is_none() {
        return Err(CrossSite::Unmarked);
    }
    check_same_origin(headers, authority)
}

/// Whether the page that sent a request was opened over plain HTTP on another machine than
/// the browser's (its `Origin` is `http://` and not a loopback host), where a browser drops
/// `Secure` cookies. Browsers treat `http://localhost` and loopback addresses as secure.
pub fn from_plain_http_page(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|o| o.to_str().ok()) else {
        return false;
    };
    let Some(authority) = origin.strip_prefix("http://") else {
        return false;
    };
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !loopback
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(authority: &str) -> Authority {
        Authority {
            host: Some(authority.to_owned()),
            https: false,
        }
    }

    fn at_https(authority: &str) -> Authority {
        Authority {
            host: Some(authority.to_owned()),
            https: true,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn pages_over_plain_http_elsewhere_than_this_machine_are_told_apart() {
        let from = |origin: &str| from_plain_http_page(&headers(&[("origin", origin)]));
        assert!(from("http://192.0.2.2:8093"));
        assert!(from("http://apps.example"));
        assert!(!from("https://apps.example"));
        for local in [
            "http://localhost:8080",
            "http://app.localhost",
            "http://127.0.0.1:8080",
            "http://[::1]:8080",
        ] {
            assert!(!from(local), "{local}");
        }
        assert!(!from_plain_http_page(&HeaderMap::new()));
    }

    #[test]
    fn same_origin_requests_pass() {
        let h = headers(&[
            ("origin", "https://app.example:8080"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(check_same_origin(&h, &at("app.example:8080")), Ok(()));
        assert_eq!(check_same_origin(&h, &at("APP.example:8080")), Ok(()));
        assert_eq!(
            check_same_origin(&HeaderMap::new(), &Authority::default()),
            Ok(())
        );
        // HTTP/2: no Host header at all, only the authority.
        let h2 = headers(&[("origin", "https://app.example")]);
        assert_eq!(require_same_origin(&h2, &at("app.example")), Ok(()));
        assert_eq!(
            require_same_origin(&h2, &Authority::default()),
            Err(CrossSite::OriginMismatch)
        );
    }

    #[test]
    fn other_sites_are_refused() {
        let here = at("app.example");
        let h = headers(&[("sec-fetch-site", "cross-site")]);
        assert_eq!(check_same_origin(&h, &here), Err(CrossSite::OtherSite));
        let h = headers(&[("sec-fetch-site", "same-site")]);
        assert_eq!(check_same_origin(&h, &here), Err(CrossSite::OtherSite));
        let h = headers(&[("origin", "https://evil.example")]);
        assert_eq!(check_same_origin(&h, &here), Err(CrossSite::OriginMismatch));
        let h = headers(&[("origin", "null")]);
        assert_eq!(check_same_origin(&h, &here), Err(CrossSite::OriginMismatch));
    }

    #[test]
    fn sign_in_requires_the_browser_to_name_the_site() {
        let here = at("app.example");
        assert_eq!(
            require_same_origin(&HeaderMap::new(), &here),
            Err(CrossSite::Unmarked)
        );
        let h = headers(&[("origin", "http://app.example")]);
        assert_eq!(require_same_origin(&h, &here), Ok(()));
        let h = headers(&[("origin", "http://evil.example")]);
        assert_eq!(
            require_same_origin(&h, &here),
            Err(CrossSite::OriginMismatch)
        );
    }

    #[test]
    fn a_plain_http_page_may_not_post_to_the_https_site() {
        let from = |origin: &str| headers(&[("origin", origin)]);
        let https = at_https("app.example");
        assert_eq!(
            require_same_origin(&from("http://app.example"), &https),
            Err(CrossSite::OriginMismatch)
        );
        assert_eq!(
            require_same_origin(&from("https://app.example"), &https),
            Ok(())
        );
        // TLS ended by a proxy idlegate does not trust: the request looks plain, the page
        // is HTTPS, which nobody can forge.
        let plain = at("app.example");
        assert_eq!(
            require_same_origin(&from("https://app.example"), &plain),
            Ok(())
        );
        assert_eq!(
            require_same_origin(&from("ftp://app.example"), &plain),
            Err(CrossSite::OriginMismatch)
        );
        assert_eq!(
            require_same_origin(&from("app.example"), &plain),
            Err(CrossSite::OriginMismatch)
        );
    }
}
