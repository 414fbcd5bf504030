//! Validation of `[store]`: the in-memory store, or Redis/Valkey shared by replicas.

use super::file::RawStore;
use super::login::LoginConfig;
use super::ConfigError;

/// A Redis or Valkey URL. It may hold a password: its `Debug` shows only the scheme.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The URL as written (with its password): for connecting only, never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the connection uses TLS (`rediss://`).
    pub fn tls(&self) -> bool {
        self.0.starts_with("rediss://")
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls() { "rediss" } else { "redis" };
        write!(f, "RedisUrl({scheme}://<redacted>)")
    }
}

/// Where the shared state is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// This process's memory.
    Memory,
    /// Redis or Valkey (same protocol), shared by every replica.
    Redis(RedisUrl),
}

/// What new sign-ins get while Redis cannot be reached (`store.on_unavailable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnavailable {
    /// A page saying nobody can sign in now.
    Refuse,
    /// A login on this replica alone, written to Redis once it is back.
    Local,
}

/// Validated `[store]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// Prefix of every key and channel in Redis.
    pub key_prefix: String,
    pub on_unavailable: OnUnavailable,
}

impl StoreConfig {
    /// Whether several replicas share the state.
    pub fn shared(&self) -> bool {
        matches!(self.backend, StoreBackend::Redis(_))
    }
}

/// Validates `[store]`; a shared store needs `login` to have cookie keys when people sign in.
pub(super) fn store(raw: &RawStore, login: &LoginConfig) -> Result<StoreConfig, ConfigError> {
    let url = raw.url.trim();
    let backend = if url == "memory" {
        StoreBackend::Memory
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        // The parser's message may quote the URL, and with it the password: not shown.
        redis::parse_redis_url(url).ok_or_else(|| {
            ConfigError::invalid(
                "store.url",
                "is not a valid Redis URL like \"redis://host:6379/0\" (not shown: it may hold a password)",
            )
        })?;
        redis::IntoConnectionInfo::into_connection_info(url).map_err(|_| {
            ConfigError::invalid(
                "store.url",
                "is not a Redis URL idlegate can connect with, like \"redis://host:6379/0\" (not shown: it may hold a password)",
            )
        })?;
        StoreBackend::Redis(RedisUrl(url.to_owned()))
    } else {
        return Err(ConfigError::invalid(
            "store.url",
            "must be \"memory\", or a URL starting with redis:// or rediss:// (not shown: it may hold a password)",
        ));
    };
    let prefix = &raw.key_prefix;
    if prefix.is_empty()
        || prefix.chars().count() > 64
        || prefix.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ConfigError::invalid(
            "store.key_prefix",
            format!("{prefix:?} must be 1 to 64 printable characters without spaces"),
        ));
    }
    let on_unavailable = match raw.on_unavailable.as_str() {
        "refuse" => OnUnavailable::Refuse,
        "local" => OnUnavailable::Local,
        other => {
            return Err(ConfigError::invalid(
                "store.on_unavailable",
                format!("{other:?} must be \"refuse\" or \"local\""),
            ))
        }
    };
    let config = StoreConfig {
        backend,
        key_prefix: prefix.clone(),
        on_unavailable,
    };
    if config.shared() && login.enabled() && login.cookie_keys.is_empty() {
        return Err(ConfigError::invalid(
            "login.cookie_keys_file",
            "is required with a shared store (store.url is Redis): without it each replica signs cookies with its own random key, so a login made on one is refused by the others and a restart signs everyone out",
        ));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Sources};
    use super::*;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        Config::from_toml(toml)
    }

    #[test]
    fn memory_is_the_default_and_redis_urls_are_checked_without_showing_them() {
        let config = load("").expect("defaults");
        assert_eq!(config.store.backend, StoreBackend::Memory);
        assert_eq!(config.store.key_prefix, "idlegate:");
        assert_eq!(config.store.on_unavailable, OnUnavailable::Refuse);
        let redis = load("[store]\nurl = \"rediss://app:pw-123@redis:6380/2\"\n").expect("redis");
        let StoreBackend::Redis(url) = &redis.store.backend else {
            panic!("a Redis store")
        };
        assert!(url.tls());
        assert_eq!(format!("{url:?}"), "RedisUrl(rediss://<redacted>)");
        for bad in ["http://:pw-123@redis", "redis://:pw-123@", "pw-123"] {
            let error = load(&format!("[store]\nurl = \"{bad}\"\n")).expect_err(bad);
            assert_eq!(error.key(), Some("store.url"), "{bad}");
            assert!(!error.to_string().contains("pw-123"), "{error}");
        }
    }

    #[test]
    fn a_shared_store_with_sign_in_needs_cookie_keys() {
        let error = load("[login]\nmode = \"header\"\n[store]\nurl = \"redis://redis:6379\"\n")
            .expect_err("no cookie keys");
        assert_eq!(error.key(), Some("login.cookie_keys_file"));
        assert!(error.to_string().contains("each replica"), "{error}");
        load("[store]\nurl = \"redis://redis:6379\"\n").expect("nobody signs in: no keys needed");
    }

    #[test]
    fn prefixes_and_the_fallback_are_checked() {
        for bad in ["", "has space:", &"x".repeat(65)] {
            let error = load(&format!("[store]\nkey_prefix = \"{bad}\"\n")).expect_err(bad);
            assert_eq!(error.key(), Some("store.key_prefix"));
        }
        let error = load("[store]\non_unavailable = \"queue\"\n").expect_err("queue");
        assert_eq!(error.key(), Some("store.on_unavailable"));
        let local = load("[store]\non_unavailable = \"local\"\n").expect("local");
        assert_eq!(local.store.on_unavailable, OnUnavailable::Local);
    }

    #[test]
    fn the_effective_config_hides_the_url() {
        let sources = Sources {
            toml: Some("[store]\nurl = \"redis://:pw-123@redis:6379\"\n".to_owned()),
            ..Sources::default()
        };
        let shown = Config::effective_toml(&sources).expect("valid");
        assert!(!shown.contains("pw-123"), "{shown}");
        assert!(shown.contains("url = \"<redacted>\""), "{shown}");
    }
}
