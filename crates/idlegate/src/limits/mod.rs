//! One place that bounds every per-client resource: open connections, how long a connection
//! may sit without a request, sign-in attempts (per address and per username), concurrent
//! Argon2 password checks and concurrent page rewrites. Each limit counts its hits in
//! [`Hits`] (read with [`Limits::hits`], for metrics) and logs a hit at warn level at most
//! once a minute per limit, with a fixed vocabulary ([`Limit::name`]).
//!
//! The rules, each a unit-tested function:
//! - connections: [`connections::Slots::admit`] (total and per-address caps) and
//!   [`connections::close_when`] (first request within `proxy.header_read_timeout` of
//!   accept, then closed after `limits.idle_timeout` with no request in progress);
//! - sign-in: [`keys::check_form`] (field lengths), [`keys::address_key`] (an IPv6 client
//!   is its /64), [`sign_in::SignInLimits`] (who may try, and what a failure costs);
//! - work: [`work::Bound`] (a bounded number at once, a bounded wait for a turn) and
//!   [`work::Queue`] (a bounded number waiting for a background task, the rest dropped).
//!
//! `docs/security.md` ("Resource limits") states the threat each limit answers.

pub mod buckets;
pub mod connections;
pub mod keys;
pub mod sign_in;
pub mod work;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Config;

/// How often each limit may log that it was hit.
pub const WARN_EVERY: Duration = Duration::from_secs(60);
/// How often idle rate-limit entries are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How long a password check may wait for a turn before the sign-in gets 503.
pub const PASSWORD_CHECK_WAIT: Duration = Duration::from_secs(2);
/// How long a page may wait for a rewrite turn before it is passed on unchanged.
pub const REWRITE_WAIT: Duration = Duration::from_secs(1);

/// The limits, by the name they are logged and counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Limit {
    /// A connection over `limits.max_connections` was closed at accept.
    ConnectionsTotal,
    /// A connection over `limits.max_connections_per_address` was closed at accept.
    ConnectionsPerAddress,
    /// A connection sent no complete request head within `proxy.header_read_timeout`.
    HeaderTimeout,
    /// A connection with no request in progress was closed after `limits.idle_timeout`.
    IdleConnection,
    /// A sign-in from an address over `login.attempts_per_minute` got 429.
    SignInAddress,
    /// A sign-in for a username over its failure limit, from an address that failed for it,
    /// got 429.
    SignInUsername,
    /// A sign-in form with a field over its length limit got 400.
    SignInForm,
    /// A password check waited for a turn.
    PasswordCheckWait,
    /// A password check waited too long and the sign-in got 503.
    PasswordCheckRefused,
    /// A page waited too long for a rewrite turn and was passed on unchanged.
    RewriteSkipped,
    /// A rate-limit store was full and forgot its entries closest to expiry.
    RateKeysEvicted,
    /// A request to idlegate's own routes took longer than [`keys::OWN_ROUTE_DEADLINE`]
    /// (a body sent too slowly, say) and got 408.
    RequestDeadline,
    /// Work for the app after a tab ended (releasing its uploads, ending its session there)
    /// was dropped: [`work::QUEUE_SIZE`] items already waited for an app that answers too
    /// slowly.
    AppWorkDropped,
}

impl Limit {
    /// Every limit, in counter order.
    pub const ALL: [Limit; 13] = [
        Limit::ConnectionsTotal,
        Limit::ConnectionsPerAddress,
        Limit::HeaderTimeout,
        Limit::IdleConnection,
        Limit::SignInAddress,
        Limit::SignInUsername,
        Limit::SignInForm,
        Limit::PasswordCheckWait,
        Limit::PasswordCheckRefused,
        Limit::RewriteSkipped,
        Limit::RateKeysEvicted,
        Limit::RequestDeadline,
        Limit::AppWorkDropped,
    ];

    /// The name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Limit::ConnectionsTotal => "connections_total",
            Limit::ConnectionsPerAddress => "connections_per_address",
            Limit::HeaderTimeout => "header_timeout",
            Limit::IdleConnection => "idle_connection",
            Limit::SignInAddress => "sign_in_address",
            Limit::SignInUsername => "sign_in_username",
            Limit::SignInForm => "sign_in_form",
            Limit::PasswordCheckWait => "password_check_wait",
            Limit::PasswordCheckRefused => "password_check_refused",
            Limit::RewriteSkipped => "rewrite_skipped",
            Limit::RateKeysEvicted => "rate_keys_evicted",
            Limit::RequestDeadline => "request_deadline",
            Limit::AppWorkDropped => "app_work_dropped",
        }
    }

    /// Whether a hit is worth a warning. An idle close or a wait is ordinary, and so is a
    /// header timeout: browsers open spare connections ahead of need (Chromium's preconnect)
    /// and leave them silent, so every page load would warn. They are counted all the same
    /// (`idlegate_limit_hits_total`).
    fn warns(self) -> bool {
        !matches!(
            self,
            Limit::IdleConnection | Limit::PasswordCheckWait | Limit::HeaderTimeout
        )
    }
}

/// How often each limit was hit since start.
#[derive(Debug, Default)]
pub struct Hits {
    counts: [AtomicU64; Limit::ALL.len()],
    /// Milliseconds after `started` of each limit's last warning, plus one (0: never).
    warned: [AtomicU64; Limit::ALL.len()],
}

impl Hits {
    /// How often `limit` was hit.
    pub fn get(&self, limit: Limit) -> u64 {
        self.counts[limit as usize].load(Ordering::Relaxed)
    }

    /// Every limit's name and count, for an exporter.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        Limit::ALL
            .iter()
            .map(|l| (l.name(), self.get(*l)))
            .collect()
    }

    /// Counts a hit; `true` when it should be logged (the first in [`WARN_EVERY`]).
    fn count(&self, limit: Limit, since_start: Duration) -> bool {
        self.counts[limit as usize].fetch_add(1, Ordering::Relaxed);
        let now = u64::try_from(since_start.as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let every = u64::try_from(WARN_EVERY.as_millis()).unwrap_or(u64::MAX);
        let last = &self.warned[limit as usize];
        let seen = last.load(Ordering::Relaxed);
        (seen == 0 || now.saturating_sub(seen) >= every)
            && last
                .compare_exchange(seen, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// The limits of one gateway, shared by its connections and handlers.
#[derive(Debug)]
pub struct Limits {
    started: Instant,
    hits: Hits,
    /// Open connections.
    pub connections: connections::Slots,
    /// Sign-in attempts.
    pub sign_ins: sign_in::SignInLimits,
    /// Argon2 password checks at once.
    pub password_checks: work::Bound,
    /// Page rewrites at once.
    pub rewrites: work::Bound,
    /// `limits.idle_timeout` in milliseconds, read when a connection is accepted.
    idle_timeout_ms: AtomicU64,
}

impl Limits {
    /// The limits `config` sets. Call [`Limits::start_sweeping`] inside a runtime to forget
    /// idle rate-limit entries.
    pub fn new(config: &Config) -> Arc<Self> {
        let limits = &config.limits;
        Arc::new(Self {
            started: Instant::now(),
            hits: Hits::default(),
            connections: connections::Slots::new(
                limits.max_connections,
                limits.max_connections_per_address,
            ),
            sign_ins: sign_in::SignInLimits::new(config.login.attempts_per_minute),
            password_checks: work::Bound::new(limits.password_checks, PASSWORD_CHECK_WAIT),
            rewrites: work::Bound::new(limits.page_rewrites, REWRITE_WAIT),
            idle_timeout_ms: AtomicU64::new(millis(limits.idle_timeout)),
        })
    }

    /// Applies the limits of `config` that can change while idlegate runs (a configuration
    /// reload): `limits.max_connections_per_address`, `limits.idle_timeout` (for connections
    /// accepted from now on) and `login.attempts_per_minute`. The others
    /// (`limits.max_connections`, `limits.password_checks`, `limits.page_rewrites`) size
    /// what is already shared and take a restart.
    pub fn update(&self, config: &Config) {
        let limits = &config.limits;
        self.connections
            .set_per_address(limits.max_connections_per_address);
        self.idle_timeout_ms
            .store(millis(limits.idle_timeout), Ordering::Relaxed);
        self.sign_ins
            .set_per_minute(config.login.attempts_per_minute);
    }

    /// How long a connection may sit with no request in progress (`limits.idle_timeout`).
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.load(Ordering::Relaxed))
    }

    /// The hit counters.
    pub fn hits(&self) -> &Hits {
        &self.hits
    }

    /// Counts a hit of `limit`, and logs it when it is the first in [`WARN_EVERY`].
    pub fn hit(&self, limit: Limit) {
        if self.hits.count(limit, self.started.elapsed()) && limit.warns() {
            tracing::warn!(
                limit = limit.name(),
                hits = self.hits.get(limit),
                "a limit was hit (logged once a minute per limit)"
            );
        }
    }

    /// Forgets rate-limit entries that no longer limit anyone, every minute, until the
    /// limits are dropped.
    pub fn start_sweeping(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limits) = weak.upgrade() else {
                    return;
                };
                limits.sign_ins.sweep(Instant::now());
            }
        });
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn update_changes_the_live_limits_only() {
        use std::net::{IpAddr, Ipv4Addr};
        let config = |toml: &str| Config::from_toml(toml).unwrap();
        let limits = Limits::new(&config(""));
        let client = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let slot = limits.connections.admit(client, false).unwrap();
        limits.update(&config(
            "[limits]\nidle_timeout = \"5s\"\nmax_connections_per_address = 1\n\
             [login]\nattempts_per_minute = 1\n",
        ));
        assert_eq!(limits.idle_timeout(), Duration::from_secs(5));
        // The open connection stays; a second one from the address is refused.
        assert_eq!(
            limits.connections.admit(client, false).err(),
            Some(connections::Refused::PerAddress)
        );
        drop(slot);
        assert!(limits.connections.admit(client, false).is_ok());
        let now = Instant::now();
        assert_eq!(limits.sign_ins.admit(client, "a", now).refusal, None);
        assert_eq!(
            limits.sign_ins.admit(client, "a", now).refusal,
            Some(sign_in::Refusal::Address)
        );
    }

    #[test]
    fn hits_are_counted_and_warned_once_a_minute() {
        let hits = Hits::default();
        let limit = Limit::HeaderTimeout;
        assert!(hits.count(limit, Duration::ZERO));
        assert!(!hits.count(limit, Duration::from_secs(59)));
        assert!(hits.count(limit, Duration::from_secs(60)));
        assert!(!hits.count(limit, Duration::from_secs(61)));
        // Each limit has its own interval.
        assert!(hits.count(Limit::SignInForm, Duration::from_secs(61)));
        assert_eq!(hits.get(limit), 4);
        let snapshot = hits.snapshot();
        assert_eq!(snapshot.len(), Limit::ALL.len());
        assert!(snapshot.contains(&("header_timeout", 4)));
        for (i, limit) in Limit::ALL.iter().enumerate() {
            assert_eq!(*limit as usize, i);
        }
    }
}
