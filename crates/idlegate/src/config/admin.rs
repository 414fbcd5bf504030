//! Validation of `[admin]`: the admin listener's address and its bearer tokens.

use std::net::SocketAddr;

use sha2::{Digest, Sha256};

use super::file::RawAdmin;
use super::ConfigError;

/// Shortest token accepted: 32 characters (about 190 bits when random base64).
pub const MIN_TOKEN_CHARS: usize = 32;

/// The admin listener, when configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Who may call, each with the digest of their token.
    pub tokens: Vec<AdminToken>,
    /// Whether `/metrics` answers without a token.
    pub metrics_without_token: bool,
}

/// A named bearer token, kept as its SHA-256 digest only (compared in constant time by the
/// listener; the token itself is never kept or logged).
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    /// Who calls with it (the audit log names them).
    pub name: String,
    pub digest: [u8; 32],
}

impl AdminToken {
    /// A token named `name`.
    pub fn new(name: &str, token: &str) -> Self {
        Self {
            name: name.to_owned(),
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Validates `[admin]`: `None` when `listen` is unset.
pub(super) fn admin(raw: &RawAdmin) -> Result<Option<AdminConfig>, ConfigError> {
    let Some(listen) = raw.listen.as_deref() else {
        if raw.tokens_file.is_some() || raw.tokens.is_some() || raw.metrics_without_token {
            return Err(ConfigError::invalid(
                "admin.listen",
                "is not set, so the other [admin] keys do nothing: set it (like \"127.0.0.1:9090\") or remove them",
            ));
        }
        return Ok(None);
    };
    let listen = listen.parse::<SocketAddr>().map_err(|_| {
        ConfigError::invalid(
            "admin.listen",
            format!("{listen:?} is not an address like \"127.0.0.1:9090\""),
        )
    })?;
    // Each token with the key it came from, for errors.
    let mut tokens: Vec<(AdminToken, &'static str)> = Vec::new();
    if let Some(path) = raw.tokens_file.as_deref() {
        let key = "admin.tokens_file";
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::invalid(key, format!("cannot read {path}: {e}")))?;
        let before = tokens.len();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let token = parse_token(line).map_err(|why| {
                ConfigError::invalid(key, format!("{path} line {}: {why}", n + 1))
            })?;
            tokens.push((token, key));
        }
        if tokens.len() == before {
            return Err(ConfigError::invalid(key, format!("{path} has no tokens")));
        }
    }
    if let Some(list) = raw.tokens.as_deref() {
        for (n, entry) in list.split(',').map(str::trim).enumerate() {
            let token = parse_token(entry).map_err(|why| {
                ConfigError::invalid("admin.tokens", format!("entry {}: {why}", n + 1))
            })?;
            tokens.push((token, "admin.tokens"));
        }
    }
    if tokens.is_empty() {
        return Err(ConfigError::invalid(
            "admin.listen",
            "the admin listener needs a token: set admin.tokens_file or admin.tokens",
        ));
    }
    for (i, (token, key)) in tokens.iter().enumerate() {
        for (earlier, _) in &tokens[..i] {
            if earlier.name == token.name {
                return Err(ConfigError::invalid(
                    key,
                    format!("the token name {:?} appears twice", token.name),
                ));
            }
            if earlier.digest == token.digest {
                return Err(ConfigError::invalid(
                    key,
                    format!(
                        "{:?} and {:?} have the same token: give each caller its own",
                        earlier.name, token.name
                    ),
                ));
            }
        }
    }
    let tokens = tokens.into_iter().map(|(token, _)| token).collect();
    Ok(Some(AdminConfig {
        listen,
        tokens,
        metrics_without_token: raw.metrics_without_token,
    }))
}

/// `name:token`, the name of letters, digits and `_ - .` (at most 64), the token at least
/// [`MIN_TOKEN_CHARS`] printable characters. The error never repeats the token.
fn parse_token(entry: &str) -> Result<AdminToken, String> {
    let (name, token) = entry
        .split_once(':')
        .ok_or_else(|| "expected name:token".to_owned())?;
    let name = name.trim();
    let token = token.trim();
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !name_ok {
        return Err("the name must be 1 to 64 letters, digits, _ - or .".to_owned());
    }
    if token.chars().count() < MIN_TOKEN_CHARS || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "the token of {name:?} must be at least {MIN_TOKEN_CHARS} printable characters \
             without spaces (`openssl rand -base64 32` makes one)"
        ));
    }
    Ok(AdminToken::new(name, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdefghijklmnopqrstuvwxyz";

    fn raw(listen: Option<&str>, tokens: Option<&str>) -> RawAdmin {
        RawAdmin {
            listen: listen.map(str::to_owned),
            tokens: tokens.map(str::to_owned),
            ..RawAdmin::default()
        }
    }

    #[test]
    fn off_unless_listen_is_set() {
        assert_eq!(admin(&RawAdmin::default()).unwrap(), None);
    }

    #[test]
    fn tokens_from_a_list_and_a_file_keep_only_digests() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, format!("# operators\nops:{TOKEN}\n\n")).unwrap();
        let raw = RawAdmin {
            tokens_file: Some(file.to_string_lossy().into_owned()),
            ..raw(
                Some("127.0.0.1:9090"),
                Some(&format!("ci:{TOKEN}x, grafana:{TOKEN}y")),
            )
        };
        let config = admin(&raw).unwrap().unwrap();
        let names: Vec<&str> = config.tokens.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["ops", "ci", "grafana"]);
        assert_eq!(config.tokens[0], AdminToken::new("ops", TOKEN));
        assert!(!format!("{config:?}").contains(TOKEN), "no token in Debug");
    }

    #[test]
    fn bad_entries_name_their_key_and_never_echo_the_token() {
        let short = "ops:short-token";
        for (tokens, key) in [
            (None, "admin.listen"),
            (Some(short), "admin.tokens"),
            (Some("no-colon"), "admin.tokens"),
            (Some(&*format!("bad name:{TOKEN}")), "admin.tokens"),
        ] {
            let error = admin(&raw(Some("127.0.0.1:9090"), tokens)).unwrap_err();
            assert_eq!(error.key(), Some(key), "{error}");
            assert!(!error.to_string().contains("short-token"), "{error}");
        }
        let error = admin(&raw(Some("nowhere"), Some(&format!("a:{TOKEN}")))).unwrap_err();
        assert_eq!(error.key(), Some("admin.listen"));
        let twice = format!("a:{TOKEN},a:{TOKEN}z");
        let error = admin(&raw(Some("127.0.0.1:9090"), Some(&twice))).unwrap_err();
        assert_eq!(error.key(), Some("admin.tokens"), "{error}");
        let shared = format!("a:{TOKEN},b:{TOKEN}");
        let error = admin(&raw(Some("127.0.0.1:9090"), Some(&shared))).unwrap_err();
        assert!(error.to_string().contains("same token"), "{error}");
        let error = admin(&raw(None, Some(&format!("a:{TOKEN}")))).unwrap_err();
        assert_eq!(error.key(), Some("admin.listen"), "{error}");
    }

    #[test]
    fn a_tokens_file_without_tokens_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, "# none yet\n\n").unwrap();
        let raw = RawAdmin {
            tokens_file: Some(file.to_string_lossy().into_owned()),
            ..raw(Some("127.0.0.1:9090"), None)
        };
        let error = admin(&raw).unwrap_err();
        assert_eq!(error.key(), Some("admin.tokens_file"));
        assert!(error.to_string().contains("has no tokens"), "{error}");
    }
}
