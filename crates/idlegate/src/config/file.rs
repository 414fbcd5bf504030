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
