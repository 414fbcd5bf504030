//! Which keys a configuration reload (SIGHUP) changes while idlegate runs, and which only take
//! effect at the next start. Pure: compares two merged, unvalidated configurations by dotted
//! key; applying the new values is the server's job.

use toml::Value;

use super::file::RawConfig;

/// Keys (and key prefixes: a section's every key) whose new values a reload applies without a
/// restart. Files named by `login.users_file` and `admin.tokens_file` are read again on every
/// reload, changed path or not.
pub const LIVE_KEYS: &[&str] = &[
    "browser.texts",
    "tabs",
    "login.idle_timeout",
    "login.max_lifetime",
    "capacity.memory_high",
    "capacity.memory_low",
    "capacity.check_every",
    "limits.max_connections_per_address",
    "limits.idle_timeout",
    "login.attempts_per_minute",
    "login.users_file",
    "admin.tokens",
    "admin.tokens_file",
];

/// Whether a new value of `key` needs a restart (it is not in [`LIVE_KEYS`]).
pub fn needs_restart(key: &str) -> bool {
    !LIVE_KEYS.iter().any(|live| {
        key.strip_prefix(live)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    })
}

/// Whether `key` is one of the tab session limits (`[tabs]`, and the login limits the tabs are
/// also judged by): they go live together, and only while sign-in stays on or off.
pub fn judges_tabs(key: &str) -> bool {
    key.starts_with("tabs.") || key == "login.idle_timeout" || key == "login.max_lifetime"
}

/// The dotted keys whose values differ between `old` and `new` (set in one and not the other
/// included), sorted. A list is one value. Values are never returned: some are secrets.
pub fn changed_keys(old: &RawConfig, new: &RawConfig) -> Vec<String> {
    let (mut old_keys, mut new_keys) = (Vec::new(), Vec::new());
    flatten("", &to_value(old), &mut old_keys);
    flatten("", &to_value(new), &mut new_keys);
    let mut changed: Vec<String> = old_keys
        .iter()
        .filter(|entry| !new_keys.contains(entry))
        .chain(new_keys.iter().filter(|entry| !old_keys.contains(entry)))
        .map(|(key, _)| key.clone())
        .collect();
    changed.sort();
    changed.dedup();
    changed
}

fn to_value(raw: &RawConfig) -> Value {
    // A RawConfig is plain strings, numbers, booleans, lists and tables: it always converts.
    Value::try_from(raw).unwrap_or_else(|_| Value::Table(toml::Table::new()))
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Table(table) => {
            for (key, value) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, value, out);
            }
        }
        leaf => out.push((prefix.to_owned(), leaf.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_keys_and_their_sections_reload_the_rest_needs_a_restart() {
        for key in [
            "browser.texts.warning_title",
            "browser.texts.reasons.idle",
            "limits.idle_timeout",
            "login.attempts_per_minute",
            "login.users_file",
            "login.idle_timeout",
            "login.max_lifetime",
            "tabs.idle_timeout",
            "tabs.max_lifetime",
            "tabs.busy_timeout",
            "tabs.hidden_timeout",
            "tabs.warn_before",
            "tabs.reconnect_grace",
            "tabs.end_while_running",
            "tabs.max_per_user",
            "tabs.max_total",
            "tabs.on_limit",
            "tabs.ended_notice_ttl",
            "capacity.memory_high",
            "capacity.memory_low",
            "capacity.check_every",
            "admin.tokens",
            "admin.tokens_file",
        ] {
            assert!(!needs_restart(key), "{key}");
        }
        for key in [
            "listen",
            "login.mode",
            "limits.max_connections",
            "limits.idle_timeout_extra",
            "browser.report_interval",
            "tabs_extra",
            "login.cookie_secure",
            "capacity.measure",
            "admin.listen",
            "app.kind",
        ] {
            assert!(needs_restart(key), "{key}");
        }
    }

    #[test]
    fn changed_keys_names_each_changed_leaf_once() {
        let old = RawConfig::default();
        assert!(changed_keys(&old, &old).is_empty());
        let mut new = old.clone();
        new.listen = "0.0.0.0:9999".to_owned();
        new.browser.texts.warning_title = "Still there?".to_owned();
        new.admin.tokens = Some("ops:a-token-of-at-least-32-characters".to_owned());
        assert_eq!(
            changed_keys(&old, &new),
            ["admin.tokens", "browser.texts.warning_title", "listen"]
        );
        let restart: Vec<String> = changed_keys(&old, &new)
            .into_iter()
            .filter(|key| needs_restart(key))
            .collect();
        assert_eq!(restart, ["listen"]);
    }

    #[test]
    fn the_tab_limits_are_the_tabs_section_and_the_login_limits() {
        for key in ["tabs.idle_timeout", "tabs.on_limit", "login.idle_timeout"] {
            assert!(judges_tabs(key), "{key}");
        }
        for key in [
            "login.mode",
            "limits.idle_timeout",
            "browser.texts.reasons.idle",
        ] {
            assert!(!judges_tabs(key), "{key}");
        }
    }
}
