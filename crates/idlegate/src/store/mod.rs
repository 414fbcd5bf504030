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
pub mod redis;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::lifecycle::{EndNotice, EndReason, TabId};
pub use login::{key_of, Identity, LoginLimits, LoginSession};

/// Milliseconds since the Unix epoch (UTC).
pub type UnixMillis = u64;

/// Login sessions, by their secret id.
pub trait LoginStore: Send + Sync {
    /// Stores a new login session.
    fn insert(&self, login: Arc<LoginSession>);
    /// The login whose cookie carries the secret `id`, unless it is unknown or revoked.
    /// Expiry is the caller's to judge ([`LoginSession::deadline`]).
    fn get(&self, id: &str) -> Option<Arc<LoginSession>>;
    /// The login with this key ([`LoginSession::key`]), unless it is unknown or revoked.
    fn by_key(&self, key: &str) -> Option<Arc<LoginSession>>;
    /// Revokes the login with this key ([`LoginSession::key`]) for `reason` (signed out,
    /// expired, ended by an administrator) and forgets it; returns it when it was live.
    fn revoke(&self, key: &str, reason: EndReason) -> Option<Arc<LoginSession>>;
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
    /// The replica holding the tab's socket ([`Stores::replica`]).
    pub replica: Replica,
    /// The tab's number on that replica.
    pub tab: TabId,
    /// The signed-in user's key, when people sign in.
    pub user: Option<String>,
    pub opened: UnixMillis,
    /// When a person was last active in it (or it opened).
    pub last_activity: UnixMillis,
}

/// The open tab sessions of every replica.
pub trait TabDirectory: Send + Sync {
    /// A tab opened.
    fn open(&self, record: TabRecord);
    /// Tab `tab` of `replica` ended; returns its record when it was open.
    fn close(&self, replica: Replica, tab: TabId) -> Option<TabRecord>;
    /// A person was active in tab `tab` of `replica` at `at` (never moves it back).
    fn touch(&self, replica: Replica, tab: TabId, at: UnixMillis);
    /// Leaves `tab`, known by `ids`, for whichever replica its page reaches next, until
    /// `ttl` after `now`.
    fn hand_off(&self, ids: &[EndedId<'_>], tab: HandedOff, now: UnixMillis, ttl: Duration);
    /// The tab left under any of `ids`, if one still waits at `now`.
    fn handed_off(&self, ids: &[EndedId<'_>], now: UnixMillis) -> Option<HandedOff>;
    /// Takes the tab left under any of `ids` (once: it waits no longer, under any id).
    fn take_handed_off(&self, ids: &[EndedId<'_>], now: UnixMillis) -> Option<HandedOff>;
    /// How many tabs `user` has open.
    fn count_of(&self, user: &str) -> usize;
    /// How many tabs are open.
    fn total(&self) -> usize;
    /// The open tabs of `user`, oldest first.
    fn of_user(&self, user: &str) -> Vec<TabRecord>;
    /// Every open tab, oldest first.
    fn all(&self) -> Vec<TabRecord>;
}

/// A tab a stopping replica left for the next one its page reaches (a rolling update), so
/// it goes on as the same tab session, with its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandedOff {
    /// The key of the login it was opened under ([`LoginSession::key`]): only that login
    /// may take it over.
    pub login: Option<String>,
    pub user: Option<String>,
    pub opened: UnixMillis,
    pub last_activity: UnixMillis,
}

/// A replica: one idlegate process, known by a random number drawn when it starts.
pub type Replica = u64;

/// What one replica asks the others to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// End every tab of `user` here (they signed out; an administrator ended them).
    EndUser { user: String, reason: EndReason },
    /// End the tabs of the login with this key here: another replica revoked it, and
    /// whatever told this one to end them (a sign-out) may have been missed.
    EndLogin { key: String, reason: EndReason },
    /// End tab `tab` if this replica holds it (an administrator; a cap making room).
    EndTab {
        replica: Replica,
        tab: TabId,
        reason: EndReason,
    },
}

/// The other replicas, and the state of the link to them.
pub trait Cluster: Send + Sync {
    /// Sends `command` to every other replica (nothing when there is none).
    fn send(&self, command: Command);
    /// Whether the shared store can be reached now (always, for one process's memory).
    fn available(&self) -> bool;
    /// Whether other processes share the store (so a stopping one hands its tabs over).
    fn shared(&self) -> bool;
    /// Changes dropped since start because the store stayed unreachable while a bounded
    /// queue of them filled (always 0 for one process's memory).
    fn dropped(&self) -> u64;
    /// Revokes every login of `user` the shared store lists, for `reason`, including any
    /// this replica's view missed (the index by user). Nothing to do for one process.
    fn revoke_user(&self, _user: &str, _reason: EndReason) {}
    /// The logins' limits changed (a reload): what the store keeps of logins lives as long
    /// as they now may.
    fn login_limits(&self, _limits: LoginLimits) {}
}

/// The stores one idlegate uses, and the clock that converts its times. Cheap to clone.
#[derive(Clone)]
pub struct Stores {
    pub clock: WallClock,
    /// This process.
    pub replica: Replica,
    pub logins: Arc<dyn LoginStore>,
    pub ended: Arc<dyn EndedSessions>,
    pub tabs: Arc<dyn TabDirectory>,
    pub cluster: Arc<dyn Cluster>,
    /// How late another replica's activity may reach this one's view: login deadlines are
    /// judged this much later, so a login is never ended while its person is active
    /// elsewhere. Zero for one process.
    pub sync_lag: Duration,
}

impl Stores {
    /// Everything in this process's memory (the default).
    pub fn memory() -> Self {
        let store = Arc::new(memory::MemoryStore::default());
        Self {
            clock: WallClock::now(),
            replica: rand::random(),
            logins: store.clone(),
            ended: store.clone(),
            tabs: store.clone(),
            cluster: store,
            sync_lag: Duration::ZERO,
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
