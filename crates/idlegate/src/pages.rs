//! The pages idlegate shows people itself: "session ended" and "app unavailable".
//!
//! Plain, self-contained HTML (no external assets, no inline script) so it renders under any
//! content security policy. Every dynamic part is escaped.

use crate::config::{fill_placeholders, human_duration, TabPolicy, Texts};
use crate::lifecycle::EndReason;

/// Text that explains an end reason to the person whose tab it was.
pub fn end_message(reason: Option<EndReason>, policy: &TabPolicy, texts: &Texts) -> String {
    let r = &texts.reasons;
    let text = match reason {
        Some(EndReason::Idle) => &r.idle,
        Some(EndReason::BusyIdle) => &r.busy_idle,
        Some(EndReason::HiddenIdle) => &r.hidden_idle,
        Some(EndReason::MaxLifetime) => &r.max_lifetime,
        Some(EndReason::Closed) => &r.closed,
        Some(EndReason::LoginExpired) => &r.login_expired,
        Some(EndReason::Logout) => &r.logout,
        Some(EndReason::EvictedUserCap) => &r.evicted_user_cap,
        Some(EndReason::EvictedCapacity) => &r.evicted_capacity,
        Some(EndReason::Admin) => &r.admin,
        Some(EndReason::UpstreamGone) => &r.upstream_gone,
        Some(EndReason::AppRestarted) => &r.app_restarted,
        Some(EndReason::ServerRestarted) => &r.server_restarted,
        Some(EndReason::Shutdown) => &r.shutdown,
        None => &r.unknown,
    };
    let words = |d: Option<std::time::Duration>| d.map(human_duration).unwrap_or_default();
    fill_placeholders(
        text,
        &[
            ("idle_timeout", &words(policy.idle_timeout)),
            ("busy_timeout", &words(policy.busy_timeout)),
            ("hidden_timeout", &words(policy.hidden_timeout)),
            ("max_lifetime", &words(policy.max_lifetime)),
            ("reconnect_grace", &words(Some(policy.reconnect_grace))),
        ],
    )
}

/// The "session ended" page. `restart_href` opens a new session.
pub fn ended_page(
    reason: Option<EndReason>,
    policy: &TabPolicy,
    texts: &Texts,
    restart_href: &str,
) -> String {
    let message = escape(&end_message(reason, policy, texts));
    let href = escape(restart_href);
    let reason_attr = reason.map(EndReason::as_str).unwrap_or("unknown");
    let title = escape(&texts.ended_title);
    page(
        &texts.lang,
        &title,
        &format!(
            "<main data-idlegate-ended=\"{reason_attr}\">\n<h1>{title}</h1>\n\
             <p id=\"idlegate-reason\">{message}</p>\n\
             <p>{note}</p>\n\
             <p><a class=\"button\" id=\"idlegate-restart\" href=\"{href}\">{start}</a></p>\n</main>",
            note = escape(&texts.ended_note),
            start = escape(&texts.start_new),
        ),
    )
}

/// The sign-in form. `action` is where it posts; `message` is shown above it.
pub fn sign_in_page(texts: &Texts, action: &str, return_to: &str, message: Option<&str>) -> String {
    let message = message
        .map(|m| {
            format!(
                "<p id=\"idlegate-message\" role=\"alert\">{}</p>\n",
                escape(m)
            )
        })
        .unwrap_or_default();
    let title = escape(&texts.sign_in_title);
    page(
        &texts.lang,
        &title,
        &format!(
            "<main>\n<h1>{title}</h1>\n{message}\
             <form method=\"post\" action=\"{action}\">\n\
             <input type=\"hidden\" name=\"return\" value=\"{return_to}\">\n\
             <label for=\"username\">{username}</label>\n\
             <input id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus>\n\
             <label for=\"password\">{password}</label>\n\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\n\
             <button class=\"button\" type=\"submit\">{sign_in}</button>\n</form>\n</main>",
            action = escape(action),
            return_to = escape(return_to),
            username = escape(&texts.username),
            password = escape(&texts.password),
            sign_in = escape(&texts.sign_in),
        ),
    )
}

/// The page shown when a sign-in at the OpenID provider failed, with a way to try again.
pub fn sign_in_failed_page(texts: &Texts, message: &str, again_href: &str) -> String {
    let title = escape(&texts.sign_in_title);
    page(
        &texts.lang,
        &title,
        &format!(
            "<main>\n<h1>{title}</h1>\n<p id=\"idlegate-message\" role=\"alert\">{}</p>\n\
             <p><a class=\"button\" href=\"{}\">{}</a></p>\n</main>",
            escape(message),
            escape(again_href),
            escape(&texts.sign_in),
        ),
    )
}

/// "You are signed out", with a button to sign in again (OpenID mode, where the sign-in page
/// is the provider's).
pub fn signed_out_page(texts: &Texts, sign_in_href: &str) -> String {
    let title = escape(&texts.sign_out_title);
    page(
        &texts.lang,
        &title,
        &format!(
            "<main>\n<h1>{title}</h1>\n<p id=\"idlegate-message\">{}</p>\n\
             <p><a class=\"button\" href=\"{}\">{}</a></p>\n</main>",
            escape(&texts.signed_out),
            escape(sign_in_href),
            escape(&texts.sign_in),
        ),
    )
}

/// The page with the sign-out button (a link an app can point to).
pub fn sign_out_page(texts: &Texts, action: &str) -> String {
    let title = escape(&texts.sign_out_title);
    page(
        &texts.lang,
        &title,
        &format!(
            "<main>\n<h1>{title}</h1>\n<form method=\"post\" action=\"{action}\">\n\
             <button class=\"button\" type=\"submit\" id=\"idlegate-sign-out\">{sign_out}</button>\n\
             </form>\n</main>",
            action = escape(action),
            sign_out = escape(&texts.sign_out),
        ),
    )
}

/// The page a tab over the per-user limit gets.
pub fn refused_page(texts: &Texts, max_per_user: usize, reload_href: &str) -> String {
    let message = fill_placeholders(
        &texts.refused_user_cap,
        &[("max_per_user", &max_per_user.to_string())],
    );
    let refused = Refusal {
        cap: "user_cap",
        title: &texts.refused_title,
        message: &message,
        button: &texts.start_new,
    };
    refusal_page(texts, &refused, reload_href)
}

/// The page a new tab over the server's limit gets (`tabs.max_total`).
pub fn busy_page(texts: &Texts, reload_href: &str) -> String {
    let refused = Refusal {
        cap: "server_cap",
        title: &texts.busy_title,
        message: &texts.busy,
        button: &texts.try_again,
    };
    refusal_page(texts, &refused, reload_href)
}

/// What a refused tab's page says: which cap (`data-idlegate-refused`), its title, why, and
/// the button that reloads the app.
struct Refusal<'a> {
    cap: &'static str,
    title: &'a str,
    message: &'a str,
    button: &'a str,
}

fn refusal_page(texts: &Texts, refused: &Refusal<'_>, reload_href: &str) -> String {
    let title = escape(refused.title);
    page(
        &texts.lang,
        &title,
        &format!(
            "<main data-idlegate-refused=\"{}\">\n<h1>{title}</h1>\n<p>{}</p>\n\
             <p><a class=\"button\" href=\"{}\">{}</a></p>\n</main>",
            refused.cap,
            escape(refused.message),
            escape(reload_href),
            escape(refused.button),
        ),
    )
}

/// The page a sign-in gets while the shared store cannot be reached.
pub fn sign_in_unavailable_page(text: &str) -> String {
    let text = escape(text);
    page(
        "en",
        &text,
        &format!("<main data-idlegate-refused=\"store\">\n<h1>{text}</h1>\n</main>"),
    )
}

/// The page shown when the app cannot be reached.
pub fn unavailable_page(detail: &str) -> String {
    page(
        "en",
        "App unavailable",
        &format!(
            "<main>\n<h1>The app is not available right now</h1>\n<p>{}</p>\n\
             <p>It may be starting or restarting. Try again in a moment.</p>\n</main>",
            escape(detail)
        ),
    )
}

fn page(lang: &str, title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
}

const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#31333f;--bg:#fff;--accent:#d33131;--muted:#6b6f7b}\
@media (prefers-color-scheme:dark){:root{--fg:#fafafa;--bg:#0e1117;--muted:#a3a8b8}}\
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;\
font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--fg);background:var(--bg)}\
main{max-width:32rem;padding:2rem;text-align:center}\
h1{font-size:1.6rem;margin:0 0 1rem}p{line-height:1.5}p:nth-of-type(2){color:var(--muted)}\
.button{display:inline-block;margin-top:1rem;padding:.6rem 1.2rem;border-radius:.5rem;\
background:var(--accent);color:#fff;text-decoration:none;font-weight:600}\
.button:focus{outline:3px solid var(--fg);outline-offset:2px}\
form{display:flex;flex-direction:column;gap:.4rem;text-align:left}\
input{font:inherit;padding:.5rem;border:1px solid var(--muted);border-radius:.4rem;\
color:var(--fg);background:var(--bg)}button.button{border:0;font:inherit;cursor:pointer}\
#idlegate-message{color:var(--accent);font-weight:600}";

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

    fn policy() -> TabPolicy {
        TabPolicy::for_tests(1800, 43200)
    }

    fn texts() -> Texts {
        crate::config::Config::from_toml("").unwrap().browser.texts
    }

    #[test]
    fn idle_message_names_the_limit() {
        assert_eq!(
            end_message(Some(EndReason::Idle), &policy(), &texts()),
            "Your session ended after 30 minutes without activity."
        );
        assert!(
            end_message(Some(EndReason::MaxLifetime), &policy(), &texts()).contains("12 hours")
        );
    }

    #[test]
    fn every_reason_has_a_message() {
        for reason in EndReason::ALL {
            let message = end_message(Some(reason), &policy(), &texts());
            assert!(!message.is_empty() && !message.contains('{'), "{message}");
        }
    }

    #[test]
    fn texts_come_from_the_config() {
        let config = crate::config::Config::from_toml(
            "[browser.texts]\nlang = \"de\"\nended_title = \"Sitzung beendet\"\n\
             [browser.texts.reasons]\nidle = \"Nach {idle_timeout} ohne Aktivit\u{e4}t beendet.\"\n",
        )
        .unwrap();
        let html = ended_page(Some(EndReason::Idle), &policy(), &config.browser.texts, "/");
        assert!(html.contains("<html lang=\"de\">"));
        assert!(html.contains("<h1>Sitzung beendet</h1>"));
        assert!(html.contains("Nach 30 minutes ohne Aktivit\u{e4}t beendet."));
    }

    #[test]
    fn page_escapes_its_inputs() {
        let html = ended_page(None, &policy(), &texts(), "/\"><script>");
        assert!(!html.contains("<script>"));
        assert!(html.contains("&quot;&gt;&lt;script&gt;"));
        assert!(unavailable_page("<b>").contains("&lt;b&gt;"));
    }
}
