//! Configuration: loading from file, environment and flags, and validation into typed values.
//!
//! Precedence, lowest first: built-in defaults, the TOML file (`--config`), `IDLEGATE_*`
//! environment variables (nested keys joined by `__`, e.g. `IDLEGATE_TABS__IDLE_TIMEOUT=15m`),
//! then command-line flags ([`sources`]). [`Config::load`] merges them and
//! [`Config::from_raw`] turns the result into [`Config`], one section at a time; every error
//! names the key. Embedders and tests build one in code with [`Config::builder`]. Domain code
//! only sees [`Config`]. This module never reads the process environment itself: callers
//! pass it in, so tests inject their own.

mod admin;
mod app;
mod browser;
mod builder;
mod capacity;
mod duration;
pub mod file;
mod limits;
pub mod login;
mod proxy;
pub mod reload;
mod sources;
mod store;
mod tabs;

use std::net::SocketAddr;
use std::time::Duration;

pub use admin::{AdminConfig, AdminToken, MIN_TOKEN_CHARS};
pub use app::{normalize_base_path, AppConfig, AppKind, Upstream};
pub use browser::{fill as fill_placeholders, BrowserConfig, ReasonTexts, Texts, MIN_WARNING};
pub use builder::{ConfigBuilder, OidcProvider, SignIn};
pub use capacity::{CapacityConfig, MemoryAmount, MemoryMeasure};
pub use duration::{config_syntax, human as human_duration};
pub use file::RawConfig;
pub use limits::LimitsConfig;
pub use login::{CookieKey, IdentityHeaders, LoginConfig, LoginMode, OidcConfig, ProxyHeaders};
pub use proxy::{LauncherConfig, LogConfig, LogFormat, ProxyConfig};
pub use sources::{Sources, ENV_PREFIX};
pub use store::{OnUnavailable, RedisUrl, StoreBackend, StoreConfig};
pub use tabs::{OnLimit, TabPolicy};

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
    pub limits: LimitsConfig,
    /// The admin listener; `None` when off.
    pub admin: Option<AdminConfig>,
    /// Where the audit log goes; `None` when off.
    pub audit: Option<AuditTarget>,
    /// After SIGTERM, how long open tabs keep working (`shutdown.grace`; zero: none).
    pub shutdown_grace: Duration,
    /// Memory pressure on the app.
    pub capacity: CapacityConfig,
    /// Where the state several replicas share is kept.
    pub store: StoreConfig,
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

    /// A configuration built in code, with typed values, on top of the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// The effective configuration of `sources` as TOML, secrets replaced with
    /// `"<redacted>"` (`login.oidc.client_secret`, `admin.tokens`, a Redis `store.url`), after validating it.
    /// Every key is shown, defaults included.
    pub fn effective_toml(sources: &Sources) -> Result<String, ConfigError> {
        let mut raw = Self::merge(sources)?;
        Self::from_raw(raw.clone())?;
        let redacted = || Some("<redacted>".to_owned());
        if raw.login.oidc.client_secret.is_some() {
            raw.login.oidc.client_secret = redacted();
        }
        if raw.admin.tokens.is_some() {
            raw.admin.tokens = redacted();
        }
        if raw.store.url.trim() != "memory" {
            // It may hold a password.
            raw.store.url = "<redacted>".to_owned();
        }
        toml::to_string(&raw).map_err(|e| ConfigError::Source(format!("cannot show it: {e}")))
    }

    /// Merges the sources into the raw, unvalidated form.
    pub fn merge(sources: &Sources) -> Result<RawConfig, ConfigError> {
        sources::merge(sources)
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
        let login = login::login(&raw.login, listen)?;
        let tabs = tabs::tabs(&raw.tabs, &login)?;
        let browser = browser::browser(&raw.browser, &[tabs.idle_timeout, tabs.hidden_timeout])?;
        let store = store::store(&raw.store, &login)?;
        Ok(Self {
            listen,
            upstream,
            app: app::app(&raw, &tabs)?,
            tabs,
            proxy: proxy::proxy(&raw.proxy)?,
            launcher: proxy::launcher(&raw.launcher)?,
            log: proxy::log(&raw.log)?,
            browser,
            login,
            limits: limits::limits(&raw.limits)?,
            admin: admin::admin(&raw.admin)?,
            audit: audit_target(raw.audit.path.as_deref())?,
            shutdown_grace: optional_duration("shutdown.grace", &raw.shutdown.grace)?
                .unwrap_or_default(),
            capacity: capacity::capacity(&raw.capacity)?,
            store,
        })
    }
}

/// Where the audit log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditTarget {
    Stdout,
    File(std::path::PathBuf),
}

fn audit_target(path: Option<&str>) -> Result<Option<AuditTarget>, ConfigError> {
    match path.map(str::trim) {
        None => Ok(None),
        Some("-") => Ok(Some(AuditTarget::Stdout)),
        Some("") => Err(ConfigError::invalid(
            "audit.path",
            "is empty: give a file path, or \"-\" for standard output",
        )),
        Some(path) => Ok(Some(AuditTarget::File(path.into()))),
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

#[cfg(test)]
mod tests;
