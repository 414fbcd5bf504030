//! The configuration as written: raw serde structs for the TOML file, `IDLEGATE_*` environment
//! variables and command-line flags.
//!
//! Values here are unchecked strings and numbers with their documented defaults. Nothing outside
//! [`crate::config`] may use these types: [`super::Config::from_raw`] validates them into the
//! typed [`super::Config`] and names the key of any bad value. Every field's doc comment is the
//! user-facing reference for that key (`docs/configuration.md` is tested against this file).

use serde::{Deserialize, Serialize};

/// Top level of the config file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Address and port idlegate listens on for browsers. Default `"127.0.0.1:8080"`.
    /// In a container use `"0.0.0.0:8080"`.
    pub listen: String,
    /// URL of an app that is already running, like `"http://127.0.0.1:8501"`. Only `http://`
    /// with host and port; any path is ignored (use `app.base_path`). Leave unset when idlegate
    /// starts the app itself (`idlegate -- streamlit run app.py`). Default: unset.
    pub upstream: Option<String>,
    /// Limits for each browser tab's app session.
    pub tabs: RawTabs,
    /// What kind of app is behind idlegate and how it is set up.
    pub app: RawApp,
    /// How requests are relayed.
    pub proxy: RawProxy,
    /// Starting the app as a child process (`idlegate [options] -- COMMAND`).
    pub launcher: RawLauncher,
    /// Log output.
    pub log: RawLog,
    /// What idlegate adds to the app's pages in the browser.
    pub browser: RawBrowser,
}

/// `[tabs]`: limits for each tab session.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTabs {
    /// A tab session with no human activity for this long is ended. Activity is a person's input
    /// (a widget change, a button, a page switch, an upload), never pings, timers or reconnects.
    /// `"off"` or `"0"` disables it. Default `"30m"`.
    pub idle_timeout: String,
    /// A tab session is ended this long after it started, whatever its activity. `"off"` or
    /// `"0"` disables it. Default `"12h"`.
    pub max_lifetime: String,
    /// When `false`, a tab whose app is running a script the person started (a long
    /// computation) is not ended for idleness while it runs; the idle time counts again from the
    /// end of the run. `max_lifetime` always applies. Default `false`.
    pub end_while_running: bool,
    /// How long a tab whose browser connection dropped may reconnect and resume its app
    /// session (a network blip, a laptop waking up). After that the session ends with reason
    /// `closed` and the app frees its memory. Must be at least 2 seconds shorter than
    /// `app.disconnected_session_ttl`. Default `"15s"`.
    pub reconnect_grace: String,
    /// How long before a tab ends the browser shows a warning with a countdown and a "Keep
    /// working" button (needs `browser.inject`). At least `"20s"`, so people have time to
    /// react (WCAG 2.2.1), and shorter than `idle_timeout`. `"off"` shows no warning. When
    /// unset: `"2m"`, or half of `idle_timeout` when that is shorter, and no warning when that
    /// half is under 20 seconds. Default: unset.
    pub warn_before: Option<String>,
    /// How long a tab may sit hidden (another tab or window in front of it) without activity
    /// before it ends with reason `hidden_idle`, so background tabs can be reclaimed sooner
    /// than the one a person is looking at. Counts from the later of the last activity and the
    /// moment the tab was hidden. Needs `browser.inject` (the page reports its visibility).
    /// `"off"` disables it. When unset it equals `idle_timeout`. Default: unset.
    pub hidden_timeout: Option<String>,
}

/// `[app]`: the app behind idlegate.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawApp {
    /// The app framework. Only `"streamlit"` for now. Default `"streamlit"`.
    pub kind: String,
    /// URL path prefix the app is served under (Streamlit's `server.baseUrlPath`), like
    /// `"/analytics"`. idlegate's own pages are served under it too (`<base>/_idlegate/…`).
    /// The launcher passes it to Streamlit; with `upstream`, set it to the app's value.
    /// Default `""` (the root).
    pub base_path: String,
    /// How long the app keeps the state of a tab whose connection closed (Streamlit's
    /// `server.disconnectedSessionTTL`). idlegate makes the app free an ended session's memory
    /// right after this much time. The launcher passes it to Streamlit; with `upstream`, start
    /// Streamlit with `--server.disconnectedSessionTTL` set to the same number of seconds.
    /// Whole seconds. Default `"20s"`.
    pub disconnected_session_ttl: String,
}

/// `[proxy]`: request relaying.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawProxy {
    /// Largest request head (request line plus headers) accepted from a browser, in bytes.
    /// Larger heads get status 431. At least 8192. Default `65536`.
    pub max_header_bytes: u64,
    /// How long a browser may take to send a request head before the connection is closed.
    /// Default `"30s"`.
    pub header_read_timeout: String,
    /// How long to wait for a TCP connection to the app. Default `"5s"`.
    pub connect_timeout: String,
    /// Largest app message accepted from a browser over the app's WebSocket, in bytes; larger
    /// frames close that connection. Default `209715200` (200 MiB, Streamlit's own limit).
    pub max_message_bytes: u64,
    /// Addresses or CIDR ranges of proxies in front of idlegate (an ingress controller) whose
    /// `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` are kept and extended.
    /// From any other peer those headers are replaced. Default `[]`.
    pub trusted_proxies: Vec<String>,
}

/// `[launcher]`: the app as a child process.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLauncher {
    /// How long the app may take to answer its health check after it is started.
    /// Default `"60s"`.
    pub startup_timeout: String,
    /// After idlegate forwards SIGTERM or SIGINT, how long the app may take to exit before it is
    /// killed. Default `"10s"`.
    pub shutdown_timeout: String,
    /// After the app dropped ended sessions, ask its Python runtime for a full garbage
    /// collection, so a session caught in a reference cycle is freed even when no other
    /// session runs a script. Works by putting a small `sitecustomize` module on the app's
    /// `PYTHONPATH` that handles SIGUSR1; idlegate only signals the app once that module
    /// confirmed it is in place. Default `true`.
    pub collect_garbage: bool,
}

/// `[log]`: log output.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// `"text"` for people, `"json"` for log collectors (one JSON object per line).
    /// Default `"text"`.
    pub format: String,
    /// Minimum level, or a filter in `RUST_LOG` syntax (`"info,idlegate=debug"`).
    /// Default `"info"`.
    pub level: String,
}

/// `[browser]`: the script idlegate adds to the app's pages.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBrowser {
    /// Add idlegate's script (`<base>/_idlegate/client.js`, an external script, so a
    /// `script-src 'self'` policy allows it) to every HTML page of the app. It reports a
    /// person's input (pointer, keys, wheel, touch, focus) while the tab is visible, reports
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
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
    /// Why a session ended, one text per end reason.
    pub reasons: RawReasonTexts,
}

/// `[browser.texts.reasons]`: the ended page's explanation for each end reason. These may
/// use `{idle_timeout}`, `{hidden_timeout}`, `{max_lifetime}` and `{reconnect_grace}`, which
/// become durations in words ("30 minutes").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawReasonTexts {
    /// Reason `idle`. Default `"Your session ended after {idle_timeout} without activity."`.
    pub idle: String,
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
    /// Reason `shutdown`. Default `"The server restarted, so this session ended."`.
    pub shutdown: String,
    /// When the reason is not known. Default `"This session has ended."`.
    pub unknown: String,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            upstream: None,
            tabs: RawTabs::default(),
            app: RawApp::default(),
            proxy: RawProxy::default(),
            launcher: RawLauncher::default(),
            log: RawLog::default(),
            browser: RawBrowser::default(),
        }
    }
}

impl Default for RawTabs {
    fn default() -> Self {
        Self {
            idle_timeout: "30m".to_owned(),
            max_lifetime: "12h".to_owned(),
            end_while_running: false,
            reconnect_grace: "15s".to_owned(),
            warn_before: None,
            hidden_timeout: None,
        }
    }
}

impl Default for RawApp {
    fn default() -> Self {
        Self {
            kind: "streamlit".to_owned(),
            base_path: String::new(),
            disconnected_session_ttl: "20s".to_owned(),
        }
    }
}

impl Default for RawProxy {
    fn default() -> Self {
        Self {
            max_header_bytes: 65_536,
            header_read_timeout: "30s".to_owned(),
            connect_timeout: "5s".to_owned(),
            max_message_bytes: 200 * 1024 * 1024,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for RawLauncher {
    fn default() -> Self {
        Self {
            startup_timeout: "60s".to_owned(),
            shutdown_timeout: "10s".to_owned(),
            collect_garbage: true,
        }
    }
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: "text".to_owned(),
            level: "info".to_owned(),
        }
    }
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
            reasons: RawReasonTexts::default(),
        }
    }
}

impl Default for RawReasonTexts {
    fn default() -> Self {
        Self {
            idle: "Your session ended after {idle_timeout} without activity.".to_owned(),
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
            shutdown: "The server restarted, so this session ended.".to_owned(),
            unknown: "This session has ended.".to_owned(),
        }
    }
}
