//! `[browser]` as written: the page script's settings and every text people see.

use serde::{Deserialize, Serialize};

/// `[browser]`: the script idlegate adds to the app's pages.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBrowser {
    /// Add idlegate's script (`<base>/_idlegate/client.js`, an external script, so a
    /// `script-src 'self'` policy allows it) to every HTML page of the app. It reports a
    /// person's input (pointer, keys, wheel, touch, a file picked) while the tab is visible, reports
    /// when the tab is hidden, shows the warning before a tab ends and the ended screen after.
    /// With `false` the page is left exactly as the app sent it and tabs still end on time
    /// from what the server sees, without a warning. Default `true`.
    pub inject: bool,
    /// The script reports input at most once per this interval (and at once after a quiet
    /// period). It is shortened to a quarter of the shortest of `tabs.idle_timeout` and
    /// `tabs.hidden_timeout` when those are short. Between 1s and 5m. Default `"15s"`.
    pub report_interval: String,
    /// Every text people see from idlegate, for translation.
    pub texts: RawTexts,
}

/// `[browser.texts]`: what the warning and the ended page say.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTexts {
    /// Language of these texts (the pages' `lang` attribute). Default `"en"`.
    pub lang: String,
    /// Title of the warning. Default `"Are you still there?"`.
    pub warning_title: String,
    /// Body of the warning for an idle tab; `{countdown}` becomes the time left, like
    /// `1:45`. Default `"This session will end in {countdown} because of inactivity."`.
    pub warning_body: String,
    /// Body of the warning before `tabs.max_lifetime`, which activity cannot postpone;
    /// `{countdown}` as above. Default
    /// `"This session reaches its maximum length in {countdown}. Save your work."`.
    pub warning_lifetime_body: String,
    /// The button that keeps the session going. Default `"Keep working"`.
    pub keep_working: String,
    /// The button that closes the maximum-length warning. Default `"OK"`.
    pub dismiss: String,
    /// Title of the ended page. Default `"Session ended"`.
    pub ended_title: String,
    /// Second line of the ended page. Default `"Anything not saved in this tab is gone."`.
    pub ended_note: String,
    /// The ended page's button that opens a new session. Default `"Start a new session"`.
    pub start_new: String,
    /// Body of the warning before a signed-in person is signed out for inactivity (all their tabs); `{countdown}` as above. Default `"You will be signed out in {countdown} because of inactivity."`.
    pub warning_login_body: String,
    /// Title of the sign-in page. Default `"Sign in"`.
    pub sign_in_title: String,
    /// Label of the username field. Default `"Username"`.
    pub username: String,
    /// Label of the password field. Default `"Password"`.
    pub password: String,
    /// The sign-in button. Default `"Sign in"`.
    pub sign_in: String,
    /// Shown after a wrong username or password (the same for both). Default `"Wrong username or password."`.
    pub sign_in_failed: String,
    /// Shown when there were too many attempts. Default `"Too many attempts. Wait a minute, then try again."`.
    pub sign_in_limited: String,
    /// Shown instead of signing in while the shared store (`store.url`) cannot be reached
    /// and `store.on_unavailable` is `"refuse"`. Default `"Signing in is not possible just
    /// now. Try again in a minute."`.
    pub sign_in_unavailable: String,
    /// Shown instead of signing in when the page was opened over plain HTTP (not on the local
    /// machine) while `login.cookie_secure` is on: the browser would drop the cookie. Default
    /// `"This page was opened over plain HTTP, where the browser cannot keep the sign-in. Open
    /// it with https:// instead."`.
    pub sign_in_needs_https: String,
    /// Shown on the sign-in page after signing out. Default `"You are signed out."`.
    pub signed_out: String,
    /// Title of the sign-out page. Default `"Sign out"`.
    pub sign_out_title: String,
    /// The sign-out button. Default `"Sign out"`.
    pub sign_out: String,
    /// Title of the page a tab over `tabs.max_per_user` gets. Default `"Too many tabs"`.
    pub refused_title: String,
    /// Why a tab was not opened; `{max_per_user}` is the limit. Default `"You already have {max_per_user} tabs of this app open. Close one of them, then reload this page."`.
    pub refused_user_cap: String,
    /// Title of the page a new tab over `tabs.max_total` gets (with `tabs.on_limit =
    /// "refuse"`). Default `"The server is busy"`.
    pub busy_title: String,
    /// Why that tab was not opened. Default `"The server has as many sessions open as it can
    /// hold right now. Try again in a moment."`.
    pub busy: String,
    /// The busy page's button, which reloads the page the tab was opened on. Default `"Try
    /// again"`.
    pub try_again: String,
    /// Why a session ended, one text per end reason.
    pub reasons: RawReasonTexts,
}

/// `[browser.texts.reasons]`: the ended page's explanation for each end reason. These may
/// use `{idle_timeout}`, `{busy_timeout}`, `{hidden_timeout}`, `{max_lifetime}` and `{reconnect_grace}`, which
/// become durations in words ("30 minutes").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawReasonTexts {
    /// Reason `idle`. Default `"Your session ended after {idle_timeout} without activity."`.
    pub idle: String,
    /// Reason `busy_idle`. Default
    /// `"Your session ended because the app kept running for {busy_timeout} without anyone using this page."`.
    pub busy_idle: String,
    /// Reason `hidden_idle`. Default
    /// `"Your session ended because its tab stayed in the background without activity."`.
    pub hidden_idle: String,
    /// Reason `max_lifetime`. Default `"Your session reached its maximum length of {max_lifetime}."`.
    pub max_lifetime: String,
    /// Reason `closed`. Default
    /// `"Your session ended because the connection was lost for more than {reconnect_grace}."`.
    pub closed: String,
    /// Reason `login_expired`. Default `"You were signed out after a period of inactivity."`.
    pub login_expired: String,
    /// Reason `logout`. Default `"You signed out."`.
    pub logout: String,
    /// Reason `evicted_user_cap`. Default
    /// `"This session was closed because you opened too many tabs of this app."`.
    pub evicted_user_cap: String,
    /// Reason `evicted_capacity`. Default
    /// `"This session was closed to make room on a busy server."`.
    pub evicted_capacity: String,
    /// Reason `admin`. Default `"An administrator ended this session."`.
    pub admin: String,
    /// Reason `upstream_gone`. Default `"The app stopped, so this session ended."`.
    pub upstream_gone: String,
    /// Reason `app_restarted`. Default
    /// `"The app restarted and no longer had this session, so it could not continue."`.
    pub app_restarted: String,
    /// Reason `server_restarted`. Default
    /// `"The server restarted and no longer knows this session, so it could not continue."`.
    pub server_restarted: String,
    /// Reason `shutdown`. Default `"The server is restarting. Reload the page in a moment to
    /// start a new session."`.
    pub shutdown: String,
    /// When the reason is not known. Default `"This session has ended."`.
    pub unknown: String,
}

impl Default for RawBrowser {
    fn default() -> Self {
        Self {
            inject: true,
            report_interval: "15s".to_owned(),
            texts: RawTexts::default(),
        }
    }
}

impl Default for RawTexts {
    fn default() -> Self {
        Self {
            lang: "en".to_owned(),
            warning_title: "Are you still there?".to_owned(),
            warning_body: "This session will end in {countdown} because of inactivity.".to_owned(),
            warning_lifetime_body:
                "This session reaches its maximum length in {countdown}. Save your work.".to_owned(),
            keep_working: "Keep working".to_owned(),
            dismiss: "OK".to_owned(),
            ended_title: "Session ended".to_owned(),
            ended_note: "Anything not saved in this tab is gone.".to_owned(),
            start_new: "Start a new session".to_owned(),
            warning_login_body: "You will be signed out in {countdown} because of inactivity.".to_owned(),
            sign_in_title: "Sign in".to_owned(),
            username: "Username".to_owned(),
            password: "Password".to_owned(),
            sign_in: "Sign in".to_owned(),
            sign_in_failed: "Wrong username or password.".to_owned(),
            sign_in_limited: "Too many attempts. Wait a minute, then try again.".to_owned(),
            sign_in_unavailable: "Signing in is not possible just now. Try again in a minute."
                .to_owned(),
            sign_in_needs_https: "This page was opened over plain HTTP, where the browser \
                                  cannot keep the sign-in. Open it with https:// instead."
                .to_owned(),
            signed_out: "You are signed out.".to_owned(),
            sign_out_title: "Sign out".to_owned(),
            sign_out: "Sign out".to_owned(),
            refused_title: "Too many tabs".to_owned(),
            refused_user_cap: "You already have {max_per_user} tabs of this app open. Close one of them, then reload this page.".to_owned(),
            busy_title: "The server is busy".to_owned(),
            busy: "The server has as many sessions open as it can hold right now. Try again in \
                   a moment."
                .to_owned(),
            try_again: "Try again".to_owned(),
            reasons: RawReasonTexts::default(),
        }
    }
}

impl Default for RawReasonTexts {
    fn default() -> Self {
        Self {
            idle: "Your session ended after {idle_timeout} without activity.".to_owned(),
            busy_idle: "Your session ended because the app kept running for {busy_timeout} without anyone using this page.".to_owned(),
            hidden_idle:
                "Your session ended because its tab stayed in the background without activity."
                    .to_owned(),
            max_lifetime: "Your session reached its maximum length of {max_lifetime}.".to_owned(),
            closed:
                "Your session ended because the connection was lost for more than {reconnect_grace}."
                    .to_owned(),
            login_expired: "You were signed out after a period of inactivity.".to_owned(),
            logout: "You signed out.".to_owned(),
            evicted_user_cap:
                "This session was closed because you opened too many tabs of this app.".to_owned(),
            evicted_capacity: "This session was closed to make room on a busy server.".to_owned(),
            admin: "An administrator ended this session.".to_owned(),
            upstream_gone: "The app stopped, so this session ended.".to_owned(),
            app_restarted:
                "The app restarted and no longer had this session, so it could not continue."
                    .to_owned(),
            server_restarted:
                "The server restarted and no longer knows this session, so it could not continue."
                    .to_owned(),
            shutdown: "The server is restarting. Reload the page in a moment to start a new session."
                .to_owned(),
            unknown: "This session has ended.".to_owned(),
        }
    }
}
