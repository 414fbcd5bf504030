//! Validation of the `[tabs]` keys that bound busy tabs.

use std::time::Duration;

use super::file::RawTabs;
use super::{config_syntax, duration, ConfigError};

/// `tabs.busy_timeout` when unset, unless `tabs.idle_timeout` is longer.
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(3600);

/// `tabs.busy_timeout`: how long a run (or an upload) may hold the idle limit off after the
/// last human activity. `None` means without bound. Unset: one hour, or `idle_timeout` when
/// that is longer. An explicit value shorter than `idle_timeout` is an error: it would end
/// busy tabs sooner than idle ones.
pub fn busy_timeout(
    raw: &RawTabs,
    idle_timeout: Option<Duration>,
) -> Result<Option<Duration>, ConfigError> {
    let key = "tabs.busy_timeout";
    let Some(value) = &raw.busy_timeout else {
        return Ok(Some(idle_timeout.map_or(DEFAULT_BUSY_TIMEOUT, |idle| {
            idle.max(DEFAULT_BUSY_TIMEOUT)
        })));
    };
    let limit =
        duration::parse_optional(value).map_err(|reason| ConfigError::invalid(key, reason))?;
    if let (Some(limit), Some(idle)) = (limit, idle_timeout) {
        if limit < idle {
            return Err(ConfigError::invalid(
                key,
                format!(
                    "{} must not be shorter than tabs.idle_timeout ({})",
                    config_syntax(limit),
                    config_syntax(idle)
                ),
            ));
        }
    }
    Ok(limit)
}
