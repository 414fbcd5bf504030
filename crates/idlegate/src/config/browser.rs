//! Validation of `[browser]` and the warning-related `[tabs]` keys: the script's timings and
//! every text people see, checked for placeholders they cannot use.

use std::time::Duration;

use super::file::{RawBrowser, RawReasonTexts, RawTabs, RawTexts};
use super::{config_syntax, duration, ConfigError};

/// The shortest warning a person gets (WCAG 2.2.1: at least 20 seconds to extend).
pub const MIN_WARNING: Duration = Duration::from_secs(20);
/// The warning lead when `tabs.warn_before` is unset and `tabs.idle_timeout` is long enough.
const DEFAULT_WARNING: Duration = Duration::from_secs(120);
/// Bounds of `browser.report_interval`.
const REPORT_INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(300));
/// The shortest interval the script is ever given, however short the limits.
const MIN_EFFECTIVE_REPORT: Duration = Duration::from_millis(250);

/// The browser script's settings and texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserConfig {
    pub inject: bool,
    /// How often the script may report input: `browser.report_interval`, shortened for short
    /// limits.
    pub report_interval: Duration,
    pub texts: Texts,
}

/// Every text people see, checked by [`browser`] (no unknown placeholders, no empty text,
/// a language tag).
pub type Texts = RawTexts;

/// The ended page's explanation for each end reason, with placeholders still in them.
pub type ReasonTexts = RawReasonTexts;

/// `tabs.warn_before`: `None` means no warning. It warns before a tab's idle end and before
/// its login's (`login_idle_timeout`, when people sign in), so it must be shorter than both;
/// unset, it is at most half of the shorter one.
pub fn warn_before(
    raw: &RawTabs,
    idle_timeout: Option<Duration>,
    login_idle_timeout: Option<Duration>,
) -> Result<Option<Duration>, ConfigError> {
    let shortest = [
        idle_timeout.map(|d| (d, "tabs.idle_timeout")),
        login_idle_timeout.map(|d| (d, "login.idle_timeout")),
    ]
    .into_iter()
    .flatten()
    .min_by_key(|(d, _)| *d);
    let Some(value) = &raw.warn_before else {
        let lead = match shortest {
            Some((idle, _)) => DEFAULT_WARNING.min(idle / 2),
            None => DEFAULT_WARNING,
        };
        return Ok(Some(lead).filter(|lead| *lead >= MIN_WARNING));
    };
    let key = "tabs.warn_before";
    let Some(lead) =
        duration::parse_optional(value).map_err(|reason| ConfigError::invalid(key, reason))?
    else {
        return Ok(None);
    };
    if lead < MIN_WARNING {
        return Err(ConfigError::invalid(
            key,
            format!(
                "{} is too short: people need at least {} to react to the warning; \
                 use \"off\" for no warning",
                config_syntax(lead),
                config_syntax(MIN_WARNING)
            ),
        ));
    }
    if let Some((idle, limit)) = shortest.filter(|(idle, _)| lead >= *idle) {
        return Err(ConfigError::invalid(
            key,
            format!(
                "{} must be shorter than {limit} ({}), or the warning shows from the start",
                config_syntax(lead),
                config_syntax(idle)
            ),
        ));
    }
    Ok(Some(lead))
}

/// `tabs.hidden_timeout`: unset means the same as `tabs.idle_timeout`.
pub fn hidden_timeout(
    raw: &RawTabs,
    idle_timeout: Option<Duration>,
) -> Result<Option<Duration>, ConfigError> {
    match &raw.hidden_timeout {
        None => Ok(idle_timeout),
        Some(value) => duration::parse_optional(value)
            .map_err(|reason| ConfigError::invalid("tabs.hidden_timeout", reason)),
    }
}

/// `[browser]`. `limits` are the tab limits the script's report interval must fit in.
pub fn browser(
    raw: &RawBrowser,
    limits: &[Option<Duration>],
) -> Result<BrowserConfig, ConfigError> {
    let key = "browser.report_interval";
    let interval = duration::parse(&raw.report_interval)
        .map_err(|reason| ConfigError::invalid(key, reason))?;
    let (low, high) = REPORT_INTERVAL_RANGE;
    if interval < low || interval > high {
        return Err(ConfigError::invalid(
            key,
            format!(
                "{} is out of range; use {} to {}",
                config_syntax(interval),
                config_syntax(low),
                config_syntax(high)
            ),
        ));
    }
    let report_interval = limits
        .iter()
        .flatten()
        .map(|limit| *limit / 4)
        .fold(interval, Duration::min)
        .max(MIN_EFFECTIVE_REPORT);
    Ok(BrowserConfig {
        inject: raw.inject,
        report_interval,
        texts: texts(&raw.texts)?,
    })
}

fn texts(raw: &RawTexts) -> Result<Texts, ConfigError> {
    const COUNTDOWN: &[&str] = &["countdown"];
    const DURATIONS: &[&str] = &[
        "idle_timeout",
        "busy_timeout",
        "hidden_timeout",
        "max_lifetime",
        "reconnect_grace",
    ];
    let lang = lang(&raw.lang)?;
    let plain = [
        ("warning_title", &raw.warning_title),
        ("keep_working", &raw.keep_working),
        ("dismiss", &raw.dismiss),
        ("ended_title", &raw.ended_title),
        ("ended_note", &raw.ended_note),
        ("start_new", &raw.start_new),
        ("busy_title", &raw.busy_title),
        ("busy", &raw.busy),
        ("try_again", &raw.try_again),
    ];
    for (name, text) in plain {
        check_text(name, text, &[])?;
    }
    check_text("warning_body", &raw.warning_body, COUNTDOWN)?;
    check_text(
        "warning_login_body",
        &raw.warning_login_body,
        &["countdown"],
    )?;
    check_text("sign_in_title", &raw.sign_in_title, &[])?;
    check_text("username", &raw.username, &[])?;
    check_text("password", &raw.password, &[])?;
    check_text("sign_in", &raw.sign_in, &[])?;
    check_text("sign_in_failed", &raw.sign_in_failed, &[])?;
    check_text("sign_in_limited", &raw.sign_in_limited, &[])?;
    check_text("sign_in_unavailable", &raw.sign_in_unavailable, &[])?;
    check_text("sign_in_needs_https", &raw.sign_in_needs_https, &[])?;
    check_text("signed_out", &raw.signed_out, &[])?;
    check_text("sign_out_title", &raw.sign_out_title, &[])?;
    check_text("sign_out", &raw.sign_out, &[])?;
    check_text("refused_title", &raw.refused_title, &[])?;
    check_text("refused_user_cap", &raw.refused_user_cap, &["max_per_user"])?;
    check_text(
        "warning_lifetime_body",
        &raw.warning_lifetime_body,
        COUNTDOWN,
    )?;
    let r = &raw.reasons;
    let reasons = [
        ("reasons.idle", &r.idle),
        ("reasons.busy_idle", &r.busy_idle),
        ("reasons.hidden_idle", &r.hidden_idle),
        ("reasons.max_lifetime", &r.max_lifetime),
        ("reasons.closed", &r.closed),
        ("reasons.login_expired", &r.login_expired),
        ("reasons.logout", &r.logout),
        ("reasons.evicted_user_cap", &r.evicted_user_cap),
        ("reasons.evicted_capacity", &r.evicted_capacity),
        ("reasons.admin", &r.admin),
        ("reasons.upstream_gone", &r.upstream_gone),
        ("reasons.app_restarted", &r.app_restarted),
        ("reasons.server_restarted", &r.server_restarted),
        ("reasons.shutdown", &r.shutdown),
        ("reasons.unknown", &r.unknown),
    ];
    for (name, text) in reasons {
        check_text(name, text, DURATIONS)?;
    }
    Ok(Texts {
        lang: lang.to_owned(),
        ..raw.clone()
    })
}

/// `browser.texts.lang`: a language tag like `en` or `pt-BR`, trimmed.
fn lang(raw: &str) -> Result<&str, ConfigError> {
    let lang = raw.trim();
    if lang.is_empty() || !lang.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ConfigError::invalid(
            "browser.texts.lang",
            format!("{raw:?} is not a language tag like \"en\" or \"pt-BR\""),
        ));
    }
    Ok(lang)
}

/// A text must not be empty and may only use the `{placeholders}` listed.
fn check_text(name: &str, text: &str, allowed: &[&str]) -> Result<(), ConfigError> {
    let key = format!("browser.texts.{name}");
    if text.trim().is_empty() {
        return Err(ConfigError::invalid(&key, "is empty"));
    }
    for used in placeholders(text) {
        if !allowed.contains(&used) {
            let hint = if allowed.is_empty() {
                "this text takes no placeholders".to_owned()
            } else {
                let names: Vec<String> = allowed.iter().map(|a| format!("{{{a}}}")).collect();
                format!("use {}", names.join(", "))
            };
            return Err(ConfigError::invalid(
                &key,
                format!("unknown placeholder {{{used}}}; {hint}"),
            ));
        }
    }
    Ok(())
}

/// The names inside `{…}` in a text.
fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    text.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
}

/// Replaces `{name}` placeholders with values.
pub fn fill(text: &str, values: &[(&str, &str)]) -> String {
    values.iter().fold(text.to_owned(), |out, (name, value)| {
        out.replace(&format!("{{{name}}}"), value)
    })
}
