//! The store: what several replicas of idlegate will share, behind small traits.
//!
//! - [`LoginStore`]: login sessions, their last activity and their revocation;
//! - [`EndedSessions`]: tombstones of ended tab sessions (app session ids, page tokens), so a
//!   stale page cannot resume what ended and is told why instead;
//! - [`TabDirectory`]: which tab sessions are open and whose they are (per-user counts, the
//!   session listing).
//!
//! Times at this boundary are wall-clock milliseconds since the Unix epoch ([`UnixMillis`]),
//! never process-local `Instant`s; a store never reads a clock itself: callers pass `now`
//! ([`WallClock`] converts). Every method answers at once and never waits on a network: an
//! implementation shared between replicas keeps a local view that it refreshes, and writes
//! through in the background. The data path (a person's activity) touches only a
//! [`LoginSession`]'s atomics.
//!
//! [`memory::MemoryStore`] is the default implementation; `conformance` (built for tests
//! only: its checks panic like assertions) is the suite every implementation must pass.

#[cfg(test)]
pub(crate) mod conformance;
mod login;
pub mod memory;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::lifecycle::{EndNotice, TabId};
pub use login::{Identity, LoginLimits, LoginSession};

/// Milliseconds since the Unix epoch (UTC).
pub type UnixMillis = u64;

/// Login sessions, by their secret id.
pub trait LoginStore: Send + Sync {
    /// Stores a new login session.
    fn insert(&self, login: Arc<LoginSession>);
    /// The login with this id, unless it is unknown or revoked. Expiry is the caller's to
    /// judge ([`LoginSession::deadline`]).
    fn get(&self, id: &str) -> Option<Arc<LoginSession>>;
    /// Revokes the login with this id and forgets it; returns it when it was live.
    fn revoke(&self, id: &str) -> Option<Arc<LoginSession>>;
    /// The live logins of `user`.
    fn of_user(&self, user: &str) -> Vec<Arc<LoginSession>>;
    /// Every live login (the session listing; sweeping).
    fn all(&self) -> Vec<Arc<LoginSession>>;
}

/// An id an ended tab session was known by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndedId<'a> {
    /// The app's own session id (what a page asks to resume).
    AppSession(&'a str),
    /// The page script's token for its tab.
    PageToken(&'a str),
}

/// Tombstones of ended tab sessions, each remembered for a while.
pub trait EndedSessions: Send + Sync {
    /// Remembers that the tab known by `id` ended, and how; forgotten `ttl` after `now`.
    fn bury(&self, id: EndedId<'_>, notice: &EndNotice, now: UnixMillis, ttl: Duration);
    /// How the tab known by `id` ended, if that is still remembered at `now`.
    fn find(&self, id: EndedId<'_>, now: UnixMillis) -> Option<EndNotice>;
}

/// An open tab session, as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TabRecord {
    pub tab: TabId,
    /// The signed-in user's key, when people sign in.
    pub user: Option<String>,
    pub opened: UnixMillis,
}

/// The open tab sessions.
pub trait TabDirectory: Send + Sync {
    /// A tab opened.
    fn open(&self, record: TabRecord);
    /// A tab ended; returns its record when it was open.
    fn close(&self, tab: TabId) -> Option<TabRecord>;
    /// How many tabs `user` has open.
    fn count_of(&self, user: &str) -> usize;
    /// The open tabs of `user`, oldest first.
    fn of_user(&self, user: &str) -> Vec<TabRecord>;
    /// Every open tab, oldest first.
    fn all(&self) -> Vec<TabRecord>;
}

/// The stores one idlegate uses, and the clock that converts its times. Cheap to clone.
#[derive(Clone)]
pub struct Stores {
    pub clock: WallClock,
    pub logins: Arc<dyn LoginStore>,
    pub ended: Arc<dyn EndedSessions>,
    pub tabs: Arc<dyn TabDirectory>,
}

impl Stores {
    /// Everything in this process's memory (the default).
    pub fn memory() -> Self {
        let store = Arc::new(memory::MemoryStore::default());
        Self {
            clock: WallClock::now(),
            logins: store.clone(),
            ended: store.clone(),
            tabs: store,
        }
    }
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

/// Converts between the process's monotonic clock (tokio's, which tests can pause) and
/// wall-clock [`UnixMillis`], anchored once: later conversions follow the monotonic clock,
/// so a wall-clock step (NTP) moves no deadline.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    anchor: Instant,
    anchor_ms: UnixMillis,
}

impl WallClock {
    /// A clock anchored at this moment.
    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            anchor: Instant::now(),
            anchor_ms: since_epoch.as_millis() as UnixMillis,
        }
    }

    /// The current time.
    pub fn now_ms(&self) -> UnixMillis {
        self.ms(Instant::now())
    }

    /// `at` in wall-clock milliseconds.
    pub fn ms(&self, at: Instant) -> UnixMillis {
        match at.checked_duration_since(self.anchor) {
            Some(after) => self.anchor_ms + after.as_millis() as UnixMillis,
            None => self
                .anchor_ms
                .saturating_sub((self.anchor - at).as_millis() as UnixMillis),
        }
    }

    /// `ms` on the monotonic clock.
    pub fn instant(&self, ms: UnixMillis) -> Instant {
        if ms >= self.anchor_ms {
            self.anchor + Duration::from_millis(ms - self.anchor_ms)
        } else {
            self.anchor
                .checked_sub(Duration::from_millis(self.anchor_ms - ms))
                .unwrap_or(self.anchor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_wall_clock_follows_the_monotonic_one() {
        let clock = WallClock::now();
        let start = clock.now_ms();
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.now_ms() - start, 90_000);
        let at = Instant::now();
        assert_eq!(clock.instant(clock.ms(at)), at);
        let earlier = at - Duration::from_secs(200);
        assert_eq!(clock.ms(at) - clock.ms(earlier), 200_000);
    }

    #[test]
    fn the_memory_store_passes_the_conformance_suite() {
        conformance::run(&|| Stores::memory());
    }
}
