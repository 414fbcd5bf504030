//! Configuration: loading from file, environment and flags, and validation into typed values.
//!
//! Precedence, lowest first: built-in defaults, the TOML file (`--config`), `IDLEGATE_*`
//! environment variables (nested keys joined by `__`, e.g. `IDLEGATE_TABS__IDLE_TIMEOUT=15m`),
//! then command-line flags. [`Config::load`] merges them and [`Config::from_raw`] turns the
//! result into [`Config`]; every error names the key. Domain code only sees [`Config`].
//! This module never reads the process environment itself: callers pass it in, so tests
//! inject their own.

mod browser;
mod duration;
pub mod file;
pub mod login;
mod tabs;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::Figment;
use ipnet::IpNet;

pub use browser::{fill as fill_placeholders, BrowserConfig, ReasonTexts, Texts, MIN_WARNING};
pub use duration::{config_syntax, human as human_duration};
pub use file::RawConfig;
pub use login::{CookieKey, IdentityHeaders, LoginConfig, LoginMode, OidcConfig};

/// Prefix of environment variables that set config keys.
pub const ENV_PREFIX: &str = "IDLEGATE_";

/// A config key with a bad value, or a config source that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key has a value that does not fit.
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
    /// The sources could not be merged or a value has the wrong type.
    #[error("{0}")]
    Source(String),
}

impl ConfigError {
    fn invalid(key: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    /// The key the error is about, if it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Invalid { key, .. } => Some(key),
            Self::Source(_) => None,
        }
    }
}

/// Where configuration comes from. Each layer overrides the one before.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// A TOML config file.
    pub file: Option<PathBuf>,
    /// TOML text, used by tests and embedders instead of (or on top of) a file.
    pub toml: Option<String>,
    /// Environment variables; only those starting with [`ENV_PREFIX`] are used.
    pub env: Vec<(String, String)>,
    /// Values of command-line flags, as `(dotted.key, value)` pairs.
    pub flags: Vec<(&'static str, String)>,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where browsers connect.
    pub listen: SocketAddr,
    /// The app, when it is already running. `None` until the launcher has started it.
    pub upstream: Option<Upstream>,
    pub tabs: TabPolicy,
    pub app: AppConfig,
    pub proxy: ProxyConfig,
    pub launcher: LauncherConfig,
    pub log: LogConfig,
    pub browser: BrowserConfig,
    pub login: LoginConfig,
}

/// Limits for each tab session (see [`file::RawTabs`] for their meaning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TabPolicy {
    pub idle_timeout: Option<Duration>,
    pub max_lifetime: Option<Duration>,
    pub end_while_running: bool,
    /// How long a run the person waits for (or an upload) may hold the idle limit off after
    /// the last activity; `None`: without bound.
    pub busy_timeout: Option<Duration>,
    pub reconnect_grace: Duration,
    /// The limit for a hidden tab; `None` when off.
    pub hidden_timeout: Option<Duration>,
    /// How long before a deadline the browser warns; `None` for no warning.
    pub warn_before: Option<Duration>,
    /// A signed-in person's limits (from `[login]`); `None` when nobody signs in.
    pub login_idle_timeout: Option<Duration>,
    pub login_max_lifetime: Option<Duration>,
    /// At most this many open tabs per signed-in user.
    pub max_per_user: Option<usize>,
    /// What happens to a tab over `max_per_user`.
    pub on_limit: OnLimit,
}

impl TabPolicy {
    /// A policy for tests: idle and lifetime limits in seconds, everything else off or at
    /// its default.
    #[cfg(test)]
    pub(crate) fn for_tests(idle_secs: u64, lifetime_secs: u64) -> Self {
        Self {
            idle_timeout: Some(Duration::from_secs(idle_secs)),
            max_lifetime: Some(Duration::from_secs(lifetime_secs)),
            end_while_running: false,
            busy_timeout: None,
            reconnect_grace: Duration::from_secs(15),
            hidden_timeout: None,
            warn_before: None,
            login_idle_timeout: None,
            login_max_lifetime: None,
            max_per_user: None,
            on_limit: OnLimit::EndOldest,
        }
    }
}

/// What a tab over the per-user limit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLimit {
    /// The user's oldest tab ends (reason `evicted_user_cap`).
    EndOldest,
    /// The new tab is refused with a page that says why.
    Refuse,
}

/// Supported app frameworks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    Streamlit,
}

/// The app behind idlegate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    pub kind: AppKind,
    /// `""` or a path like `"/analytics"` (leading slash, no trailing slash).
    pub base_path: String,
    pub disconnected_session_ttl: Duration,
}

/// Relaying settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_message_bytes: u64,
    pub trusted_proxies: Vec<IpNet>,
}

impl ProxyConfig {
    /// Whether forwarding headers from this peer are believed.
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(peer),
            v4 => v4,
        };
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }
}

/// Child-process settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LauncherConfig {
    pub startup_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub collect_garbage: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Log settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

/// An `http://host:port` address of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
}

impl Upstream {
    /// Parses `http://host:port[/…]`.
    pub fn parse(value: &str) -> Result<Self, String> {
        let uri: http::Uri = value
            .parse()
            .map_err(|_| format!("{value:?} is not a URL like \"http://127.0.0.1:8501\""))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "{value:?} uses {other}://; only http:// upstreams are supported"
                ))
            }
            None => return Err(format!("{value:?} needs a scheme, like \"http://{value}\"")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{value:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("{value:?} must not contain credentials"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        Ok(Self {
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(80),
        })
    }

    /// `host:port`, bracketing IPv6 addresses.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority())
    }
}

impl Config {
    /// Merges the sources (defaults < file < env < flags) and validates the result.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        Self::from_raw(Self::merge(sources)?)
    }

    /// Parses TOML text on top of the defaults; a shortcut for tests and embedders.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::load(&Sources {
            toml: Some(text.to_owned()),
            ..Sources::default()
        })
    }

    /// Merges the sources into the raw, unvalidated form.
    pub fn merge(sources: &Sources) -> Result<RawConfig, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
        if let Some(path) = &sources.file {
            if !path.is_file() {
                return Err(ConfigError::Source(format!(
                    "config file {} does not exist or is not a file",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        if let Some(text) = &sources.toml {
            figment = figment.merge(Toml::string(text));
        }
        figment = figment.merge(Layer {
            name: "environment variables",
            values: env_dict(&sources.env)?,
        });
        let mut flags = Dict::new();
        for (key, value) in &sources.flags {
            insert_path(&mut flags, key, Value::from(value.clone()));
        }
        figment = figment.merge(Layer {
            name: "command-line flags",
            values: flags,
        });
        figment
            .extract::<RawConfig>()
            .map_err(describe_figment_error)
    }

    /// Validates raw values into typed ones, naming the key of the first bad value.
    pub fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        let listen = raw.listen.parse::<SocketAddr>().map_err(|_| {
            ConfigError::invalid(
                "listen",
                format!(
                    "{:?} is not an address like \"127.0.0.1:8080\" or \"0.0.0.0:8080\"",
                    raw.listen
                ),
            )
        })?;
        let upstream = raw
            .upstream
            .as_deref()
            .map(Upstream::parse)
            .transpose()
            .map_err(|reason| ConfigError::invalid("upstream", reason))?;

        let idle_timeout = optional_duration("tabs.idle_timeout", &raw.tabs.idle_timeout)?;
        let login = login::login(&raw.login, listen)?;
        let max_per_user = match raw.tabs.max_per_user {
            0 => None,
            n => Some(n as usize),
        };
        let on_limit = match raw.tabs.on_limit.as_str() {
            "end_oldest" => OnLimit::EndOldest,
            "refuse" => OnLimit::Refuse,
            other => {
                return Err(ConfigError::invalid(
                    "tabs.on_limit",
                    format!("{other:?} is not \"end_oldest\" or \"refuse\""),
                ))
            }
        };
        if max_per_user.is_some() && !login.enabled() {
            return Err(ConfigError::invalid(
                "tabs.max_per_user",
                "needs people to sign in (login.mode) to know whose tabs they are",
            ));
        }
        let tabs = TabPolicy {
            idle_timeout,
            max_lifetime: optional_duration("tabs.max_lifetime", &raw.tabs.max_lifetime)?,
            end_while_running: raw.tabs.end_while_running,
            busy_timeout: tabs::busy_timeout(&raw.tabs, idle_timeout)?,
            reconnect_grace: required_duration("tabs.reconnect_grace", &raw.tabs.reconnect_grace)?,
            hidden_timeout: browser::hidden_timeout(&raw.tabs, idle_timeout)?,
            warn_before: browser::warn_before(&raw.tabs, idle_timeout)?,
            login_idle_timeout: login.enabled().then_some(login.idle_timeout),
            login_max_lifetime: login.max_lifetime.filter(|_| login.enabled()),
            max_per_user,
            on_limit,
        };
        let browser = browser::browser(&raw.browser, &[tabs.idle_timeout, tabs.hidden_timeout])?;

        let kind = match raw.app.kind.as_str() {
            "streamlit" => AppKind::Streamlit,
            other => {
                return Err(ConfigError::invalid(
                    "app.kind",
                    format!("{other:?} is not supported; the supported kind is \"streamlit\""),
                ))
            }
        };
        let mut base_path = normalize_base_path(&raw.app.base_path)
            .map_err(|reason| ConfigError::invalid("app.base_path", reason))?;
        // An upstream URL with a path names the app's base path.
        if let Some(path) = raw.upstream.as_deref().and_then(upstream_path) {
            let path = normalize_base_path(&path)
                .map_err(|reason| ConfigError::invalid("upstream", reason))?;
            match (base_path.is_empty(), path.is_empty()) {
                (_, true) => {}
                (true, false) => base_path = path,
                (false, false) if path == base_path => {}
                (false, false) => {
                    return Err(ConfigError::invalid(
                        "upstream",
                        format!(
                            "its path {path:?} is not app.base_path ({base_path:?}); give the \
                             app's base path once, in either"
                        ),
                    ))
                }
            }
        }
        let ttl = required_duration(
            "app.disconnected_session_ttl",
            &raw.app.disconnected_session_ttl,
        )?;
        if ttl.subsec_nanos() != 0 {
            return Err(ConfigError::invalid(
                "app.disconnected_session_ttl",
                "must be whole seconds (Streamlit's setting is in seconds)",
            ));
        }
        if tabs.reconnect_grace + Duration::from_secs(2) > ttl {
            return Err(ConfigError::invalid(
                "tabs.reconnect_grace",
                format!(
                    "{} must be at least 2s shorter than app.disconnected_session_ttl ({}), \
                     or the app forgets a session before its tab may come back",
                    config_syntax(tabs.reconnect_grace),
                    config_syntax(ttl)
                ),
            ));
        }

        let max_header_bytes = usize::try_from(raw.proxy.max_header_bytes)
            .ok()
            .filter(|n| (8192..=16 * 1024 * 1024).contains(n))
            .ok_or_else(|| {
                ConfigError::invalid(
                    "proxy.max_header_bytes",
                    format!(
                        "{} is out of range; use 8192 to 16777216",
                        raw.proxy.max_header_bytes
                    ),
                )
            })?;
        if raw.proxy.max_message_bytes < 1024 {
            return Err(ConfigError::invalid(
                "proxy.max_message_bytes",
                format!(
                    "{} is too small; use at least 1024",
                    raw.proxy.max_message_bytes
                ),
            ));
        }
        let trusted_proxies = raw
            .proxy
            .trusted_proxies
            .iter()
            .map(|entry| parse_net(entry))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| ConfigError::invalid("proxy.trusted_proxies", reason))?;
        let proxy = ProxyConfig {
            max_header_bytes,
            header_read_timeout: required_duration(
                "proxy.header_read_timeout",
                &raw.proxy.header_read_timeout,
            )?,
            connect_timeout: required_duration(
                "proxy.connect_timeout",
                &raw.proxy.connect_timeout,
            )?,
            max_message_bytes: raw.proxy.max_message_bytes,
            trusted_proxies,
        };

        let launcher = LauncherConfig {
            startup_timeout: required_duration(
                "launcher.startup_timeout",
                &raw.launcher.startup_timeout,
            )?,
            shutdown_timeout: required_duration(
                "launcher.shutdown_timeout",
                &raw.launcher.shutdown_timeout,
            )?,
            collect_garbage: raw.launcher.collect_garbage,
        };

        let format = match raw.log.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::invalid(
                    "log.format",
                    format!("{other:?} is not \"text\" or \"json\""),
                ))
            }
        };
        if raw.log.level.trim().is_empty() {
            return Err(ConfigError::invalid(
                "log.level",
                "is empty; use e.g. \"info\"",
            ));
        }
        let log = LogConfig {
            format,
            level: raw.log.level,
        };

        Ok(Self {
            listen,
            upstream,
            tabs,
            app: AppConfig {
                kind,
                base_path,
                disconnected_session_ttl: ttl,
            },
            proxy,
            launcher,
            log,
            browser,
            login,
        })
    }
}

fn required_duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    let parsed = duration::parse(value).map_err(|reason| ConfigError::invalid(key, reason))?;
    if parsed.is_zero() {
        return Err(ConfigError::invalid(key, "must be longer than zero"));
    }
    Ok(parsed)
}

fn optional_duration(key: &str, value: &str) -> Result<Option<Duration>, ConfigError> {
    duration::parse_optional(value).map_err(|reason| ConfigError::invalid(key, reason))
}

fn parse_net(entry: &str) -> Result<IpNet, String> {
    let entry = entry.trim();
    if let Ok(net) = entry.parse::<IpNet>() {
        return Ok(net);
    }
    entry
        .parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{entry:?} is not an IP address or CIDR range like \"10.0.0.0/8\""))
}

/// `"analytics/"` → `"/analytics"`; `"/"` and `""` → `""`.
/// `"analytics"`, `"/analytics/"` → `"/analytics"`; `""` or `"/"` → `""`.
pub fn normalize_base_path(value: &str) -> Result<String, String> {
    let trimmed = value.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let valid = trimmed.split('/').all(|segment| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
    });
    if !valid {
        return Err(format!(
            "{value:?} is not a URL path like \"/analytics\" (letters, digits, - . _ ~ and /)"
        ));
    }
    Ok(format!("/{trimmed}"))
}

/// The path of an upstream URL (`http://host:port/analytics` → `/analytics`), if it has one.
fn upstream_path(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    Some(uri.path().to_owned()).filter(|path| !path.is_empty() && path != "/")
}

/// A named layer of values, so errors say where a bad value came from.
struct Layer {
    name: &'static str,
    values: Dict,
}

impl figment::Provider for Layer {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(self.name)
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, Dict>, figment::Error> {
        Ok(figment::Profile::Default.collect(self.values.clone()))
    }
}

/// Turns `IDLEGATE_TABS__IDLE_TIMEOUT=15m` into `{tabs: {idle_timeout: "15m"}}`.
fn env_dict(env: &[(String, String)]) -> Result<Dict, ConfigError> {
    let mut dict = Dict::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        let key = rest.to_ascii_lowercase().replace("__", ".");
        let parsed: Value = value
            .parse()
            .map_err(|_| ConfigError::invalid(&key, format!("cannot read {name}")))?;
        // Durations and addresses stay strings even when they look like numbers.
        let parsed = match parsed {
            Value::Num(..) if !key.ends_with("_bytes") => Value::from(value.clone()),
            other => other,
        };
        insert_path(&mut dict, &key, parsed);
    }
    Ok(dict)
}

fn insert_path(dict: &mut Dict, dotted: &str, value: Value) {
    let mut parts = dotted.split('.').peekable();
    let mut current = dict;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_owned(), value);
            return;
        }
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| Value::from(Dict::new()));
        if !matches!(entry, Value::Dict(..)) {
            *entry = Value::from(Dict::new());
        }
        let Value::Dict(_, next) = entry else {
            return;
        };
        current = next;
    }
}

/// Rewrites a figment error so it starts with the full dotted key.
fn describe_figment_error(error: figment::Error) -> ConfigError {
    let mut lines = Vec::new();
    for e in error {
        let mut key = e.path.join(".");
        let what = match &e.kind {
            figment::error::Kind::UnknownField(field, expected) => {
                if !key.ends_with(field.as_str()) {
                    if !key.is_empty() {
                        key.push('.');
                    }
                    key.push_str(field);
                }
                format!("unknown key; expected one of: {}", expected.join(", "))
            }
            kind => kind.to_string(),
        };
        let origin = e
            .metadata
            .as_ref()
            .map(|md| match &md.source {
                Some(source) => format!(" (from {source})"),
                None => format!(" (from {})", md.name),
            })
            .unwrap_or_default();
        if key.is_empty() {
            lines.push(format!("{what}{origin}"));
        } else {
            lines.push(format!("{key}: {what}{origin}"));
        }
    }
    ConfigError::Source(lines.join("; "))
}

#[cfg(test)]
mod tests;
