//! Configuration reload (SIGHUP): the sources are loaded and validated again exactly as at
//! start, and the values that can change while idlegate runs are swapped in for requests from
//! then on, without closing connections: the browser texts (and the page script that shows
//! them), the tab and login limits (open tabs are judged by the new ones at once, and new
//! pages get a page script with the new warning lead), the connection and sign-in limits of
//! [`crate::config::reload::LIVE_KEYS`], the password users file and the admin tokens. Other changed keys are named in a warning: they
//! take effect at the next start. A configuration that does not load is refused as a whole,
//! with an error naming its key; the running one stays. Every reload also reopens the audit
//! log, is counted in the metrics and written to the audit log.
//!
//! This module decides nothing about the values themselves: loading and validating is
//! [`Config::load`]'s, classifying keys is [`crate::config::reload`]'s.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::apps::PageHints;
use crate::audit::Audit;
use crate::auth::password::Users;
use crate::capacity::Monitor;
use crate::client::ClientScript;
use crate::config::reload::{changed_keys, judges_tabs, needs_restart};
use crate::config::{AdminToken, Config, ConfigError, LoginMode, RawConfig, Sources};
use crate::dispatch::Gateway;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::store::LoginLimits;

/// What a successful reload did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reloaded {
    /// Changed keys whose new values now apply.
    pub applied: Vec<String>,
    /// Changed keys whose new values wait for a restart (the running values stay).
    pub restart_needed: Vec<String>,
}

/// The parts of a running gateway a reload swaps. Cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    inner: Arc<Inner>,
}

struct Inner {
    sources: Sources,
    /// The configuration the gateway was built from (launcher mode: with the app's address).
    running: Arc<Config>,
    /// The merged sources at start: a key that needs a restart keeps its value from then.
    started: RawConfig,
    /// The merged sources as of the last successful load, to name the keys a reload changes.
    last: std::sync::Mutex<RawConfig>,
    limits: Arc<Limits>,
    gateway: Arc<Gateway>,
    hints: PageHints,
    users: Option<Users>,
    admin_tokens: Option<Arc<ArcSwap<Vec<AdminToken>>>>,
    metrics: Option<Arc<Metrics>>,
    audit: Option<Arc<Audit>>,
    capacity: Option<Arc<Monitor>>,
    /// One reload at a time: two SIGHUPs in a row must not interleave their swaps.
    busy: std::sync::Mutex<()>,
}

/// What [`super::Server::reloader`] hands over.
pub(super) struct Parts {
    pub(super) limits: Arc<Limits>,
    pub(super) gateway: Arc<Gateway>,
    pub(super) hints: PageHints,
    pub(super) admin_tokens: Option<Arc<ArcSwap<Vec<AdminToken>>>>,
    pub(super) metrics: Option<Arc<Metrics>>,
    pub(super) audit: Option<Arc<Audit>>,
    pub(super) capacity: Option<Arc<Monitor>>,
}

impl Reloader {
    pub(super) fn new(sources: Sources, started: RawConfig, parts: Parts) -> Self {
        let running = parts.gateway.proxy.config.clone();
        let users = parts.gateway.auth.users.clone();
        Self {
            inner: Arc::new(Inner {
                sources,
                running,
                last: std::sync::Mutex::new(started.clone()),
                started,
                limits: parts.limits,
                gateway: parts.gateway,
                hints: parts.hints,
                users,
                admin_tokens: parts.admin_tokens,
                metrics: parts.metrics,
                audit: parts.audit,
                capacity: parts.capacity,
                busy: std::sync::Mutex::new(()),
            }),
        }
    }

    /// Reopens the audit log, loads the sources again and applies what changed; logs the
    /// outcome, counts it in `idlegate_config_reloads_total` and writes it to the audit log.
    /// Blocking (it reads files): call it off the async threads.
    ///
    /// # Errors
    /// The [`ConfigError`] of a configuration that does not load (naming its key); nothing
    /// was changed then.
    pub fn reload(&self) -> Result<Reloaded, ConfigError> {
        let inner = &self.inner;
        let _one = inner.busy.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(audit) = &inner.audit {
            audit.reopen();
        }
        let loaded = Config::merge(&inner.sources)
            .and_then(|raw| Config::from_raw(raw.clone()).map(|config| (raw, config)));
        let outcome = loaded.map(|(raw, config)| {
            let done = self.apply(&raw, config);
            *inner.last.lock().unwrap_or_else(|p| p.into_inner()) = raw;
            done
        });
        self.report(&outcome);
        outcome
    }

    /// Swaps in the live values of `config` (merged from `raw`).
    fn apply(&self, raw: &RawConfig, config: Config) -> Reloaded {
        let inner = &self.inner;
        // Live keys changed since the last load apply now; keys that need a restart keep
        // their value from the start, and are named as long as they differ from it.
        let since_start = changed_keys(&inner.started, raw);
        let last = inner.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut applied: Vec<String> = changed_keys(&last, raw)
            .into_iter()
            .filter(|key| !needs_restart(key))
            .collect();
        let mut restart_needed: Vec<String> = since_start
            .iter()
            .filter(|key| needs_restart(key))
            .cloned()
            .collect();
        // The tab limits carry the login's, and `tabs.max_per_user` needs people to sign in:
        // with sign-in turned on or off (a restart), they wait for that restart too.
        let tabs_live = config.login.enabled() == inner.running.login.enabled();
        if !tabs_live {
            defer(&mut applied, &mut restart_needed, &since_start, judges_tabs);
        }
        if !self.apply_capacity(&config) {
            defer(&mut applied, &mut restart_needed, &since_start, |key| {
                key.starts_with("capacity.")
            });
        }
        inner.limits.update(&config);
        if let (Some(users), LoginMode::Password { users: hashes }) =
            (&inner.users, &config.login.mode)
        {
            users.replace(hashes.clone());
        }
        if let (Some(tokens), Some(admin)) = (&inner.admin_tokens, &config.admin) {
            tokens.store(Arc::new(admin.tokens.clone()));
        }
        let report_interval_live = tabs_live
            && !restart_needed
                .iter()
                .any(|key| key == "browser.report_interval");
        if tabs_live {
            self.apply_tabs(&config);
        }
        self.apply_script(config, tabs_live, report_interval_live);
        Reloaded {
            applied,
            restart_needed,
        }
    }

    /// The new memory marks and interval, when memory pressure was on and stays on; whether
    /// they apply (turning it on or off needs a restart).
    fn apply_capacity(&self, config: &Config) -> bool {
        match (&self.inner.capacity, config.capacity.memory_high) {
            (Some(monitor), Some(_)) => match monitor.update(&config.capacity) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "configuration reload: [capacity] stays as running");
                    false
                }
            },
            (None, None) => true,
            _ => false,
        }
    }

    /// The new tab and login limits: open tabs and logins are judged by them from now on.
    fn apply_tabs(&self, config: &Config) {
        let gateway = &self.inner.gateway;
        gateway.auth.set_limits(LoginLimits {
            idle_timeout: Some(config.login.idle_timeout),
            max_lifetime: config.login.max_lifetime,
        });
        let tracker = &gateway.proxy.tracker;
        if *tracker.policy() != config.tabs {
            tracker.set_policy(config.tabs.clone());
        }
    }

    /// The page script with the new `[browser.texts]` and, when they are live, the new
    /// warning lead (`tabs.warn_before`) and report interval (shortened for short tab
    /// limits); everything else it shows as running. Swapped in only when it changed.
    fn apply_script(&self, config: Config, tabs_live: bool, report_interval_live: bool) {
        let inner = &self.inner;
        let gateway = &inner.gateway;
        let mut shown = (*inner.running).clone();
        shown.browser.texts = config.browser.texts;
        if tabs_live {
            shown.tabs = config.tabs;
        }
        if report_interval_live {
            shown.browser.report_interval = config.browser.report_interval;
        }
        let script = ClientScript::new(&shown, &inner.hints);
        let route_state = gateway.route_state();
        if script.version() != route_state.script.load().version() {
            gateway
                .proxy
                .injector
                .set_script(script.tag(), script.version());
            route_state.script.store(Arc::new(script));
        }
        if **gateway.proxy.texts.load() != shown.browser.texts {
            gateway.proxy.texts.store(Arc::new(shown.browser.texts));
        }
    }

    fn report(&self, outcome: &Result<Reloaded, ConfigError>) {
        let inner = &self.inner;
        if let Some(metrics) = &inner.metrics {
            metrics.config_reloaded(outcome.is_ok());
        }
        match outcome {
            Ok(done) => {
                for key in &done.restart_needed {
                    tracing::warn!(
                        key = %key,
                        "configuration reload: {key} changed, but takes effect only after a restart; the running value stays"
                    );
                }
                tracing::info!(
                    applied = ?done.applied,
                    restart_needed = ?done.restart_needed,
                    "configuration reloaded"
                );
                if let Some(audit) = &inner.audit {
                    audit.config_reloaded("success", &done.applied, &done.restart_needed);
                }
            }
            Err(e) => {
                match e.key() {
                    Some(key) => tracing::error!(
                        key,
                        error = %e,
                        "configuration reload refused; the running configuration stays"
                    ),
                    None => tracing::error!(
                        error = %e,
                        "configuration reload refused; the running configuration stays"
                    ),
                }
                if let Some(audit) = &inner.audit {
                    let keys: Vec<String> = e.key().map(str::to_owned).into_iter().collect();
                    audit.config_reloaded("failure", &keys, &[]);
                }
            }
        }
    }
}

/// Keys that `wait` names need a restart after all: out of `applied`, and into
/// `restart_needed` as long as they differ from the start (`since_start`).
fn defer(
    applied: &mut Vec<String>,
    restart_needed: &mut Vec<String>,
    since_start: &[String],
    wait: impl Fn(&str) -> bool,
) {
    applied.retain(|key| !wait(key));
    restart_needed.extend(since_start.iter().filter(|key| wait(key)).cloned());
    restart_needed.sort();
    restart_needed.dedup();
}
