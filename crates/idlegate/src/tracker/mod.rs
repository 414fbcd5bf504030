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
//! The tracker keeps each tab's state, hands deadline changes to the [`reaper`], and ends
//! tabs (telling the connection, remembering ended app sessions so they cannot be resumed,
//! and logging the end with the rule that judged the tab). It knows nothing about any app's
//! protocol and does no I/O of its own.
//!
//! Activity is the hot path: it is one atomic store, with no lock and no timer reset. The
//! reaper notices a later deadline lazily when the old one fires.

mod attribution;
mod connection;
pub mod policy;
pub mod reaper;
mod reports;
mod tab;
mod tombstones;
mod uploads;

use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::auth::LoginSession;
use crate::config::{OnLimit, TabPolicy};
pub use crate::lifecycle::{ActivityRule, EndNotice, Release, TabId};
use crate::redact::short_hash;
pub use connection::TabConnection;
pub use policy::{Deadline, EndReason, RunCause, TabState};
pub use reports::{Report, ReportEvent, TabStatus};
pub use tab::Tab;
use tab::TabInner;
use tombstones::Tombstones;
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

/// What a connection tells the tracker, already translated from the app's protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// A message only a person can cause (stop a run, clear the cache, sort a table). Counts
    /// under the messages rule; under the input rule the person's input already did.
    PersonMessage,
    /// The page asked the app to run its script. `automatic`: the app's own timer asked (an
    /// auto-refreshing fragment); `fragment`: only a fragment of the page runs.
    RunRequested { automatic: bool, fragment: bool },
    /// The app started (`true`) or finished (`false`) running the script.
    Running(bool),
    /// The app set a timer that makes the page ask for runs by itself.
    TimerSet,
    /// The page the tab shows: its path and query (`/report?id=42`), and whether it is
    /// embedded in another page (an iframe).
    Page { path: String, embedded: bool },
    /// The app's own id for this session.
    SessionId(String),
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

/// The ids a connecting page may use: the ones that belong to its login. A page cannot take
/// over another login's tab or app session by naming its id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// The app session to resume.
    pub resume: Option<String>,
    /// The page script's token.
    pub client: Option<String>,
}

/// Whether a connection that wants to resume an app session may go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead, with these ids (ids of another login's tab are dropped).
    Allowed(Entry),
    /// The app session was ended; the browser must be told so instead.
    Ended(EndNotice),
    /// The user has as many tabs open as allowed, and new ones are refused.
    OverUserCap,
}

/// Why a connection did not become (or join) a tab.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the tab session ended ({})", .0.reason)]
    Ended(EndNotice),
    #[error("the user has as many tabs open as allowed")]
    OverUserCap,
}

/// Where the tracker sends what the app must free when tabs end.
#[derive(Default)]
pub struct Outlets {
    /// The [`Release`]s of every tab that ends, to replay to the app.
    pub releases: Option<mpsc::UnboundedSender<Vec<Release>>>,
    /// The app session id of every tab that ends, for the app to end it for good.
    pub ended_sessions: Option<mpsc::UnboundedSender<String>>,
}

/// The tab registry. Cheap to clone.
#[derive(Clone)]
pub struct Tracker {
    shared: Arc<Shared>,
}

struct Shared {
    policy: TabPolicy,
    epoch: Instant,
    next_id: AtomicU64,
    registry: Mutex<Registry>,
    reaper: mpsc::UnboundedSender<TabId>,
    releases: Option<mpsc::UnboundedSender<Vec<Release>>>,
    ended_sessions: Option<mpsc::UnboundedSender<String>>,
    reports: DefaultKeyedRateLimiter<TabId>,
}

#[derive(Default)]
struct Registry {
    tabs: HashMap<TabId, Arc<Tab>>,
    by_app_session: HashMap<String, TabId>,
    /// Tabs by the token their page's script chose (see [`Report`]).
    by_client: HashMap<String, TabId>,
    /// Open tabs per signed-in user, oldest first.
    by_user: HashMap<String, BTreeSet<TabId>>,
    ended: Tombstones,
    ended_clients: Tombstones,
}

impl Tracker {
    /// Creates a tracker and starts its reaper on the current tokio runtime.
    pub fn start(policy: TabPolicy) -> Self {
        Self::with_releases(policy, None)
    }

    /// Like [`Tracker::start`]; the [`Release`]s of every tab that ends are sent to
    /// `releases`, for the caller to replay to the app.
    pub fn with_releases(
        policy: TabPolicy,
        releases: Option<mpsc::UnboundedSender<Vec<Release>>>,
    ) -> Self {
        Self::with_outlets(
            policy,
            Outlets {
                releases,
                ended_sessions: None,
            },
        )
    }

    /// Like [`Tracker::start`], telling `outlets` what the app must free when tabs end.
    pub fn with_outlets(policy: TabPolicy, outlets: Outlets) -> Self {
        let Outlets {
            releases,
            ended_sessions,
        } = outlets;
        let (tx, rx) = mpsc::unbounded_channel();
        let quota = Quota::per_second(REPORTS_PER_SECOND).allow_burst(REPORT_BURST);
        let tracker = Self {
            shared: Arc::new(Shared {
                policy,
                epoch: Instant::now(),
                next_id: AtomicU64::new(1),
                registry: Mutex::new(Registry::default()),
                reaper: tx,
                releases,
                ended_sessions,
                reports: RateLimiter::keyed(quota),
            }),
        };
        tokio::spawn(reaper::run(Arc::downgrade(&tracker.shared), rx));
        tracker
    }

    /// The configured limits.
    pub fn policy(&self) -> &TabPolicy {
        &self.shared.policy
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

    /// Decides whether a connection asking to resume `app_session`, from a page whose script
    /// chose the token `client`, may go to the app, and with which of those ids.
    pub fn admit(
        &self,
        app_session: Option<&str>,
        client: Option<&str>,
        login: Option<&Arc<LoginSession>>,
    ) -> Admission {
        let mut registry = self.registry();
        let now = Instant::now();
        registry.ended.expire(now);
        registry.ended_clients.expire(now);
        if let Some(notice) = registry.ended_notice(app_session, client) {
            return Admission::Ended(notice);
        }
        let entry = registry.entry(app_session, client, login);
        let resumes = registry.owned_tab(&entry).is_some();
        if !resumes && self.over_user_cap(&registry, login) == Some(OnLimit::Refuse) {
            return Admission::OverUserCap;
        }
        Admission::Allowed(entry)
    }

    /// What to do for a new tab of `login`'s user, if they are at the limit.
    fn over_user_cap(
        &self,
        registry: &Registry,
        login: Option<&Arc<LoginSession>>,
    ) -> Option<OnLimit> {
        let limit = self.shared.policy.max_per_user?;
        let open = registry
            .by_user
            .get(&login?.identity.user)
            .map_or(0, BTreeSet::len);
        (open >= limit).then_some(self.shared.policy.on_limit)
    }

    /// Registers a new connection whose upgrade the app accepted. If `entry` names the app
    /// session or the page token of a tab of this login, the connection joins that tab (a
    /// reconnect); otherwise it starts a new tab session.
    ///
    /// `login` is the signed-in browser the tab belongs to. Over the per-user limit, the
    /// user's oldest tab is ended or this one refused (`Err(OverUserCap)`), as configured.
    pub fn connect(
        &self,
        entry: &Entry,
        login: Option<Arc<LoginSession>>,
    ) -> Result<TabConnection, Refused> {
        let now = Instant::now();
        let mut registry = self.registry();
        let (resume, client) = (entry.resume.as_deref(), entry.client.as_deref());
        if let Some(notice) = registry.ended_notice(resume, client) {
            return Err(Refused::Ended(notice));
        }
        // Checked again: the tab may have changed hands while the app accepted.
        let entry = registry.entry(resume, client, login.as_ref());
        if let Some(tab) = registry.owned_tab(&entry) {
            if let Some(token) = &entry.client {
                let mut inner = lock(&tab.inner);
                if inner.client.is_none() {
                    inner.client = Some(token.clone());
                    registry.by_client.insert(token.clone(), tab.id);
                }
            }
            drop(registry);
            return Ok(self.attach(tab, now));
        }
        let evict = match self.over_user_cap(&registry, login.as_ref()) {
            Some(OnLimit::Refuse) => return Err(Refused::OverUserCap),
            Some(OnLimit::EndOldest) => login
                .as_ref()
                .and_then(|login| registry.by_user.get(&login.identity.user))
                .and_then(|tabs| tabs.first().copied()),
            None => None,
        };
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        if let Some(login) = &login {
            registry
                .by_user
                .entry(login.identity.user.clone())
                .or_default()
                .insert(id);
        }
        let (tx, rx) = watch::channel(None);
        let tab = Arc::new(Tab {
            id,
            opened_at: now,
            login,
            last_activity_ms: AtomicU64::new(self.millis(now)),
            inner: Mutex::new(TabInner::new(
                entry.resume.clone(),
                entry.client.clone(),
                tx,
            )),
        });
        if let Some(app_session) = &entry.resume {
            registry.by_app_session.insert(app_session.clone(), id);
        }
        if let Some(token) = &entry.client {
            registry.by_client.insert(token.clone(), id);
        }
        registry.tabs.insert(id, tab.clone());
        drop(registry);
        if let Some(oldest) = evict {
            self.end(oldest, EndReason::EvictedUserCap);
        }
        tracing::info!(
            tab = id,
            app_session = entry
                .resume
                .as_deref()
                .map(short_hash)
                .as_deref()
                .unwrap_or("-"),
            resumed = entry.resume.is_some(),
            script = entry.client.is_some(),
            "tab session started"
        );
        self.reschedule(id);
        Ok(TabConnection::new(
            self.clone(),
            tab,
            1,
            entry.resume.is_none(),
            rx,
        ))
    }

    fn attach(&self, tab: Arc<Tab>, now: Instant) -> TabConnection {
        let (tx, rx) = watch::channel(None);
        let mut inner = lock(&tab.inner);
        inner.generation += 1;
        let generation = inner.generation;
        let away = inner.disconnected_since.take().map(|since| now - since);
        // Another connection still holds the tab (a half-open socket): it is taken over.
        if let Some((_, old)) = inner.connection.replace((generation, tx)) {
            inner.interrupted = inner.running.is_some() || inner.requested.is_some();
            let _ = old.send(Some(Ending::quiet()));
        }
        // A page that reconnects asks for a run by itself when one was cut short or the page
        // runs fragments or timers; that first rerun is the page's, not a person's. Otherwise
        // the first rerun after a reconnect is a person's like any other.
        let page_reruns = inner.interrupted || inner.timers || inner.last_request_fragment;
        inner.expect_page_rerun = page_reruns.then_some(now + PAGE_RERUN_WINDOW);
        inner.interrupted = false;
        inner.running = None;
        inner.requested = None;
        drop(inner);
        // Whether the app kept its session is the connection's to tell (see
        // `App::resumed`); the log line comes from there.
        tracing::debug!(
            tab = tab.id,
            away_ms = away.map(|d| d.as_millis() as u64).unwrap_or(0),
            "a page came back to its tab session"
        );
        TabConnection::new(self.clone(), tab, generation, false, rx)
    }

    fn tab_of(&self, app_session: &str) -> Option<Arc<Tab>> {
        let registry = self.registry();
        registry
            .by_app_session
            .get(app_session)
            .and_then(|id| registry.tabs.get(id))
            .cloned()
    }

    /// Ends a tab session now. Returns `false` if it had already ended.
    pub fn end(&self, id: TabId, reason: EndReason) -> bool {
        let now = Instant::now();
        let tab = {
            let mut registry = self.registry();
            let Some(tab) = registry.tabs.remove(&id) else {
                return false;
            };
            let (app_session, client, notice) = {
                let inner = lock(&tab.inner);
                (
                    inner.app_session.clone(),
                    inner.client.clone(),
                    inner.notice(reason),
                )
            };
            if let Some(app_session) = app_session {
                registry.by_app_session.remove(&app_session);
                registry.ended.insert(app_session, notice.clone(), now);
            }
            if let Some(client) = client {
                registry.by_client.remove(&client);
                registry.ended_clients.insert(client, notice, now);
            }
            if let Some(login) = &tab.login {
                let user = &login.identity.user;
                if let Some(tabs) = registry.by_user.get_mut(user) {
                    tabs.remove(&id);
                    if tabs.is_empty() {
                        registry.by_user.remove(user);
                    }
                }
                if reason == EndReason::LoginExpired {
                    login.revoke();
                }
            }
            tab
        };
        self.shared.reports.retain_recent();
        let mut inner = lock(&tab.inner);
        if inner.ended.is_some() {
            return false;
        }
        inner.ended = Some(reason);
        let releases = std::mem::take(&mut inner.releases);
        self.release(releases);
        if let (Some(queue), Some(id)) = (&self.shared.ended_sessions, &inner.app_session) {
            let _ = queue.send(id.clone());
        }
        if let Some((_, conn)) = inner.connection.take() {
            let _ = conn.send(Some(Ending {
                notice: inner.notice(reason),
                notify_browser: true,
            }));
        }
        let last = self.instant(tab.last_activity_ms.load(Ordering::Relaxed));
        tracing::info!(
            tab = id,
            app_session = inner
                .app_session
                .as_deref()
                .map(short_hash)
                .as_deref()
                .unwrap_or("-"),
            reason = reason.as_str(),
            rule = inner.rule().as_str(),
            lifetime_s = (now - tab.opened_at).as_secs_f64(),
            idle_s = (now.saturating_duration_since(last)).as_secs_f64(),
            "tab session ended"
        );
        true
    }

    /// Ends every tab of a signed-in user (they signed out). Returns how many ended.
    pub fn end_user(&self, user: &str, reason: EndReason) -> usize {
        let ids: Vec<TabId> = self
            .registry()
            .by_user
            .get(user)
            .map(|tabs| tabs.iter().copied().collect())
            .unwrap_or_default();
        ids.into_iter().filter(|id| self.end(*id, reason)).count()
    }

    /// Ends every tab session (on shutdown).
    pub fn end_all(&self, reason: EndReason) -> usize {
        let ids: Vec<TabId> = self.registry().tabs.keys().copied().collect();
        ids.into_iter().filter(|id| self.end(*id, reason)).count()
    }

    /// The current deadline of a tab, if it is open.
    pub fn deadline_of(&self, id: TabId) -> Option<Deadline> {
        let tab = self.registry().tabs.get(&id).cloned()?;
        policy::deadline(&self.state_of(&tab), &self.shared.policy)
    }

    /// Which rule judges a tab now, if it is open.
    pub fn rule_of(&self, id: TabId) -> Option<ActivityRule> {
        let tab = self.registry().tabs.get(&id).cloned()?;
        let rule = lock(&tab.inner).rule();
        Some(rule)
    }

    fn state_of(&self, tab: &Tab) -> TabState {
        let inner = lock(&tab.inner);
        TabState {
            opened_at: tab.opened_at,
            last_activity: self.instant(tab.last_activity_ms.load(Ordering::Relaxed)),
            running: inner.running_cause(),
            uploading: inner.person_uploading(),
            disconnected_since: inner.disconnected_since,
            hidden_since: inner.hidden_since,
            login: tab.login.as_ref().map(|login| login.clock()),
        }
    }

    /// A person was active in the tab at `at` (now, or the time a report says).
    fn touch_at(&self, tab: &Tab, at: Instant) {
        self.touch_tab(tab, at);
        if let Some(login) = &tab.login {
            login.touch_at(at);
        }
    }

    /// The tab's idle time counts from `at`; its login's does not move.
    fn touch_tab(&self, tab: &Tab, at: Instant) {
        tab.last_activity_ms
            .fetch_max(self.millis(at), Ordering::Relaxed);
    }

    fn touch(&self, tab: &Tab) {
        self.touch_at(tab, Instant::now());
    }

    fn reschedule(&self, id: TabId) {
        // The reaper only stops when the tracker is gone, so a failed send has no one to tell.
        let _ = self.shared.reaper.send(id);
    }

    fn release(&self, releases: Vec<Release>) {
        if let (Some(queue), false) = (&self.shared.releases, releases.is_empty()) {
            let _ = queue.send(releases);
        }
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
}

impl Registry {
    /// How the tab of an app session id or page token ended, if it did.
    fn ended_notice(&self, app_session: Option<&str>, client: Option<&str>) -> Option<EndNotice> {
        app_session
            .and_then(|id| self.ended.get(id))
            .or_else(|| client.and_then(|token| self.ended_clients.get(token)))
    }

    /// The ids a connection of `login` may use: an id that names another login's tab is
    /// dropped, so it starts a tab of its own instead of taking that one over.
    fn entry(
        &self,
        app_session: Option<&str>,
        client: Option<&str>,
        login: Option<&Arc<LoginSession>>,
    ) -> Entry {
        let usable = |index: &HashMap<String, TabId>, id: &str| {
            index
                .get(id)
                .and_then(|tab| self.tabs.get(tab))
                .is_none_or(|tab| tab.belongs_to(login))
        };
        Entry {
            resume: app_session
                .filter(|id| usable(&self.by_app_session, id))
                .map(str::to_owned),
            client: client
                .filter(|token| usable(&self.by_client, token))
                .map(str::to_owned),
        }
    }

    /// The open tab an entry names (its app session first, then its page token).
    fn owned_tab(&self, entry: &Entry) -> Option<Arc<Tab>> {
        entry
            .resume
            .as_ref()
            .and_then(|id| self.by_app_session.get(id))
            .or_else(|| entry.client.as_ref().and_then(|t| self.by_client.get(t)))
            .and_then(|id| self.tabs.get(id))
            .cloned()
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
