//! Validation of `upstream` and `[app]`: where the app is, its kind and its base path.

use std::fmt;
use std::time::Duration;

use super::file::RawConfig;
use super::{config_syntax, required_duration, ConfigError, TabPolicy};

/// Supported app frameworks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    Streamlit,
    /// Shiny for Python.
    Shiny,
    /// A Bokeh server app (`bokeh serve`).
    Bokeh,
    /// A Panel app (`panel serve`, Bokeh's server).
    Panel,
    /// A Gradio app (`python app.py` calling `launch()`, or `gradio app.py`).
    Gradio,
}

impl AppKind {
    /// Every kind, with the name `app.kind` gives it.
    pub const ALL: [(&'static str, AppKind); 5] = [
        ("streamlit", AppKind::Streamlit),
        ("shiny", AppKind::Shiny),
        ("bokeh", AppKind::Bokeh),
        ("panel", AppKind::Panel),
        ("gradio", AppKind::Gradio),
    ];

    /// The name `app.kind` gives it.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, kind)| *kind == self)
            .map_or("streamlit", |(name, _)| name)
    }

    /// The kind `app.kind` names, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, kind)| *kind)
    }
}

/// The app behind idlegate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    /// The framework. With `app.kind = "auto"` (the default) this is Streamlit until the
    /// launcher's command says otherwise ([`AppConfig::detect`]).
    pub kind: AppKind,
    /// Whether `app.kind` is `"auto"`: the launcher's command decides.
    pub detect: bool,
    /// Whether idlegate started the app (launcher mode), with the settings its kind gave
    /// it. Set once the app runs; `false` from configuration.
    pub launched: bool,
    /// `""` or a path like `"/analytics"` (leading slash, no trailing slash).
    pub base_path: String,
    pub disconnected_session_ttl: Duration,
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

/// Validates `[app]` (and the base path an `upstream` URL names). `tabs` is checked against
/// the app's own limits.
pub(super) fn app(raw: &RawConfig, tabs: &TabPolicy) -> Result<AppConfig, ConfigError> {
    let detect = raw.app.kind == "auto";
    let kind = match AppKind::parse(&raw.app.kind) {
        Some(kind) => kind,
        None if detect => AppKind::Streamlit,
        None => {
            let names: Vec<String> = AppKind::ALL
                .iter()
                .map(|(name, _)| format!("{name:?}"))
                .collect();
            return Err(ConfigError::invalid(
                "app.kind",
                format!(
                    "{:?} is not supported; the supported kinds are \"auto\", {}",
                    raw.app.kind,
                    names.join(", ")
                ),
            ));
        }
    };
    let base_path = base_path(raw)?;
    let ttl = required_duration(
        "app.disconnected_session_ttl",
        &raw.app.disconnected_session_ttl,
    )?;
    if ttl.subsec_nanos() != 0 {
        return Err(ConfigError::invalid(
            "app.disconnected_session_ttl",
            "must be whole seconds (the app's own setting is in seconds)",
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
    Ok(AppConfig {
        kind,
        detect,
        launched: false,
        base_path,
        disconnected_session_ttl: ttl,
    })
}

/// `app.base_path`, or the path of the `upstream` URL; both given must agree.
fn base_path(raw: &RawConfig) -> Result<String, ConfigError> {
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
                         app's base path in one place only: app.base_path or the upstream URL"
                    ),
                ))
            }
        }
    }
    Ok(base_path)
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
