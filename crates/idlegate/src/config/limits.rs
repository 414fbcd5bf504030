//! Validation of `[limits]`: connections, idle connections, password checks, page rewrites.

use std::time::Duration;

use super::file::RawLimits;
use super::{required_duration, ConfigError};

/// Bounds on what clients may hold (`[limits]`; `docs/configuration.md` has the reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Most browser connections open at once (≥ 1).
    pub max_connections: usize,
    /// Most connections open at once per client address (IPv6: per /64); `None`: no limit.
    pub max_connections_per_address: Option<usize>,
    /// A connection with no request in progress is closed after this long.
    pub idle_timeout: Duration,
    /// Most Argon2 password checks running at once (≥ 1).
    pub password_checks: usize,
    /// Most pages being rewritten at once (≥ 1).
    pub page_rewrites: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        limits(&RawLimits::default())
            .unwrap_or_else(|_| unreachable!("the default limits are valid"))
    }
}

/// Twice the CPU cores idlegate may use (at least 2).
fn twice_the_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from) * 2
}

fn at_least_one(key: &str, value: u32) -> Result<usize, ConfigError> {
    match usize::try_from(value) {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(ConfigError::invalid(key, "must be at least 1")),
    }
}

/// Validates `[limits]`.
pub(super) fn limits(raw: &RawLimits) -> Result<LimitsConfig, ConfigError> {
    let per_address = usize::try_from(raw.max_connections_per_address).unwrap_or(usize::MAX);
    Ok(LimitsConfig {
        max_connections: at_least_one("limits.max_connections", raw.max_connections)?,
        max_connections_per_address: (per_address > 0).then_some(per_address),
        idle_timeout: required_duration("limits.idle_timeout", &raw.idle_timeout)?,
        password_checks: match raw.password_checks {
            0 => twice_the_cores(),
            n => at_least_one("limits.password_checks", n)?,
        },
        page_rewrites: at_least_one("limits.page_rewrites", raw.page_rewrites)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bad_values() {
        let config = LimitsConfig::default();
        assert_eq!(config.max_connections, 8192);
        assert_eq!(config.max_connections_per_address, Some(256));
        assert_eq!(config.idle_timeout, Duration::from_secs(60));
        assert!(config.password_checks >= 2);
        assert_eq!(config.page_rewrites, 16);
        let off = RawLimits {
            max_connections_per_address: 0,
            ..RawLimits::default()
        };
        assert_eq!(limits(&off).unwrap().max_connections_per_address, None);
        for (raw, key) in [
            (
                RawLimits {
                    max_connections: 0,
                    ..RawLimits::default()
                },
                "limits.max_connections",
            ),
            (
                RawLimits {
                    idle_timeout: "0s".to_owned(),
                    ..RawLimits::default()
                },
                "limits.idle_timeout",
            ),
            (
                RawLimits {
                    page_rewrites: 0,
                    ..RawLimits::default()
                },
                "limits.page_rewrites",
            ),
        ] {
            assert_eq!(limits(&raw).unwrap_err().key(), Some(key));
        }
    }
}
