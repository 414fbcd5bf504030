//! [`ConfigBuilder`]: a configuration built in code with typed values (durations as
//! [`Duration`], choices as enums), for embedders and tests. It fills the same raw form a
//! file does and validates it the same way, so a builder can make no config a file could
//! not, and every error still names the key.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::file::RawConfig;
use super::login::Reauthenticate;
use super::{config_syntax, Config, ConfigError, LogFormat, OnLimit, Texts};

/// Builds a [`Config`] on top of the defaults. Every setter names its key; `None` for an
/// optional limit means `"off"`.
#[derive(Debug, Clone, Default)]
pub struct ConfigBuilder {
    raw: RawConfig,
}

/// How people sign in, for [`ConfigBuilder::login`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// `login.mode = "none"`.
    Nobody,
    /// `login.mode = "password"` with this users file (`name:hash` lines).
    Password { users_file: String },
    /// `login.mode = "header"`: a proxy in front names the user.
    Header,
    /// `login.mode = "oidc"` with this provider.
    Oidc(OidcProvider),
}

/// The `[login.oidc]` keys, for [`SignIn::Oidc`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcProvider {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub redirect_url: Option<String>,
    pub reauthenticate: Reauthenticate,
}

fn optional(value: Option<Duration>) -> String {
    value.map_or_else(|| "off".to_owned(), config_syntax)
}

impl ConfigBuilder {
    /// Starts from an existing raw form (a merged file) instead of the defaults.
    pub fn from_raw(raw: RawConfig) -> Self {
        Self { raw }
    }

    /// `listen`.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.raw.listen = addr.to_string();
        self
    }

    /// `upstream`: the app's URL, like `http://127.0.0.1:8501`.
    pub fn upstream(mut self, url: impl Into<String>) -> Self {
        self.raw.upstream = Some(url.into());
        self
    }

    /// `tabs.idle_timeout`.
    pub fn idle_timeout(mut self, limit: Option<Duration>) -> Self {
        self.raw.tabs.idle_timeout = optional(limit);
        self
    }

    /// `tabs.max_lifetime`.
    pub fn max_lifetime(mut self, limit: Option<Duration>) -> Self {
        self.raw.tabs.max_lifetime = optional(limit);
        self
    }

    /// `tabs.end_while_running`.
    pub fn end_while_running(mut self, end: bool) -> Self {
        self.raw.tabs.end_while_running = end;
        self
    }

    /// `tabs.busy_timeout`.
    pub fn busy_timeout(mut self, limit: Option<Duration>) -> Self {
        self.raw.tabs.busy_timeout = Some(optional(limit));
        self
    }

    /// `tabs.reconnect_grace`.
    pub fn reconnect_grace(mut self, grace: Duration) -> Self {
        self.raw.tabs.reconnect_grace = config_syntax(grace);
        self
    }

    /// `tabs.warn_before`.
    pub fn warn_before(mut self, lead: Option<Duration>) -> Self {
        self.raw.tabs.warn_before = Some(optional(lead));
        self
    }

    /// `tabs.hidden_timeout`.
    pub fn hidden_timeout(mut self, limit: Option<Duration>) -> Self {
        self.raw.tabs.hidden_timeout = Some(optional(limit));
        self
    }

    /// `tabs.max_per_user` (`0`: no limit) and `tabs.on_limit`.
    pub fn max_per_user(mut self, tabs: u32, on_limit: OnLimit) -> Self {
        self.raw.tabs.max_per_user = tabs;
        self.raw.tabs.on_limit = match on_limit {
            OnLimit::EndLeastRecentlyActive => "end_least_recently_active",
            OnLimit::EndOldest => "end_oldest",
            OnLimit::Refuse => "refuse",
        }
        .to_owned();
        self
    }

    /// `[capacity]`: `memory_high`, `memory_low` (as in a file: `"2GiB"`, `"85%"`),
    /// `measure` (`"auto"`, `"app"`, `"cgroup"`) and `check_every`.
    pub fn memory_pressure(
        mut self,
        high: &str,
        low: Option<&str>,
        measure: &str,
        check_every: Duration,
    ) -> Self {
        let capacity = &mut self.raw.capacity;
        capacity.memory_high = Some(high.to_owned());
        capacity.memory_low = low.map(str::to_owned);
        capacity.measure = measure.to_owned();
        capacity.check_every = config_syntax(check_every);
        self
    }

    /// `tabs.max_total` (`0`: no limit).
    pub fn max_total(mut self, tabs: u32) -> Self {
        self.raw.tabs.max_total = tabs;
        self
    }

    /// `tabs.on_limit`.
    pub fn on_limit(self, on_limit: OnLimit) -> Self {
        let tabs = self.raw.tabs.max_per_user;
        self.max_per_user(tabs, on_limit)
    }

    /// `admin.listen` and `admin.tokens` (`name:token[,name:token…]`).
    pub fn admin(mut self, listen: SocketAddr, tokens: &str) -> Self {
        self.raw.admin.listen = Some(listen.to_string());
        self.raw.admin.tokens = Some(tokens.to_owned());
        self
    }

    /// `shutdown.grace` (zero: tabs end at once).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.raw.shutdown.grace = config_syntax(grace);
        self
    }

    /// `admin.metrics_without_token`.
    pub fn metrics_without_token(mut self, open: bool) -> Self {
        self.raw.admin.metrics_without_token = open;
        self
    }

    /// `app.kind`.
    pub fn app_kind(mut self, kind: crate::config::AppKind) -> Self {
        self.raw.app.kind = kind.name().to_owned();
        self
    }

    /// `app.base_path`.
    pub fn base_path(mut self, path: impl Into<String>) -> Self {
        self.raw.app.base_path = path.into();
        self
    }

    /// `app.disconnected_session_ttl`.
    pub fn disconnected_session_ttl(mut self, ttl: Duration) -> Self {
        self.raw.app.disconnected_session_ttl = config_syntax(ttl);
        self
    }

    /// `proxy.max_header_bytes`.
    pub fn max_header_bytes(mut self, bytes: u64) -> Self {
        self.raw.proxy.max_header_bytes = bytes;
        self
    }

    /// `proxy.max_message_bytes`.
    pub fn max_message_bytes(mut self, bytes: u64) -> Self {
        self.raw.proxy.max_message_bytes = bytes;
        self
    }

    /// `proxy.header_read_timeout`.
    pub fn header_read_timeout(mut self, limit: Duration) -> Self {
        self.raw.proxy.header_read_timeout = config_syntax(limit);
        self
    }

    /// `proxy.connect_timeout`.
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.raw.proxy.connect_timeout = config_syntax(limit);
        self
    }

    /// `proxy.trusted_proxies`: addresses or CIDR ranges.
    pub fn trusted_proxies<S: Into<String>>(mut self, nets: impl IntoIterator<Item = S>) -> Self {
        self.raw.proxy.trusted_proxies = nets.into_iter().map(Into::into).collect();
        self
    }

    /// `browser.inject`.
    pub fn inject(mut self, inject: bool) -> Self {
        self.raw.browser.inject = inject;
        self
    }

    /// `browser.report_interval`.
    pub fn report_interval(mut self, interval: Duration) -> Self {
        self.raw.browser.report_interval = config_syntax(interval);
        self
    }

    /// `[browser.texts]`: change some texts in place.
    pub fn texts(mut self, change: impl FnOnce(&mut Texts)) -> Self {
        change(&mut self.raw.browser.texts);
        self
    }

    /// `login.mode` and its keys.
    pub fn login(mut self, sign_in: SignIn) -> Self {
        let login = &mut self.raw.login;
        login.mode = match sign_in {
            SignIn::Nobody => "none",
            SignIn::Password { users_file } => {
                login.users_file = Some(users_file);
                "password"
            }
            SignIn::Header => "header",
            SignIn::Oidc(provider) => {
                let oidc = &mut login.oidc;
                oidc.issuer = Some(provider.issuer);
                oidc.client_id = Some(provider.client_id);
                oidc.client_secret = provider.client_secret;
                oidc.redirect_url = provider.redirect_url;
                oidc.reauthenticate = match provider.reauthenticate {
                    Reauthenticate::AfterSignOut => "after_sign_out",
                    Reauthenticate::Always => "always",
                    Reauthenticate::Never => "never",
                }
                .to_owned();
                "oidc"
            }
        }
        .to_owned();
        self
    }

    /// `login.oidc.scopes`: the scopes to ask the provider for (they must include
    /// `openid`). Set after [`ConfigBuilder::login`] or before it: the login mode keeps them.
    pub fn oidc_scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.raw.login.oidc.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// `login.users_file`, as a path.
    pub fn users_file(self, path: &Path) -> Self {
        self.login(SignIn::Password {
            users_file: path.display().to_string(),
        })
    }

    /// `login.idle_timeout`.
    pub fn login_idle_timeout(mut self, limit: Duration) -> Self {
        self.raw.login.idle_timeout = config_syntax(limit);
        self
    }

    /// `login.max_lifetime`.
    pub fn login_max_lifetime(mut self, limit: Option<Duration>) -> Self {
        self.raw.login.max_lifetime = optional(limit);
        self
    }

    /// `login.cookie_secure`.
    pub fn cookie_secure(mut self, secure: bool) -> Self {
        self.raw.login.cookie_secure = secure;
        self
    }

    /// `login.cookie_keys_file`.
    pub fn cookie_keys_file(mut self, path: &Path) -> Self {
        self.raw.login.cookie_keys_file = Some(path.display().to_string());
        self
    }

    /// `store.url` and `store.key_prefix`: Redis shared by replicas.
    pub fn store(mut self, url: impl Into<String>, key_prefix: impl Into<String>) -> Self {
        self.raw.store.url = url.into();
        self.raw.store.key_prefix = key_prefix.into();
        self
    }

    /// `store.on_unavailable = "local"` when `local`, else `"refuse"`.
    pub fn sign_in_locally_when_store_unavailable(mut self, local: bool) -> Self {
        self.raw.store.on_unavailable = if local { "local" } else { "refuse" }.to_owned();
        self
    }

    /// `login.attempts_per_minute`.
    pub fn attempts_per_minute(mut self, attempts: u32) -> Self {
        self.raw.login.attempts_per_minute = attempts;
        self
    }

    /// `login.sign_out_url` (header mode).
    pub fn sign_out_url(mut self, url: impl Into<String>) -> Self {
        self.raw.login.sign_out_url = Some(url.into());
        self
    }

    /// `login.user_header`, `login.email_header`, `login.groups_header`.
    pub fn identity_headers(mut self, user: &str, email: &str, groups: &str) -> Self {
        let login = &mut self.raw.login;
        login.user_header = user.to_owned();
        login.email_header = email.to_owned();
        login.groups_header = groups.to_owned();
        self
    }

    /// `login.proxy_headers` (header mode): which of `"user"`, `"email"`, `"groups"` the
    /// proxy in front sets itself.
    pub fn proxy_headers<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.raw.login.proxy_headers = names.into_iter().map(Into::into).collect();
        self
    }

    /// `log.format`.
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.raw.log.format = match format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
        .to_owned();
        self
    }

    /// `limits.max_connections` and `limits.max_connections_per_address` (`0`: no limit).
    pub fn max_connections(mut self, total: u32, per_address: u32) -> Self {
        self.raw.limits.max_connections = total;
        self.raw.limits.max_connections_per_address = per_address;
        self
    }

    /// `limits.idle_timeout`.
    pub fn connection_idle_timeout(mut self, limit: Duration) -> Self {
        self.raw.limits.idle_timeout = config_syntax(limit);
        self
    }

    /// `limits.password_checks`.
    pub fn password_checks(mut self, checks: u32) -> Self {
        self.raw.limits.password_checks = checks;
        self
    }

    /// `limits.page_rewrites`.
    pub fn page_rewrites(mut self, rewrites: u32) -> Self {
        self.raw.limits.page_rewrites = rewrites;
        self
    }

    /// The raw form so far.
    pub fn raw(&self) -> &RawConfig {
        &self.raw
    }

    /// Validates the result.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first key whose value does not fit, as for a file.
    pub fn build(self) -> Result<Config, ConfigError> {
        Config::from_raw(self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_come_out_as_given() {
        let config = Config::builder()
            .upstream("http://127.0.0.1:8501")
            .idle_timeout(Some(Duration::from_secs(90)))
            .max_lifetime(None)
            .warn_before(Some(Duration::from_secs(30)))
            .hidden_timeout(Some(Duration::from_millis(45_500)))
            .reconnect_grace(Duration::from_secs(3))
            .base_path("analytics")
            .inject(false)
            .build()
            .unwrap();
        assert_eq!(config.tabs.idle_timeout, Some(Duration::from_secs(90)));
        assert_eq!(config.tabs.max_lifetime, None);
        assert_eq!(config.tabs.warn_before, Some(Duration::from_secs(30)));
        assert_eq!(
            config.tabs.hidden_timeout,
            Some(Duration::from_millis(45_500))
        );
        assert_eq!(config.tabs.reconnect_grace, Duration::from_secs(3));
        assert_eq!(config.app.base_path, "/analytics");
        assert!(!config.browser.inject);
        assert_eq!(config.upstream.unwrap().port, 8501);
    }

    #[test]
    fn a_builder_is_validated_like_a_file() {
        let error = Config::builder()
            .max_per_user(2, OnLimit::Refuse)
            .build()
            .unwrap_err();
        assert_eq!(error.key(), Some("tabs.max_per_user"));
        let error = Config::builder()
            .idle_timeout(Some(Duration::from_secs(60)))
            .busy_timeout(Some(Duration::from_secs(30)))
            .build()
            .unwrap_err();
        assert_eq!(error.key(), Some("tabs.busy_timeout"));
    }

    #[test]
    fn the_same_values_as_a_file_give_the_same_config() {
        let built = Config::builder()
            .idle_timeout(Some(Duration::from_secs(300)))
            .max_per_user(3, OnLimit::EndOldest)
            .login(SignIn::Header)
            .trusted_proxies(["10.0.0.0/8"])
            .build()
            .unwrap();
        let file = Config::from_toml(
            "[tabs]\nidle_timeout = \"5m\"\nmax_per_user = 3\non_limit = \"end_oldest\"\n\
             [login]\nmode = \"header\"\n[proxy]\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
        )
        .unwrap();
        assert_eq!(built.tabs, file.tabs);
        assert_eq!(built.login, file.login);
        assert_eq!(built.proxy, file.proxy);
    }

    #[test]
    fn oidc_scopes_are_kept_and_validated_like_a_file() {
        let provider = OidcProvider {
            issuer: "https://id.example".to_owned(),
            client_id: "app".to_owned(),
            client_secret: Some("secret".to_owned()),
            redirect_url: None,
            reauthenticate: Reauthenticate::AfterSignOut,
        };
        let built = Config::builder()
            .oidc_scopes(["openid", "email", "groups"])
            .login(SignIn::Oidc(provider.clone()))
            .build()
            .unwrap();
        let file = Config::from_toml(
            "[login]\nmode = \"oidc\"\n[login.oidc]\nissuer = \"https://id.example\"\n\
             client_id = \"app\"\nclient_secret = \"secret\"\n\
             scopes = [\"openid\", \"email\", \"groups\"]\n",
        )
        .unwrap();
        assert_eq!(built.login, file.login);
        let error = Config::builder()
            .login(SignIn::Oidc(provider))
            .oidc_scopes(["email"])
            .build()
            .unwrap_err();
        assert_eq!(error.key(), Some("login.oidc.scopes"));
    }
}
