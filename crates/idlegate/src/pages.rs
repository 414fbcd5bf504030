//! The pages idlegate shows people itself: "session ended" and "app unavailable".
//!
//! Plain, self-contained HTML (no external assets, no inline script) so it renders under any
//! content security policy. Every dynamic part is escaped.

use crate::config::{human_duration, TabPolicy};
use crate::tracker::EndReason;

/// Text that explains an end reason to the person whose tab it was.
pub fn end_message(reason: Option<EndReason>, policy: &TabPolicy) -> String {
    let or_some = |d: Option<std::time::Duration>, fallback: &str| {
        d.map(human_duration).unwrap_or_else(|| fallback.to_owned())
    };
    match reason {
        Some(EndReason::Idle) => format!(
            "Your session ended after {} without activity.",
            or_some(policy.idle_timeout, "a while")
        ),
        Some(EndReason::HiddenIdle) => {
            "Your session ended because its tab stayed in the background without activity."
                .to_owned()
        }
        Some(EndReason::MaxLifetime) => format!(
            "Your session reached its maximum length of {}.",
            or_some(policy.max_lifetime, "its time limit")
        ),
        Some(EndReason::Closed) => format!(
            "Your session ended because the connection was lost for more than {}.",
            human_duration(policy.reconnect_grace)
        ),
        Some(EndReason::LoginExpired) => {
            "You were signed out after a period of inactivity.".to_owned()
        }
        Some(EndReason::Logout) => "You signed out.".to_owned(),
        Some(EndReason::EvictedUserCap) => {
            "This session was closed because you opened too many tabs of this app.".to_owned()
        }
        Some(EndReason::EvictedCapacity) => {
            "This session was closed to make room on a busy server.".to_owned()
        }
        Some(EndReason::Admin) => "An administrator ended this session.".to_owned(),
        Some(EndReason::UpstreamGone) => "The app stopped, so this session ended.".to_owned(),
        Some(EndReason::Shutdown) => "The server restarted, so this session ended.".to_owned(),
        None => "This session has ended.".to_owned(),
    }
}

/// The "session ended" page.
pub fn ended_page(reason: Option<EndReason>, policy: &TabPolicy, restart_href: &str) -> String {
    let message = escape(&end_message(reason, policy));
    let href = escape(restart_href);
    let reason_attr = reason.map(EndReason::as_str).unwrap_or("unknown");
    page(
        "Session ended",
        &format!(
            "<main data-idlegate-ended=\"{reason_attr}\">\n<h1>Session ended</h1>\n\
             <p id=\"idlegate-reason\">{message}</p>\n\
             <p>Anything not saved in this tab is gone.</p>\n\
             <p><a class=\"button\" id=\"idlegate-restart\" href=\"{href}\">Start a new session</a></p>\n</main>"
        ),
    )
}

/// The page shown when the app cannot be reached.
pub fn unavailable_page(detail: &str) -> String {
    page(
        "App unavailable",
        &format!(
            "<main>\n<h1>The app is not available right now</h1>\n<p>{}</p>\n\
             <p>It may be starting or restarting. Try again in a moment.</p>\n</main>",
            escape(detail)
        ),
    )
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
}

const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#31333f;--bg:#fff;--accent:#ff4b4b;--muted:#6b6f7b}\
@media (prefers-color-scheme:dark){:root{--fg:#fafafa;--bg:#0e1117;--muted:#a3a8b8}}\
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;\
font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--fg);background:var(--bg)}\
main{max-width:32rem;padding:2rem;text-align:center}\
h1{font-size:1.6rem;margin:0 0 1rem}p{line-height:1.5}p:nth-of-type(2){color:var(--muted)}\
.button{display:inline-block;margin-top:1rem;padding:.6rem 1.2rem;border-radius:.5rem;\
background:var(--accent);color:#fff;text-decoration:none;font-weight:600}\
.button:focus{outline:3px solid var(--fg);outline-offset:2px}";

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn policy() -> TabPolicy {
        TabPolicy {
            idle_timeout: Some(Duration::from_secs(1800)),
            max_lifetime: Some(Duration::from_secs(43200)),
            end_while_running: false,
            reconnect_grace: Duration::from_secs(15),
        }
    }

    #[test]
    fn idle_message_names_the_limit() {
        assert_eq!(
            end_message(Some(EndReason::Idle), &policy()),
            "Your session ended after 30 minutes without activity."
        );
        assert!(end_message(Some(EndReason::MaxLifetime), &policy()).contains("12 hours"));
    }

    #[test]
    fn every_reason_has_a_message() {
        for reason in EndReason::ALL {
            assert!(!end_message(Some(reason), &policy()).is_empty());
        }
    }

    #[test]
    fn page_escapes_its_inputs() {
        let html = ended_page(None, &policy(), "/\"><script>");
        assert!(!html.contains("<script>"));
        assert!(html.contains("&quot;&gt;&lt;script&gt;"));
        assert!(unavailable_page("<b>").contains("&lt;b&gt;"));
    }
}
