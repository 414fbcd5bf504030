//! Tab sessions: their registry, their state, and the events that move their deadlines.
//!
//! The proxy reports what it sees on a tab's connection as app-agnostic [`Signal`]s, the page
//! script reports a person's input ([`Report`]), and the tracker decides what is a person:
//!
//! - **Input rule** (the page script reports): a person's input in the page is the authority.
//!   A message to the app counts only when the script saw a person cause it
//!   ([`attribution`]); the app's own automatic traffic (component timers, auto-refreshing
//!   fragments, lazy loads, reconnects, scripts in the page) never counts, whatever its type.
//! - **Messages rule** (no script): only the messages a person can cause count (a rerun not
//!   marked automatic, stop, clear cache, a changed sort, an upload).
//!
//! The tracker keeps each tab's state here and what replicas will share in the [`Stores`]
//! (open tabs per user, tombstones of ended tabs, logins), hands deadline changes to the
//! [`reaper`], admits connections ([`admission`]), ends tabs ([`ending`]) and publishes each
//! of these as a lifecycle [`Event`](crate::lifecycle::Event). It knows nothing about any
//! app's protocol and does no I/O of its own.
//!
//! Activity is the hot path: it is one atomic store, with no lock and no timer reset. The
//! reaper notices a later deadline lazily when the old one fires.

mod admission;
mod attribution;
pub mod capacity;
mod connection;
mod ending;
mod handoff;
mod listing;
pub mod policy;
pub mod reaper;
mod refusals;
mod reports;
mod restart;
mod tab;
mod uploads;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::TabPolicy;
pub use crate::lifecycle::{ActivityRule, EndNotice, EndReason, Release, Signal, TabId};
use crate::lifecycle::{Event, Publisher};
use crate::store::{LoginLimits, Stores};
pub use admission::{Entry, Refused, SessionLookup};
pub use connection::TabConnection;
pub use listing::{TabActivity, TabView};
pub use policy::{Deadline, RunCause, TabState};
pub use refusals::RefusedLimit;
pub use reports::{Report, ReportEvent, TabStatus};
pub use tab::Tab;
pub use uploads::UploadGuard;

/// At most this many releases are kept per tab; past that the oldest are dropped.
const RELEASE_CAP: usize = 256;
/// After a reconnect, how long the page's own rerun is expected (it comes at once).
const PAGE_RERUN_WINDOW: Duration = Duration::from_secs(3);
/// Reports that change a tab's state, per tab: a steady rate and a burst. The page script
/// sends far fewer; a flood is answered but changes nothing.
const REPORTS_PER_SECOND: NonZeroU32 = nonzero(2);
const REPORT_BURST: NonZeroU32 = nonzero(10);

const fn nonzero(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    }
}

/// What a connection is told when its tab ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    pub notice: EndNotice,
    /// Whether the browser should be told. `false` when another connection took the tab
    /// over and this one should just close.
    pub notify_browser: bool,
}

impl Ending {
    /// A takeover: the connection closes quietly.
    pub fn quiet() -> Self {
        Self {
            notice: EndNotice::reason(EndReason::Closed),
            notify_browser: false,
        }
    }
}

/// The tab registry. Cheap to clone.
#[derive(Clone)]
pub struct Tracker {
    shared: Arc<Shared>,
}

struct Shared {
    /// The limits, swapped whole by a configuration reload ([`Tracker::set_policy`]). Each
    /// decision reads one snapshot ([`Tracker::policy`]) and judges by it throughout.
    policy: ArcSwap<TabPolicy>,
    stores: Stores,
    events: Publisher,
    epoch: Instant,
    next_id: AtomicU64,
    registry: Mutex<Registry>,
    reaper: mpsc::UnboundedSender<TabId>,
    /// Per tab, and apart for input and for the page's own news.
    reports: DefaultKeyedRateLimiter<(TabId, bool)>,
    /// Shutting down: open tabs keep working, new ones are refused.
    draining: std::sync::atomic::AtomicBool,
    /// The app's memory is over its high water mark: new tabs are refused.
    memory_full: std::sync::atomic::AtomicBool,
    /// Pages lately refused a new tab, by their script's token.
    refusals: Mutex<refusals::Refusals>,
}

/// The tabs of this process and the ids that find them.
#[derive(Default)]
struct Registry {
    tabs: HashMap<TabId, Arc<Tab>>,
    by_app_session: HashMap<String, TabId>,
    /// Tabs by the token their page's script chose (see [`Report`]).
    by_client: HashMap<String, TabId>,
}

impl Tracker {
    /// A tracker with everything in memory and no subscribers; starts its reaper on the
    /// current tokio runtime.
    pub fn start(policy: TabPolicy) -> Self {
        Self::new(policy, Stores::memory(), Publisher::default())
    }

    /// A tracker keeping shared state in `stores` and telling `events` what happens; starts
    /// its reaper on the current tokio runtime.
    pub fn new(policy: TabPolicy, stores: Stores, events: Publisher) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let quota = Quota::per_second(REPORTS_PER_SECOND).allow_burst(REPORT_BURST);
        let tracker = Self {
            shared: Arc::new(Shared {
                policy: ArcSwap::from_pointee(policy),
                stores,
                events,
                // Back a day, so a tab another process handed over keeps its earlier times.
                epoch: Instant::now()
                    .checked_sub(Duration::from_secs(24 * 3600))
                    .unwrap_or_else(Instant::now),
                next_id: AtomicU64::new(1),
                registry: Mutex::new(Registry::default()),
                reaper: tx,
                reports: RateLimiter::keyed(quota),
                draining: std::sync::atomic::AtomicBool::new(false),
                memory_full: std::sync::atomic::AtomicBool::new(false),
                refusals: Mutex::default(),
            }),
        };
        tokio::spawn(reaper::run(Arc::downgrade(&tracker.shared), rx));
        tracker
    }

    /// Starts a graceful shutdown: open tabs keep working (and may reconnect), new tabs are
    /// refused with reason `shutdown`, and readiness fails.
    pub fn drain(&self) {
        self.shared.draining.store(true, Ordering::Relaxed);
    }

    /// Tells subscribers (the metrics) that a request failed because of the app.
    pub fn upstream_failed(&self, fault: &'static str) {
        self.publish(|| Event::UpstreamFailed { fault });
    }

    /// Whether a graceful shutdown started.
    pub fn is_draining(&self) -> bool {
        self.shared.draining.load(Ordering::Relaxed)
    }

    /// The limits in force now: a snapshot, unchanged by a later [`Tracker::set_policy`].
    pub fn policy(&self) -> Arc<TabPolicy> {
        self.shared.policy.load_full()
    }

    /// Replaces the limits (a configuration reload): every open tab is judged by `policy`
    /// from now on. Each tab's deadline is computed again from its state, so a tab already
    /// past its new deadline ends at once with its usual reason, and a longer limit moves its
    /// end later. The caps (`max_per_user`, `max_total`) apply to the next new tab: tabs open
    /// over a lowered cap are not ended for it.
    pub fn set_policy(&self, policy: TabPolicy) {
        let stores = &self.shared.stores;
        stores.cluster.login_limits(login_limits(&policy));
        self.shared.policy.store(Arc::new(policy));
        for id in self.open_tabs() {
            self.reschedule(id);
        }
    }

    /// The stores it keeps shared state in.
    pub fn stores(&self) -> &Stores {
        &self.shared.stores
    }

    /// Number of tab sessions that have not ended.
    pub fn len(&self) -> usize {
        self.registry().tabs.len()
    }

    /// The ids of the open tab sessions, oldest first.
    pub fn open_tabs(&self) -> Vec<TabId> {
        let mut ids: Vec<TabId> = self.registry().tabs.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Whether no tab session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current deadline of a tab, if it is open.
    pub fn deadline_of(&self, id: TabId) -> Option<Deadline> {
        let tab = self.registry().tabs.get(&id).cloned()?;
        let policy = self.policy();
        policy::deadline(&self.state_of(&tab, &policy), &policy)
    }

    /// Which rule judges a tab now, if it is open.
    pub fn rule_of(&self, id: TabId) -> Option<ActivityRule> {
        let tab = self.registry().tabs.get(&id).cloned()?;
        let rule = lock(&tab.inner).rule();
        Some(rule)
    }

    /// The tab's state, its login's deadline by `policy`'s login limits.
    fn state_of(&self, tab: &Tab, policy: &TabPolicy) -> TabState {
        let inner = lock(&tab.inner);
        let clock = &self.shared.stores.clock;
        TabState {
            opened_at: tab.opened_at,
            last_activity: self.instant(tab.last_activity_ms.load(Ordering::Relaxed)),
            running: inner.running_cause(),
            uploading: inner.person_uploading(),
            disconnected_since: inner.disconnected_since,
            hidden_since: inner.hidden_since,
            // Judged late by the store's lag: another replica's activity may be on its way.
            login_deadline: tab
                .login
                .as_ref()
                .and_then(|login| login.deadline(&login_limits(policy)))
                .map(|at| clock.instant(at) + self.shared.stores.sync_lag),
        }
    }

    /// A person was active in the tab at `at` (now, or the time a report says), as `source`
    /// tells: the tab's idle time and its login's count from then.
    fn touch_at(&self, tab: &Tab, at: Instant, source: ActivityRule) {
        self.touch_tab(tab, at);
        if let Some(login) = &tab.login {
            login.touch(self.shared.stores.clock.ms(at));
            self.publish(|| Event::LoginTouched {
                user: login.identity.user.clone(),
            });
        }
        self.publish(|| Event::Activity {
            tab: tab.id,
            source,
        });
    }

    /// The tab's idle time counts from `at`; its login's does not move.
    fn touch_tab(&self, tab: &Tab, at: Instant) {
        tab.last_activity_ms
            .fetch_max(self.millis(at), Ordering::Relaxed);
        let stores = &self.shared.stores;
        stores
            .tabs
            .touch(stores.replica, tab.id, stores.clock.ms(at));
    }

    fn touch(&self, tab: &Tab, source: ActivityRule) {
        self.touch_at(tab, Instant::now(), source);
    }

    fn publish(&self, event: impl FnOnce() -> Event) {
        self.shared.events.publish(event);
    }

    fn reschedule(&self, id: TabId) {
        // The reaper only stops when the tracker is gone, so a failed send has no one to tell.
        let _ = self.shared.reaper.send(id);
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        lock(&self.shared.registry)
    }

    fn millis(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.shared.epoch).as_millis() as u64
    }

    fn instant(&self, millis: u64) -> Instant {
        self.shared.epoch + Duration::from_millis(millis)
    }

    fn tab_of(&self, app_session: &str) -> Option<Arc<Tab>> {
        let registry = self.registry();
        registry
            .by_app_session
            .get(app_session)
            .and_then(|id| registry.tabs.get(id))
            .cloned()
    }
}

fn login_limits(policy: &TabPolicy) -> LoginLimits {
    LoginLimits {
        idle_timeout: policy.login_idle_timeout,
        max_lifetime: policy.login_max_lifetime,
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: every critical
/// section here leaves the state consistent at each step, so the data is still sound.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
