//! Validation of `[tabs]`: each tab session's limits, and the per-user cap.

use std::time::Duration;

use super::file::RawTabs;
use super::login::LoginConfig;
use super::{browser, config_syntax, duration, optional_duration, required_duration, ConfigError};

/// Limits for each tab session (see [`file::RawTabs`] for their meaning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TabPolicy {
    pub idle_timeout: Option<Duration>,
    pub max_lifetime: Option<Duration>,
    pub end_while_running: bool,
    /// How long a run the person waits for (or an upload) may hold the idle limit off after
    /// the last activity; `None`: without bound.
    pub busy_timeout: Option<Duration>,
    pub reconnect_grace: Duration,
    /// The limit for a hidden tab; `None` when off.
    pub hidden_timeout: Option<Duration>,
    /// How long before a deadline the browser warns; `None` for no warning.
    pub warn_before: Option<Duration>,
    /// A signed-in person's limits (from `[login]`); `None` when nobody signs in.
    pub login_idle_timeout: Option<Duration>,
    pub login_max_lifetime: Option<Duration>,
    /// At most this many open tabs per signed-in user.
    pub max_per_user: Option<usize>,
    /// At most this many open tabs on this server.
    pub max_total: Option<usize>,
    /// What happens to a tab over `max_per_user` or `max_total`.
    pub on_limit: OnLimit,
    /// How long an ended tab's ids are remembered, so a page coming back is told why.
    pub ended_notice_ttl: Duration,
}

impl TabPolicy {
    /// A policy for tests: idle and lifetime limits in seconds, everything else off or at
    /// its default.
    #[cfg(test)]
    pub(crate) fn for_tests(idle_secs: u64, lifetime_secs: u64) -> Self {
        Self {
            idle_timeout: Some(Duration::from_secs(idle_secs)),
            max_lifetime: Some(Duration::from_secs(lifetime_secs)),
            end_while_running: false,
            busy_timeout: None,
            reconnect_grace: Duration::from_secs(15),
            hidden_timeout: None,
            warn_before: None,
            login_idle_timeout: None,
            login_max_lifetime: None,
            max_per_user: None,
            max_total: None,
            on_limit: OnLimit::EndOldest,
            ended_notice_ttl: Duration::from_secs(3600),
        }
    }
}

/// What a new tab over the per-user or the server's limit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLimit {
    /// The tab that went longest without a person's activity ends (see
    /// the tracker's `capacity` module for the order), reason `evicted_user_cap` or
    /// `evicted_capacity`.
    EndLeastRecentlyActive,
    /// The oldest tab ends (the user's own for the per-user limit).
    EndOldest,
    /// The new tab is refused with a page that says why.
    Refuse,
}

/// Validates `[tabs]`; `login` supplies the login limits and whether people sign in.
pub(super) fn tabs(raw: &RawTabs, login: &LoginConfig) -> Result<TabPolicy, ConfigError> {
    let idle_timeout = optional_duration("tabs.idle_timeout", &raw.idle_timeout)?;
    let max_per_user = match raw.max_per_user {
        0 => None,
        n => Some(n as usize),
    };
    let on_limit = match raw.on_limit.as_str() {
        "end_least_recently_active" => OnLimit::EndLeastRecentlyActive,
        "end_oldest" => OnLimit::EndOldest,
        "refuse" => OnLimit::Refuse,
        other => {
            return Err(ConfigError::invalid(
                "tabs.on_limit",
                format!(
                    "{other:?} is not \"end_least_recently_active\", \"end_oldest\" or \
                     \"refuse\""
                ),
            ))
        }
    };
    if max_per_user.is_some() && !login.enabled() {
        return Err(ConfigError::invalid(
            "tabs.max_per_user",
            "needs people to sign in (login.mode) to know whose tabs they are",
        ));
    }
    Ok(TabPolicy {
        idle_timeout,
        max_lifetime: optional_duration("tabs.max_lifetime", &raw.max_lifetime)?,
        end_while_running: raw.end_while_running,
        busy_timeout: busy_timeout(raw, idle_timeout)?,
        reconnect_grace: required_duration("tabs.reconnect_grace", &raw.reconnect_grace)?,
        hidden_timeout: browser::hidden_timeout(raw, idle_timeout)?,
        warn_before: browser::warn_before(
            raw,
            idle_timeout,
            login.enabled().then_some(login.idle_timeout),
        )?,
        login_idle_timeout: login.enabled().then_some(login.idle_timeout),
        login_max_lifetime: login.max_lifetime.filter(|_| login.enabled()),
        max_per_user,
        max_total: (raw.max_total > 0).then_some(raw.max_total as usize),
        on_limit,
        ended_notice_ttl: required_duration("tabs.ended_notice_ttl", &raw.ended_notice_ttl)?,
    })
}

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
