//! Where configuration comes from, and merging it: defaults, a TOML file or text,
//! `IDLEGATE_*` environment variables, command-line flags, each over the one before.

use std::path::PathBuf;

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::Figment;

use super::file::RawConfig;
use super::ConfigError;

/// Prefix of environment variables that set config keys.
pub const ENV_PREFIX: &str = "IDLEGATE_";

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

/// Merges the sources into the raw, unvalidated form.
pub(super) fn merge(sources: &Sources) -> Result<RawConfig, ConfigError> {
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
    // Lossy: environment variables and flags are text, so a number or boolean key set there
    // ("5000", "true") is read from its text; figment's own parsing of it would also turn
    // durations such as "90" into numbers.
    figment
        .extract_lossy::<RawConfig>()
        .map_err(describe_figment_error)
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

/// Whether `IDLEGATE_<rest>` is one of the variables Kubernetes sets in every pod for a
/// Service named `idlegate` (service links, on by default): `IDLEGATE_SERVICE_HOST`,
/// `IDLEGATE_SERVICE_PORT[_<name>]`, `IDLEGATE_PORT` and `IDLEGATE_PORT_<port>_<TCP|UDP|SCTP>
/// [_PROTO|_PORT|_ADDR]` (Kubernetes, pkg/kubelet/envvars/envvars.go). No config key has these
/// names, so they are skipped rather than reported as unknown keys.
fn is_kubernetes_service_link(rest: &str) -> bool {
    if rest == "PORT" || rest == "SERVICE_HOST" || rest == "SERVICE_PORT" {
        return true;
    }
    if rest.starts_with("SERVICE_PORT_") {
        return true;
    }
    let Some(port_spec) = rest.strip_prefix("PORT_") else {
        return false;
    };
    let mut parts = port_spec.splitn(3, '_');
    let port = parts.next().unwrap_or_default();
    let protocol = parts.next().unwrap_or_default();
    let field = parts.next();
    !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && matches!(protocol, "TCP" | "UDP" | "SCTP")
        && matches!(field, None | Some("PROTO" | "PORT" | "ADDR"))
}

/// Deepest nesting of lists and tables read from an environment variable (a config value
/// needs two at most: a list of strings).
const MAX_ENV_NESTING: usize = 32;

/// How deep `[` and `{` nest in `value`, outside quoted strings.
fn nesting(value: &str) -> usize {
    let (mut depth, mut deepest, mut quoted, mut escaped) = (0usize, 0usize, false, false);
    for b in value.bytes() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'[' | b'{' if !quoted => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' if !quoted => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Turns `IDLEGATE_TABS__IDLE_TIMEOUT=15m` into `{tabs: {idle_timeout: "15m"}}`.
fn env_dict(env: &[(String, String)]) -> Result<Dict, ConfigError> {
    let mut dict = Dict::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if rest.is_empty() || is_kubernetes_service_link(rest) {
            continue;
        }
        if !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ConfigError::invalid(
                &rest.to_ascii_lowercase(),
                format!(
                    "{name:?} is not a config key: its name has more than letters, digits and _"
                ),
            ));
        }
        let key = rest.to_ascii_lowercase().replace("__", ".");
        if key.split('.').any(str::is_empty) {
            return Err(ConfigError::invalid(
                &key,
                format!("{name:?} is not a config key: a part of its name is empty"),
            ));
        }
        if nesting(value) > MAX_ENV_NESTING {
            // figment's value parser recurses once per level: a few thousand `[` overflow
            // the stack.
            return Err(ConfigError::invalid(
                &key,
                format!("{name} nests lists or tables more than {MAX_ENV_NESTING} deep"),
            ));
        }
        let parsed: Value = if value.contains('\\') && !value.is_ascii() {
            // figment 0.10's string unescaping takes a character index for a byte index and
            // panics on a non-ASCII character before a backslash (`value/escape.rs`); such a
            // value is kept as the text it is.
            Value::from(value.clone())
        } else {
            value
                .parse()
                .map_err(|_| ConfigError::invalid(&key, format!("cannot read {name}")))?
        };
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

/// A parser's message on one line, without the lines that quote the file (`3 | tokens = …`
/// and the `^` marker under it): a line of a config file may hold a secret, and the message
/// is logged (on a reload) and printed.
fn without_quoted_source(message: &str) -> String {
    let quoted = |line: &str| {
        let line = line.trim_start();
        let rest = line
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        rest.starts_with('|')
    };
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !quoted(line))
        .collect::<Vec<_>>()
        .join(": ")
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
            kind => without_quoted_source(&kind.to_string()),
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
mod tests {
    use super::*;

    #[test]
    fn a_parse_error_does_not_quote_the_file() {
        let text = "[admin]\ntokens = \"ops:s3cret-token-never-to-be-logged\n";
        let e = crate::config::Config::load(&Sources {
            toml: Some(text.to_owned()),
            ..Sources::default()
        })
        .unwrap_err()
        .to_string();
        assert!(!e.contains("s3cret"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
        assert!(e.contains("line 2"), "{e}");
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn kubernetes_service_links_for_a_service_named_idlegate_are_not_config() {
        let links = env(&[
            ("IDLEGATE_SERVICE_HOST", "10.96.0.12"),
            ("IDLEGATE_SERVICE_PORT", "8080"),
            ("IDLEGATE_SERVICE_PORT_HTTP", "8080"),
            ("IDLEGATE_PORT", "tcp://10.96.0.12:8080"),
            ("IDLEGATE_PORT_8080_TCP", "tcp://10.96.0.12:8080"),
            ("IDLEGATE_PORT_8080_TCP_PROTO", "tcp"),
            ("IDLEGATE_PORT_8080_TCP_PORT", "8080"),
            ("IDLEGATE_PORT_8080_TCP_ADDR", "10.96.0.12"),
            ("IDLEGATE_TABS__IDLE_TIMEOUT", "15m"),
        ]);
        let dict = env_dict(&links).expect("reads");
        assert_eq!(dict.keys().collect::<Vec<_>>(), ["tabs"]);
    }

    #[test]
    fn a_variable_with_an_empty_part_is_refused_naming_it() {
        for name in [
            "IDLEGATE_.X",
            "IDLEGATE_TABS__",
            "IDLEGATE_TABS____IDLE_TIMEOUT",
        ] {
            let error = env_dict(&env(&[(name, "0")])).expect_err(name);
            assert!(error.key().is_some_and(|key| !key.is_empty()), "{name}");
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn a_value_nested_too_deep_is_refused_naming_it_instead_of_overflowing_the_stack() {
        let deep = "[".repeat(5000);
        let error = env_dict(&env(&[("IDLEGATE_PROXY__TRUSTED_PROXIES", &deep)])).unwrap_err();
        assert_eq!(error.key(), Some("proxy.trusted_proxies"), "{error}");
        let fine = env(&[(
            "IDLEGATE_PROXY__TRUSTED_PROXIES",
            "[\"10.0.0.0/8\", \"[::1]\"]",
        )]);
        assert!(env_dict(&fine).is_ok());
        assert_eq!(
            nesting("[[\"[[[\"]]"),
            2,
            "brackets in strings do not count"
        );
    }

    #[test]
    fn a_value_with_non_ascii_text_before_a_backslash_is_read_as_text() {
        for value in ["[\"l\u{97}*\\x\"]", "\"é\\n\"", "ü\\"] {
            let dict =
                env_dict(&env(&[("IDLEGATE_BROWSER__TEXTS__ENDED_TITLE", value)])).expect(value);
            assert!(dict.contains_key("browser"), "{value}");
        }
    }

    #[test]
    fn a_variable_whose_name_is_not_a_key_path_is_refused_naming_it() {
        for name in [
            "IDLEGATE_K.0",
            "IDLEGATE_TABS.IDLE_TIMEOUT",
            "IDLEGATE_TABS-X",
        ] {
            let error = env_dict(&env(&[(name, "1")])).expect_err(name);
            assert!(error.key().is_some_and(|key| !key.is_empty()), "{name}");
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn names_that_only_look_like_service_links_are_still_keys() {
        for name in [
            "IDLEGATE_PORTS",
            "IDLEGATE_PORT_X_TCP",
            "IDLEGATE_PORT_8080_HTTP",
            "IDLEGATE_PORT_8080_TCP_HOST",
            "IDLEGATE_SERVICE",
        ] {
            let dict = env_dict(&env(&[(name, "1")])).expect("reads");
            assert_eq!(dict.len(), 1, "{name} is read as a key");
        }
    }

    #[test]
    fn numbers_and_durations_from_environment_variables_keep_their_types() {
        let sources = Sources {
            file: None,
            toml: None,
            env: env(&[
                ("IDLEGATE_LIMITS__MAX_CONNECTIONS", "100"),
                ("IDLEGATE_TABS__MAX_LIFETIME", "0"),
                ("IDLEGATE_TABS__IDLE_TIMEOUT", "90s"),
            ]),
            flags: Vec::new(),
        };
        let config = crate::config::Config::load(&sources).expect("valid");
        assert_eq!(config.limits.max_connections, 100);
        assert_eq!(config.tabs.max_lifetime, None);
        assert_eq!(
            config.tabs.idle_timeout,
            Some(std::time::Duration::from_secs(90))
        );
    }
}
