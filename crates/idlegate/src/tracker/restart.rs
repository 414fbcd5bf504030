//! Pages from before a restart: a page that comes back asking to resume an app session this
//! process has no record of.
//!
//! With the memory store, a restarted idlegate knows no tab, but the pages of the old process
//! reconnect by themselves (Streamlit's frontend retries) naming their app session (and, with
//! the page script, their tab token). Such a page is told that the server restarted instead
//! of being let through: idlegate could not say whose session it was (another login may not
//! take it over), how idle it was, or whether the app still holds it (in launcher mode the
//! app restarted too, and the page would show its old screen over a fresh session).
//!
//! The tab token alone cannot mark a page from before a restart: every new page load brings
//! a token nobody knows yet, and the script makes it up itself (idlegate signs nothing a
//! page could bring back). The app session id can: the app hands it out over this process's
//! relay, so a page of this process names one this process saw, either still open or
//! remembered as ended. Nothing is kept per unknown id: the same page gets the same answer
//! each time it comes back, from the rule alone.

/// Whether a page asking to resume `app_session`, with the page token `client`, comes from
/// before this process: it names an app session this process has no record of (neither
/// open, per `open_session`, nor ended: ended ids are looked up first), and no open tab of
/// this process by its token (`open_token`). A page that names no app session is a new page.
pub(super) fn from_before_restart(
    app_session: Option<&str>,
    client: Option<&str>,
    open_session: impl Fn(&str) -> bool,
    open_token: impl Fn(&str) -> bool,
) -> bool {
    app_session.is_some_and(|id| !open_session(id)) && !client.is_some_and(open_token)
}

#[cfg(test)]
mod tests {
    use super::from_before_restart;

    const S: &str = "6f1c6a5e-1111-4c1e-9d2a-0123456789ab";
    const T: &str = "AbCdEfGhIjKlMnOpQrStUv";

    fn open(known: &'static [&'static str]) -> impl Fn(&str) -> bool {
        move |id| known.contains(&id)
    }

    #[test]
    fn an_unknown_app_session_is_from_before_a_restart() {
        assert!(from_before_restart(Some(S), None, open(&[]), open(&[])));
        assert!(from_before_restart(Some(S), Some(T), open(&[]), open(&[])));
    }

    #[test]
    fn a_new_page_is_not() {
        assert!(!from_before_restart(None, None, open(&[]), open(&[])));
        assert!(!from_before_restart(None, Some(T), open(&[]), open(&[])));
    }

    #[test]
    fn a_page_of_an_open_tab_is_not() {
        assert!(!from_before_restart(Some(S), None, open(&[S]), open(&[])));
        assert!(!from_before_restart(
            Some(S),
            Some(T),
            open(&[S]),
            open(&[T])
        ));
        // The app gave the tab another session meanwhile: its token still names it.
        assert!(!from_before_restart(
            Some(S),
            Some(T),
            open(&[]),
            open(&[T])
        ));
    }
}
