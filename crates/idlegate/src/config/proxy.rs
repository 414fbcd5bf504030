//! Validation of `[proxy]`, `[launcher]` and `[log]`: relaying limits, the child process and
//! log output.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::file::{RawLauncher, RawLog, RawProxy};
use super::{required_duration, ConfigError};

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

/// Validates `[proxy]`.
pub(super) fn proxy(raw: &RawProxy) -> Result<ProxyConfig, ConfigError> {
    let max_header_bytes = usize::try_from(raw.max_header_bytes)
        .ok()
        .filter(|n| (8192..=16 * 1024 * 1024).contains(n))
        .ok_or_else(|| {
            ConfigError::invalid(
                "proxy.max_header_bytes",
                format!(
                    "{} is out of range; use 8192 to 16777216",
                    raw.max_header_bytes
                ),
            )
        })?;
    if raw.max_message_bytes < 1024 {
        return Err(ConfigError::invalid(
            "proxy.max_message_bytes",
            format!("{} is too small; use at least 1024", raw.max_message_bytes),
        ));
    }
    let trusted_proxies = raw
        .trusted_proxies
        .iter()
        .map(|entry| parse_net(entry))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| ConfigError::invalid("proxy.trusted_proxies", reason))?;
    Ok(ProxyConfig {
        max_header_bytes,
        header_read_timeout: required_duration(
            "proxy.header_read_timeout",
            &raw.header_read_timeout,
        )?,
        connect_timeout: required_duration("proxy.connect_timeout", &raw.connect_timeout)?,
        max_message_bytes: raw.max_message_bytes,
        trusted_proxies,
    })
}

/// Validates `[launcher]`.
pub(super) fn launcher(raw: &RawLauncher) -> Result<LauncherConfig, ConfigError> {
    Ok(LauncherConfig {
        startup_timeout: required_duration("launcher.startup_timeout", &raw.startup_timeout)?,
        shutdown_timeout: required_duration("launcher.shutdown_timeout", &raw.shutdown_timeout)?,
        collect_garbage: raw.collect_garbage,
    })
}

/// Validates `[log]`.
pub(super) fn log(raw: &RawLog) -> Result<LogConfig, ConfigError> {
    let format = match raw.format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(ConfigError::invalid(
                "log.format",
                format!("{other:?} is not \"text\" or \"json\""),
            ))
        }
    };
    if raw.level.trim().is_empty() {
        return Err(ConfigError::invalid(
            "log.level",
            "is empty; use e.g. \"info\"",
        ));
    }
    Ok(LogConfig {
        format,
        level: raw.level.clone(),
    })
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
