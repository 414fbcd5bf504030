//! URLs of idlegate's own pages under `<base>/_idlegate/`, and the check that a return path
//! stays inside the app (no open redirects).

use crate::lifecycle::EndReason;

/// Path prefix of idlegate's routes, after the app's base path.
pub const PREFIX: &str = "/_idlegate/";

/// Path of the page script's API under `<base>/_idlegate/` (see `routes::tab`).
pub const TAB_API: &str = "tab";

/// URL of the page a tab over the per-user limit gets.
pub fn refused_url(base_path: &str) -> String {
    format!("{base_path}{PREFIX}refused")
}

/// URL of the page a new tab over the server's limit gets ("the server is busy").
pub fn busy_url(base_path: &str) -> String {
    format!("{base_path}{PREFIX}busy")
}

/// URL of the sign-in page, returning to `return_to` afterwards.
pub fn sign_in_url(base_path: &str, return_to: &str) -> String {
    let query = serde_urlencoded::to_string([("return", return_to)]).unwrap_or_default();
    format!("{base_path}{PREFIX}login?{query}")
}

/// URL of the "session ended" page.
pub fn ended_url(base_path: &str, reason: EndReason) -> String {
    format!("{base_path}{PREFIX}ended?reason={}", reason.as_str())
}

/// URL of the "session ended" page whose "Start a new session" returns to `page` (a path
/// and query of the app; anything else is left out).
pub fn ended_url_returning(base_path: &str, reason: EndReason, page: Option<&str>) -> String {
    let url = ended_url(base_path, reason);
    match page.filter(|page| is_app_path(base_path, page)) {
        Some(page) => {
            let query = serde_urlencoded::to_string([("return", page)]).unwrap_or_default();
            format!("{url}&{query}")
        }
        None => url,
    }
}

/// Whether `path` is a page of the app on this host: an absolute path under the base path,
/// not idlegate's own, and nothing a browser could read as another host.
pub fn is_app_path(base_path: &str, path: &str) -> bool {
    let Some(rest) = path.strip_prefix(base_path) else {
        return false;
    };
    rest.starts_with('/')
        && !path.starts_with("//")
        && !rest.starts_with(PREFIX)
        && !path
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::is_app_path;

    #[test]
    fn only_app_paths_on_this_host_are_returned_to() {
        assert!(is_app_path("", "/"));
        assert!(is_app_path("", "/page_two?x=1"));
        assert!(is_app_path("/base", "/base/page"));
        for bad in [
            "//evil.example",
            "https://evil.example",
            "https:evil",
            "/\\evil.example",
            "/a\tb",
            "evil",
            "",
            "/_idlegate/ended",
        ] {
            assert!(!is_app_path("", bad), "{bad}");
        }
        assert!(!is_app_path("/base", "/other"));
        assert!(!is_app_path("/base", "/basement"));
        assert!(!is_app_path("/base", "/base/_idlegate/ended"));
    }

    proptest::proptest! {
        #[test]
        fn an_accepted_return_path_never_leaves_the_app(path in "\\PC{0,40}", base in "(|/app)") {
            if is_app_path(&base, &path) {
                let expected_prefix = format!("{base}/");
                proptest::prop_assert!(path.starts_with(&expected_prefix));
                proptest::prop_assert!(!path.starts_with("//"));
                proptest::prop_assert!(!path.contains('\\'));
                proptest::prop_assert!(!path.chars().any(char::is_control));
            }
        }
    }
}
