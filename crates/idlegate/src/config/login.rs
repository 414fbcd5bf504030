//! Validation of `[login]`: the sign-in mode, its files (read here, once), the login limits
//! and the identity headers. Secrets never appear in errors or in `Debug` output.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use base64::Engine;
use http::HeaderName;

use super::file::RawLogin;
use super::{duration, ConfigError};

/// How people sign in.
#[derive(Clone, PartialEq, Eq)]
pub enum LoginMode {
    /// Nobody signs in.
    None,
    /// Usernames and Argon2id hashes from `login.users_file`.
    Password { users: HashMap<String, String> },
    /// An authenticating proxy in front sets the identity headers.
    Header,
    /// An OpenID provider.
    Oidc(OidcConfig),
}

/// Validated `[login.oidc]`.
#[derive(Clone, PartialEq, Eq)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub redirect_url: Option<String>,
    pub scopes: Vec<String>,
    /// The claim that is the user's key (default `sub`; see `auth::oidc::claims`).
    pub user_claim: String,
    pub groups_claim: String,
    pub reauthenticate: Reauthenticate,
}

/// When the OpenID provider is asked to authenticate the person again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reauthenticate {
    AfterSignOut,
    Always,
    Never,
}

impl fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .field("redirect_url", &self.redirect_url)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for LoginMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Password { users } => write!(f, "Password({} users)", users.len()),
            Self::Header => f.write_str("Header"),
            Self::Oidc(oidc) => write!(f, "Oidc({oidc:?})"),
        }
    }
}

/// A key that signs login cookies. Its bytes are never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct CookieKey(pub [u8; 32]);

impl fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CookieKey(…)")
    }
}

/// The names of the headers that carry the signed-in identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaders {
    /// The user's key (`login.user_header`).
    pub user: HeaderName,
    /// The user's display name (`login.name_header`).
    pub name: HeaderName,
    pub email: HeaderName,
    pub groups: HeaderName,
}

impl IdentityHeaders {
    /// All four names.
    pub fn all(&self) -> [&HeaderName; 4] {
        [&self.user, &self.name, &self.email, &self.groups]
    }
}

/// Header mode: which identity headers besides the user's the proxy in front sets itself
/// (`login.proxy_headers`), and so may be read from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyHeaders {
    pub email: bool,
    pub groups: bool,
}

/// Validated `[login]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginConfig {
    pub mode: LoginMode,
    pub idle_timeout: Duration,
    pub max_lifetime: Option<Duration>,
    /// Newest first; empty means "make one at start".
    pub cookie_keys: Vec<CookieKey>,
    pub cookie_secure: bool,
    pub attempts_per_minute: NonZeroU32,
    pub headers: IdentityHeaders,
    /// Header mode: the identity headers the proxy in front sets itself.
    pub proxy_headers: ProxyHeaders,
    /// Header mode: where a browser whose login ended goes before a new login is accepted.
    pub sign_out_url: Option<String>,
}

impl LoginConfig {
    /// Whether people sign in at all.
    pub fn enabled(&self) -> bool {
        self.mode != LoginMode::None
    }
}

/// Validates `[login]`. `listen` decides whether `cookie_secure = false` is allowed.
pub fn login(raw: &RawLogin, listen: SocketAddr) -> Result<LoginConfig, ConfigError> {
    let idle_timeout = duration::parse(&raw.idle_timeout)
        .map_err(|reason| ConfigError::invalid("login.idle_timeout", reason))?;
    if idle_timeout.is_zero() {
        return Err(ConfigError::invalid(
            "login.idle_timeout",
            "must be longer than zero",
        ));
    }
    let max_lifetime = duration::parse_optional(&raw.max_lifetime)
        .map_err(|reason| ConfigError::invalid("login.max_lifetime", reason))?;
    let mode = mode(raw)?;
    let cookie_keys = match raw.cookie_keys_file.as_deref() {
        Some(path) => read_keys(path)?,
        None => Vec::new(),
    };
    if !raw.cookie_secure && !listen.ip().is_loopback() {
        return Err(ConfigError::invalid(
            "login.cookie_secure",
            format!(
                "false is only allowed when idlegate listens on a loopback address, not {}",
                listen.ip()
            ),
        ));
    }
    let attempts_per_minute = NonZeroU32::new(raw.attempts_per_minute)
        .ok_or_else(|| ConfigError::invalid("login.attempts_per_minute", "must be at least 1"))?;
    let header = |key: &str, value: &str| {
        HeaderName::from_bytes(value.trim().as_bytes())
            .map_err(|_| ConfigError::invalid(key, format!("{value:?} is not a valid header name")))
    };
    let headers = IdentityHeaders {
        user: header("login.user_header", &raw.user_header)?,
        name: header("login.name_header", &raw.name_header)?,
        email: header("login.email_header", &raw.email_header)?,
        groups: header("login.groups_header", &raw.groups_header)?,
    };
    let sign_out_url = sign_out_url(raw, &mode)?;
    let proxy_headers = proxy_headers(&raw.proxy_headers)?;
    Ok(LoginConfig {
        mode,
        idle_timeout,
        max_lifetime,
        cookie_keys,
        cookie_secure: raw.cookie_secure,
        attempts_per_minute,
        headers,
        proxy_headers,
        sign_out_url,
    })
}

/// `login.proxy_headers`: a list of `"user"`, `"email"`, `"groups"`.
fn proxy_headers(names: &[String]) -> Result<ProxyHeaders, ConfigError> {
    let mut sets = ProxyHeaders::default();
    for name in names {
        match name.trim() {
            "user" => {}
            "email" => sets.email = true,
            "groups" => sets.groups = true,
            other => {
                return Err(ConfigError::invalid(
                    "login.proxy_headers",
                    format!("{other:?} is not one of \"user\", \"email\", \"groups\""),
                ))
            }
        }
    }
    Ok(sets)
}

/// `login.mode`, with the files and settings that mode needs.
fn mode(raw: &RawLogin) -> Result<LoginMode, ConfigError> {
    Ok(match raw.mode.as_str() {
        "none" => LoginMode::None,
        "password" => {
            let Some(path) = raw.users_file.as_deref() else {
                return Err(ConfigError::invalid(
                    "login.users_file",
                    "password mode needs a users file (name:hash lines; make hashes with \
                     `idlegate hash-password`)",
                ));
            };
            LoginMode::Password {
                users: read_users(path)?,
            }
        }
        "header" => LoginMode::Header,
        "oidc" => LoginMode::Oidc(oidc(&raw.oidc)?),
        other => {
            return Err(ConfigError::invalid(
                "login.mode",
                format!("{other:?} is not one of \"none\", \"password\", \"oidc\", \"header\""),
            ))
        }
    })
}

/// `login.sign_out_url`: header mode only; a path on this host or an http(s) URL.
fn sign_out_url(raw: &RawLogin, mode: &LoginMode) -> Result<Option<String>, ConfigError> {
    Ok(match raw.sign_out_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(url) => {
            let key = "login.sign_out_url";
            if *mode != LoginMode::Header {
                return Err(ConfigError::invalid(
                    key,
                    "is for login.mode = \"header\" (the proxy in front's sign-out)",
                ));
            }
            let path = url.starts_with('/') && !url.starts_with("//") && !url.contains('\\');
            let https = url.starts_with("https://") || url.starts_with("http://");
            if !(path || https) || url.chars().any(|c| c.is_control() || c == ' ') {
                return Err(ConfigError::invalid(
                    key,
                    format!(
                        "{url:?} is not a path like \"/oauth2/sign_out?rd=/\" or an https:// URL"
                    ),
                ));
            }
            Some(url.to_owned())
        }
    })
}

fn oidc(raw: &super::file::RawOidc) -> Result<OidcConfig, ConfigError> {
    let required = |key: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| ConfigError::invalid(key, "is required with login.mode = \"oidc\""))
    };
    let issuer = required("login.oidc.issuer", &raw.issuer)?;
    if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
        return Err(ConfigError::invalid(
            "login.oidc.issuer",
            format!("{issuer:?} is not an http(s) URL"),
        ));
    }
    let client_id = required("login.oidc.client_id", &raw.client_id)?;
    let client_secret = match (&raw.client_secret_file, &raw.client_secret) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                "login.oidc.client_secret",
                "give either client_secret or client_secret_file, not both",
            ))
        }
        (Some(path), None) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    ConfigError::invalid(
                        "login.oidc.client_secret_file",
                        format!("cannot read {path}: {e}"),
                    )
                })?
                .trim_end()
                .to_owned(),
        ),
        (None, secret) => secret.clone(),
    };
    if let Some(url) = &raw.redirect_url {
        if !url.ends_with("/_idlegate/oidc/callback") {
            return Err(ConfigError::invalid(
                "login.oidc.redirect_url",
                "must end with /_idlegate/oidc/callback (under the app's base path)",
            ));
        }
    }
    if !raw.scopes.iter().any(|s| s == "openid") {
        return Err(ConfigError::invalid(
            "login.oidc.scopes",
            "must include \"openid\"",
        ));
    }
    Ok(OidcConfig {
        issuer,
        client_id,
        client_secret,
        redirect_url: raw.redirect_url.clone(),
        scopes: raw.scopes.clone(),
        user_claim: claim_name("login.oidc.user_claim", &raw.user_claim)?,
        groups_claim: claim_name("login.oidc.groups_claim", &raw.groups_claim)?,
        reauthenticate: match raw.reauthenticate.as_str() {
            "after_sign_out" => Reauthenticate::AfterSignOut,
            "always" => Reauthenticate::Always,
            "never" => Reauthenticate::Never,
            other => {
                return Err(ConfigError::invalid(
                    "login.oidc.reauthenticate",
                    format!("{other:?} is not \"after_sign_out\", \"always\" or \"never\""),
                ))
            }
        },
    })
}

/// A claim name (`login.oidc.user_claim`, `login.oidc.groups_claim`): a JSON member name as
/// providers use them, letters, digits and `_ - . : /` (so URL-named claims work), at most 256
/// bytes.
fn claim_name(key: &str, value: &str) -> Result<String, ConfigError> {
    let name = value.trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-.:/".contains(c);
    if name.is_empty() || name.len() > 256 || !name.chars().all(allowed) {
        return Err(ConfigError::invalid(
            key,
            format!(
                "{value:?} is not a claim name (letters, digits and _ - . : /), such as \
                 \"sub\" or \"groups\""
            ),
        ));
    }
    Ok(name.to_owned())
}

/// The most memory an Argon2id hash of the users file may ask for per check, in KiB (256 MiB;
/// `idlegate hash-password` uses 19 MiB). Each sign-in attempt costs that much, up to
/// `limits.password_checks` at once; a hash asking for more (up to 4 TiB) would abort the
/// process at its first sign-in.
pub const MAX_HASH_MEMORY_KIB: u32 = 256 * 1024;
/// The most passes and lanes an Argon2id hash of the users file may ask for.
pub const MAX_HASH_PASSES: u32 = 16;
pub const MAX_HASH_LANES: u32 = 16;

/// Whether `hash` is a whole Argon2id hash (PHC string format) within the bounds above.
fn check_hash(hash: &str) -> Result<(), String> {
    let parsed =
        argon2::PasswordHash::new(hash).map_err(|e| format!("not an Argon2id hash ({e})"))?;
    if parsed.hash.is_none() {
        return Err("the hash has no output part".to_owned());
    }
    let params =
        argon2::Params::try_from(&parsed).map_err(|e| format!("bad Argon2id parameters ({e})"))?;
    if params.m_cost() > MAX_HASH_MEMORY_KIB
        || params.t_cost() > MAX_HASH_PASSES
        || params.p_cost() > MAX_HASH_LANES
    {
        return Err(format!(
            "the hash asks for m={}, t={}, p={}; at most m={MAX_HASH_MEMORY_KIB} (KiB), \
             t={MAX_HASH_PASSES}, p={MAX_HASH_LANES}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost()
        ));
    }
    Ok(())
}

fn read_users(path: &str) -> Result<HashMap<String, String>, ConfigError> {
    let key = "login.users_file";
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::invalid(key, format!("cannot read {path}: {e}")))?;
    let mut users = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, hash) = line.split_once(':').ok_or_else(|| {
            ConfigError::invalid(key, format!("{path} line {}: expected name:hash", n + 1))
        })?;
        let name = name.trim();
        if name.is_empty() || !hash.trim().starts_with("$argon2id$") {
            return Err(ConfigError::invalid(
                key,
                format!(
                    "{path} line {}: expected a name and an Argon2id hash \
                     (`idlegate hash-password` prints one)",
                    n + 1
                ),
            ));
        }
        if let Err(why) = check_hash(hash.trim()) {
            return Err(ConfigError::invalid(
                key,
                format!("{path} line {}: {why}", n + 1),
            ));
        }
        if users
            .insert(name.to_owned(), hash.trim().to_owned())
            .is_some()
        {
            return Err(ConfigError::invalid(
                key,
                format!("{path} line {}: user {name:?} appears twice", n + 1),
            ));
        }
    }
    if users.is_empty() {
        return Err(ConfigError::invalid(key, format!("{path} has no users")));
    }
    Ok(users)
}

fn read_keys(path: &str) -> Result<Vec<CookieKey>, ConfigError> {
    let key = "login.cookie_keys_file";
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::invalid(key, format!("cannot read {path}: {e}")))?;
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(line)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(line))
            .map_err(|_| ConfigError::invalid(key, format!("{path} line {}: not base64", n + 1)))?;
        if bytes.len() < 32 {
            return Err(ConfigError::invalid(
                key,
                format!("{path} line {}: a key needs at least 32 bytes", n + 1),
            ));
        }
        // Longer keys are folded into 32 bytes, so every byte counts.
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&bytes);
        keys.push(CookieKey(digest.into()));
    }
    if keys.is_empty() {
        return Err(ConfigError::invalid(key, format!("{path} has no keys")));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn oidc(extra: &str) -> Result<OidcConfig, ConfigError> {
        let config = Config::from_toml(&format!(
            "[login]\nmode = \"oidc\"\n[login.oidc]\nissuer = \"https://id.example\"\n\
             client_id = \"app\"\n{extra}"
        ))?;
        match config.login.mode {
            LoginMode::Oidc(oidc) => Ok(oidc),
            other => panic!("not oidc: {other:?}"),
        }
    }

    #[test]
    fn the_user_key_is_sub_unless_another_claim_is_named() {
        assert_eq!(oidc("").unwrap().user_claim, "sub");
        assert_eq!(oidc("user_claim = \" oid \"").unwrap().user_claim, "oid");
        let url_named = oidc("groups_claim = \"https://example.com/claims/roles\"").unwrap();
        assert_eq!(url_named.groups_claim, "https://example.com/claims/roles");
        for bad in ["", "a b", "x\\u0000", "ü"] {
            let error = oidc(&format!("user_claim = \"{bad}\"")).unwrap_err();
            assert_eq!(error.key(), Some("login.oidc.user_claim"), "{bad:?}");
            assert!(error.to_string().contains("not a claim name"), "{error}");
        }
        let error = oidc("groups_claim = \"\"").unwrap_err();
        assert_eq!(error.key(), Some("login.oidc.groups_claim"));
    }
}
