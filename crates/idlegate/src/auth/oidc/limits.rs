//! What the OpenID sign-in refused or rate-limited, counted for metrics and logged at most
//! once per [`WARN_EVERY`] per kind, with a fixed vocabulary (no client-chosen text).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A kind of limit is logged at most once per this interval (its count always grows).
pub const WARN_EVERY: Duration = Duration::from_secs(60);

/// One kind of limit: how often it was hit, and when it was last logged.
#[derive(Default)]
pub struct Tally {
    count: AtomicU64,
    logged: Mutex<Option<Instant>>,
}

impl Tally {
    /// How many times it was hit since start.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Counts one hit; returns whether to log it now (the first time, then once per
    /// [`WARN_EVERY`]).
    pub fn hit(&self) -> bool {
        self.count.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut logged = self
            .logged
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let due = logged.is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY);
        if due {
            *logged = Some(now);
        }
        due
    }
}

/// The OpenID sign-in's counters, readable at any time (for a metrics exporter).
#[derive(Default)]
pub struct OidcCounters {
    /// Sign-ins started with a return path over `MAX_RETURN_PATH`, sent to the app's root.
    pub return_path_cut: Tally,
    /// Callbacks refused for lack of a valid attempt cookie (missing, forged, expired, or
    /// for another `state`).
    pub attempt_refused: Tally,
    /// Times the provider's signing keys were fetched again for an unknown key.
    pub keys_refetched: Tally,
    /// Times a refetch of the signing keys was wanted but skipped (one per
    /// `KEY_REFETCH_EVERY`).
    pub key_refetch_limited: Tally,
}

impl OidcCounters {
    /// Counts a hit of `tally` and logs it at warn, at most once per [`WARN_EVERY`].
    pub fn hit(&self, tally: &Tally, what: &'static str) {
        if tally.hit() {
            tracing::warn!(
                limit = what,
                total = tally.count(),
                "OpenID sign-in limit reached (logged once a minute)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_limit_is_counted_every_time_and_logged_once_a_minute() {
        let tally = Tally::default();
        assert!(tally.hit());
        assert!(!tally.hit());
        tokio::time::advance(WARN_EVERY - Duration::from_millis(1)).await;
        assert!(!tally.hit());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(tally.hit());
        assert_eq!(tally.count(), 4);
    }
}
