//! The configuration as written: raw serde structs for the TOML file, `IDLEGATE_*` environment
//! variables and command-line flags.
//!
//! Values here are unchecked strings and numbers with their documented defaults. Nothing outside
//! [`crate::config`] may use these types: [`super::Config::from_raw`] validates them into the
//! typed [`super::Config`] and names the key of any bad value. Every field's doc comment is the
//! user-facing reference for that key (`docs/configuration.md` is tested against this file).

mod admin;
mod audit;
mod browser;
mod limits;
mod store;

use serde::{Deserialize, Serialize};

pub use admin::RawAdmin;
pub use audit::RawAudit;
pub use browser::{RawBrowser, RawReasonTexts, RawTexts};
pub use limits::RawLimits;
pub use store::RawStore;

/// Top level of the config file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Address and port idlegate listens on for browsers. Default `"127.0.0.1:8080"`.
    /// In a container use `"0.0.0.0:8080"`.
    pub listen: String,
    /// URL of an app that is already running, like `"http://127.0.0.1:8501"`. Only `http://`
    /// with host and port; a path is the app's base path (`http://127.0.0.1:8501/analytics` is `app.base_path = "/analytics"`). Leave unset when idlegate
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
    /// Signing in, and signing out after inactivity across all tabs.
    pub login: RawLogin,
    /// Bounds on connections, sign-in attempts, password checks and page rewrites.
    pub limits: RawLimits,
    /// The operators' listener: the API, the admin page and Prometheus metrics.
    pub admin: RawAdmin,
    /// The audit log.
    pub audit: RawAudit,
    /// Stopping on SIGTERM or SIGINT.
    pub shutdown: RawShutdown,
    /// Memory pressure on the app.
    pub capacity: RawCapacity,
    /// Where the state several replicas share is kept.
    pub store: RawStore,
}

/// `[capacity]`: ending tabs when the app's memory runs high.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCapacity {
    /// Memory high water mark: above it, tabs end with reason `evicted_capacity` (the one
    /// left alone longest first, never a busy tab while an idle one is left, nor one used in
    /// the last minute while another is left) until memory is below `memory_low`. An amount
    /// (`"2GiB"`, `"1500MB"`, bytes) or a share of the memory limit of idlegate's container
    /// (`"85%"` of its cgroup's `memory.max`). Default: unset (off).
    pub memory_high: Option<String>,
    /// Memory low water mark, where ending tabs stops; below `memory_high`, in the same
    /// forms. Default: unset, 90% of `memory_high`.
    pub memory_low: Option<String>,
    /// What is measured: `"app"` the resident memory of the app's processes (idlegate
    /// starts the app), `"cgroup"` the working set of idlegate's container (`memory.current`
    /// less `inactive_file`, as Kubernetes counts it; the app shares the container when
    /// idlegate starts it), `"auto"` the container when it has a memory limit, else the app.
    /// Default `"auto"`.
    pub measure: String,
    /// How often memory is measured. Default `"2s"`.
    pub check_every: String,
}

impl Default for RawCapacity {
    fn default() -> Self {
        Self {
            memory_high: None,
            memory_low: None,
            measure: "auto".to_owned(),
            check_every: "2s".to_owned(),
        }
    }
}

/// `[shutdown]`: stopping on SIGTERM or SIGINT.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawShutdown {
    /// After SIGTERM (or SIGINT), how long open tabs keep working before they end with reason
    /// `shutdown` (their pages say the server is restarting). Meanwhile readiness fails, so a
    /// load balancer stops sending new people, and new tabs are refused; it ends early once no
    /// tab is open, or at a second signal. Keep it under the pod's
    /// `terminationGracePeriodSeconds` (30 s by default) minus the app's stop time. `"0"` ends
    /// tabs at once. Default `"25s"`.
    pub grace: String,
}

impl Default for RawShutdown {
    fn default() -> Self {
        Self {
            grace: "25s".to_owned(),
        }
    }
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
    /// How long a running script (or an upload) may hold off the idle limit after the last
    /// human activity, so a run nobody waits for (a `while True` live loop, a page that
    /// refreshes itself forever) still ends, with reason `busy_idle`. Not shorter than
    /// `idle_timeout`. `"off"` lets a run hold a tab until `max_lifetime`. When unset:
    /// `"1h"`, or `idle_timeout` when that is longer. Default: unset.
    pub busy_timeout: Option<String>,
    /// How long a tab whose browser connection dropped may reconnect and resume its app
    /// session (a network blip, a laptop waking up). After that the session ends with reason
    /// `closed` and the app frees its memory. With a shared `store.url`, also how long a tab
    /// a stopping idlegate handed over waits for its page to reconnect to the next one. Must
    /// be at least 2 seconds shorter than `app.disconnected_session_ttl`. Default `"15s"`.
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
    /// At most this many open tabs per signed-in user (needs `login.mode`). `0` means no
    /// limit. Default `0`.
    pub max_per_user: u32,
    /// At most this many open tabs on this server, for everyone together. `0` means no
    /// limit. Default `0`.
    pub max_total: u32,
    /// What happens to a new tab over `max_per_user` or `max_total`:
    /// `"end_least_recently_active"` ends the tab that went longest without a person's
    /// activity (the user's own for `max_per_user`, anyone's for `max_total`), never a busy
    /// one before an idle one, nor one a person used in the last minute while another is
    /// left; `"end_oldest"` ends the oldest such tab; either way that tab shows the ended
    /// page (reason `evicted_user_cap` or `evicted_capacity`). `"refuse"` sends the new tab
    /// to a page saying why it was not opened (for `max_total`: "the server is busy", with
    /// `Retry-After`). Default `"end_least_recently_active"`.
    pub on_limit: String,
    /// How long an ended tab is remembered, so that its page, coming back (a reconnect after
    /// a laptop slept, a reload, the back button), shows why it ended instead of starting
    /// over. At most 100,000 ended ids are remembered (about 13 MiB), the oldest forgotten
    /// first. Default `"1h"`.
    pub ended_notice_ttl: String,
}

/// `[app]`: the app behind idlegate.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawApp {
    /// The app framework: `"streamlit"`, `"shiny"`, `"panel"`, `"bokeh"`, or `"auto"`: the
    /// launcher's command tells (`streamlit run …`, `shiny run …`, `panel serve …`, `bokeh
    /// serve …`); Streamlit with `upstream`. Default `"auto"`.
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
    /// How long a browser may take to send a request head before the connection is closed,
    /// and the body of a request idlegate reads whole for its session id (408 after).
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

/// `[login]`: who may use the app, and for how long without activity.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLogin {
    /// `"none"` (anyone may use the app), `"password"` (a users file), `"oidc"` (an OpenID
    /// provider, see `[login.oidc]`), or `"header"` (an authenticating proxy in front of
    /// idlegate, such as oauth2-proxy, sets the identity headers; only requests from
    /// `proxy.trusted_proxies` are believed). Default `"none"`.
    pub mode: String,
    /// A person is signed out after this long without activity in any of their tabs; every
    /// tab of theirs ends with reason `login_expired` and the next page load shows the sign-in
    /// page. Activity in any tab refreshes it. Default `"30m"` (NIST SP 800-63B, AAL2).
    pub idle_timeout: String,
    /// A person is signed out this long after signing in, whatever their activity. `"off"`
    /// disables it. Default `"12h"`.
    pub max_lifetime: String,
    /// Password mode: a file with one `name:hash` line per user, the hash an Argon2id PHC
    /// string as printed by `idlegate hash-password`. Lines starting with `#` are comments.
    /// Read at start. Default: unset.
    pub users_file: Option<String>,
    /// A file with the keys that sign the login cookie: one base64 key of at least 32 bytes
    /// per line, newest first. The newest signs; all are accepted, so keys can be rotated by
    /// adding a new first line. When unset, a random key is made at start (sign-ins then end
    /// with the process, as they would anyway without a shared store). Default: unset.
    pub cookie_keys_file: Option<String>,
    /// Mark the login cookie `Secure` and name it with the `__Host-` prefix. `false` is only
    /// allowed when `listen` is a loopback address (plain-HTTP local use). Default `true`.
    pub cookie_secure: bool,
    /// Sign-in attempts allowed per minute, per client address and per username; more get
    /// status 429. Default `10`.
    pub attempts_per_minute: u32,
    /// Header that names the signed-in user to the app (and, in header mode, to idlegate).
    /// Copies sent by browsers are always removed. Default `"X-Forwarded-User"`.
    pub user_header: String,
    /// Header with the user's display name (OpenID: `preferred_username`, else `name`; else
    /// the user's key). Default `"X-Forwarded-Preferred-Username"`.
    pub name_header: String,
    /// Header with the user's email, if known. Default `"X-Forwarded-Email"`.
    pub email_header: String,
    /// Header with the user's groups, comma-separated. Default `"X-Forwarded-Groups"`.
    pub groups_header: String,
    /// Header mode: the identity headers the proxy in front sets itself on every request,
    /// replacing any copy a browser sent: `"user"` (always), `"email"`, `"groups"`. Only
    /// these are read from it; a browser's copy of any other is dropped, since a proxy that
    /// does not set a header passes the browser's on. Default `["user"]`.
    pub proxy_headers: Vec<String>,
    /// Header mode: the authenticating proxy's sign-out URL (oauth2-proxy:
    /// `"/oauth2/sign_out?rd=/"`), a path on this host or an `https://` URL. After a person
    /// signs out, or their login expires, their browser is sent there before idlegate
    /// accepts a new login for them, so the proxy asks them to authenticate again. Unset: the
    /// proxy's own session decides, and the next request starts a new login for whoever it
    /// names. Default: unset.
    pub sign_out_url: Option<String>,
    /// OpenID Connect sign-in (`mode = "oidc"`).
    pub oidc: RawOidc,
}

/// `[login.oidc]`: signing in with an OpenID provider (Keycloak, Microsoft Entra ID, Google,
/// Dex, …): the authorization code flow with PKCE, state and nonce.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOidc {
    /// The provider's issuer URL; its `/.well-known/openid-configuration` is read on the
    /// first sign-in (and again after a failure). Default: unset.
    pub issuer: Option<String>,
    /// The client id registered with the provider. Default: unset.
    pub client_id: Option<String>,
    /// A file holding the client secret (trailing whitespace ignored). Default: unset.
    pub client_secret_file: Option<String>,
    /// The client secret itself, for setting through `IDLEGATE_LOGIN__OIDC__CLIENT_SECRET`
    /// (prefer `client_secret_file` in files). Never logged. Default: unset.
    pub client_secret: Option<String>,
    /// Where the provider sends people back: `https://HOST/<base>/_idlegate/oidc/callback`,
    /// registered with the provider. When unset it is built from the request's host (and
    /// `X-Forwarded-Proto` from a trusted proxy). Default: unset.
    pub redirect_url: Option<String>,
    /// Scopes to ask for. Default `["openid", "email", "profile"]`.
    pub scopes: Vec<String>,
    /// ID token claim that is the user's key (per-user limits, sign-out everywhere, the
    /// user identity header): stable and unique. No fallback: a token without it is refused.
    /// `"email"` is taken only when `email_verified` is true. Default `"sub"` (OpenID Connect
    /// Core §2: never reassigned within the issuer).
    pub user_claim: String,
    /// ID token claim with the user's groups (a list of strings). Default `"groups"`.
    pub groups_claim: String,
    /// When to ask the provider to authenticate the person again rather than sign them in
    /// from its own single sign-on session (`prompt=login` and `max_age=0`):
    /// `"after_sign_out"` (after they signed out or their login expired), `"always"`, or
    /// `"never"`. Default `"after_sign_out"`.
    pub reauthenticate: String,
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
            login: RawLogin::default(),
            limits: RawLimits::default(),
            admin: RawAdmin::default(),
            audit: RawAudit::default(),
            shutdown: RawShutdown::default(),
            capacity: RawCapacity::default(),
            store: RawStore::default(),
        }
    }
}

impl Default for RawLogin {
    fn default() -> Self {
        Self {
            mode: "none".to_owned(),
            idle_timeout: "30m".to_owned(),
            max_lifetime: "12h".to_owned(),
            users_file: None,
            cookie_keys_file: None,
            cookie_secure: true,
            attempts_per_minute: 10,
            user_header: "X-Forwarded-User".to_owned(),
            email_header: "X-Forwarded-Email".to_owned(),
            groups_header: "X-Forwarded-Groups".to_owned(),
            name_header: "X-Forwarded-Preferred-Username".to_owned(),
            proxy_headers: vec!["user".to_owned()],
            sign_out_url: None,
            oidc: RawOidc::default(),
        }
    }
}

impl Default for RawOidc {
    fn default() -> Self {
        Self {
            issuer: None,
            client_id: None,
            client_secret_file: None,
            client_secret: None,
            redirect_url: None,
            scopes: ["openid", "email", "profile"].map(str::to_owned).to_vec(),
            user_claim: "sub".to_owned(),
            groups_claim: "groups".to_owned(),
            reauthenticate: "after_sign_out".to_owned(),
        }
    }
}

impl Default for RawTabs {
    fn default() -> Self {
        Self {
            idle_timeout: "30m".to_owned(),
            max_lifetime: "12h".to_owned(),
            end_while_running: false,
            busy_timeout: None,
            reconnect_grace: "15s".to_owned(),
            warn_before: None,
            hidden_timeout: None,
            max_per_user: 0,
            max_total: 0,
            on_limit: "end_least_recently_active".to_owned(),
            ended_notice_ttl: "1h".to_owned(),
        }
    }
}

impl Default for RawApp {
    fn default() -> Self {
        Self {
            kind: "auto".to_owned(),
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
