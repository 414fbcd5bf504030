//! Tab sessions: their registry, their state, and the events that move their deadlines.
//!
//! The proxy reports what it sees on a tab's connection as app-agnostic [`Signal`]s; the
//! tracker keeps each tab's state, hands deadline changes to the [`reaper`], and ends tabs
//! (telling the connection, remembering ended app sessions so they cannot be resumed, and
//! logging the end). It knows nothing about any app's protocol and does no I/O of its own.
//!
//! Activity is the hot path: it is one atomic store, with no lock and no timer reset. The
//! reaper notices a later deadline lazily when the old one fires.

pub mod policy;
pub mod reaper;
mod reports;
mod tombstones;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::auth::LoginSession;
use crate::config::{OnLimit, TabPolicy};
use crate::redact::short_hash;
pub use policy::{Deadline, EndReason, RunCause, TabState};
pub use reports::{TabReport, TabStatus};
use tombstones::Tombstones;

/// Identifies a tab session inside this process (not a secret: it is only a counter).
pub type TabId = u64;

/// At most this many releases are kept per tab; past that the oldest are dropped.
const RELEASE_CAP: usize = 256;

/// A request that makes the app free something it holds for a tab (an uploaded file),
/// replayed when the tab ends: the app drops a session's memory, but not always what was
/// uploaded to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub method: http::Method,
    /// Path (and query) on the app.
    pub path: String,
    /// Headers the app needs to accept the request (its CSRF token, say).
    pub headers: http::HeaderMap,
}

/// What a connection tells the tracker, already translated from the app's protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// A person did something in the tab.
    Activity,
    /// The page asked the app to run its script, for this cause. `Person` is also activity.
    RunRequested(RunCause),
    /// The app started (`true`) or finished (`false`) running the script.
    Running(bool),
    /// The app's own id for this session.
    SessionId(String),
}

/// What a connection is told when its tab ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    pub reason: EndReason,
    /// Whether the browser should be sent to the "session ended" page. `false` when another
    /// connection took the tab over and this one should just close.
    pub notify_browser: bool,
}

/// Whether a connection that wants to resume an app session may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Allowed,
    /// The app session was ended; the browser must be sent to the ended page instead.
    Ended(EndReason),
    /// The user has as many tabs open as allowed, and new ones are refused.
    OverUserCap,
}

/// Why a connection did not become (or join) a tab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the tab session ended ({0})")]
    Ended(EndReason),
    #[error("the user has as many tabs open as allowed")]
    OverUserCap,
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
}

#[derive(Default)]
struct Registry {
    tabs: HashMap<TabId, Arc<Tab>>,
    by_app_session: HashMap<String, TabId>,
    /// Tabs by the token their page's script chose (see [`TabReport`]).
    by_client: HashMap<String, TabId>,
    /// Open tabs per signed-in user, oldest first.
    by_user: HashMap<String, BTreeSet<TabId>>,
    ended: Tombstones,
    ended_clients: Tombstones,
}

/// One tab session.
pub struct Tab {
    id: TabId,
    opened_at: Instant,
    /// The login the tab was opened under, when people sign in.
    login: Option<Arc<LoginSession>>,
    /// Milliseconds since the tracker's epoch; written on every activity without a lock.
    last_activity_ms: AtomicU64,
    inner: Mutex<TabInner>,
}

struct TabInner {
    app_session: Option<String>,
    running: Option<RunCause>,
    requested: Option<RunCause>,
    disconnected_since: Option<Instant>,
    hidden_since: Option<Instant>,
    /// The page script's token for this tab, if the page has idlegate's script.
    client: Option<String>,
    connection: Option<(u64, watch::Sender<Option<Ending>>)>,
    generation: u64,
    ended: Option<EndReason>,
    releases: Vec<Release>,
}

/// A connection's link to its tab. Dropping it without [`TabConnection::closed`] counts as
/// closed too.
pub struct TabConnection {
    tracker: Tracker,
    tab: Arc<Tab>,
    generation: u64,
    /// Whether this is the tab's first connection (a page load) rather than a reconnect.
    first: bool,
    ending: watch::Receiver<Option<Ending>>,
    done: bool,
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
        let (tx, rx) = mpsc::unbounded_channel();
        let tracker = Self {
            shared: Arc::new(Shared {
                policy,
                epoch: Instant::now(),
                next_id: AtomicU64::new(1),
                registry: Mutex::new(Registry::default()),
                reaper: tx,
                releases,
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
    /// chose the token `client`, may go to the app.
    pub fn admit(
        &self,
        app_session: Option<&str>,
        client: Option<&str>,
        login: Option<&LoginSession>,
    ) -> Admission {
        let mut registry = self.registry();
        let now = Instant::now();
        registry.ended.expire(now);
        registry.ended_clients.expire(now);
        if let Some(reason) = registry.ended_reason(app_session, client) {
            return Admission::Ended(reason);
        }
        let resumes = app_session.is_some_and(|id| registry.by_app_session.contains_key(id))
            || client.is_some_and(|token| registry.by_client.contains_key(token));
        if !resumes && self.over_user_cap(&registry, login) == Some(OnLimit::Refuse) {
            return Admission::OverUserCap;
        }
        Admission::Allowed
    }

    /// What to do for a new tab of `login`'s user, if they are at the limit.
    fn over_user_cap(&self, registry: &Registry, login: Option<&LoginSession>) -> Option<OnLimit> {
        let limit = self.shared.policy.max_per_user?;
        let open = registry
            .by_user
            .get(&login?.identity.user)
            .map_or(0, BTreeSet::len);
        (open >= limit).then_some(self.shared.policy.on_limit)
    }

    /// Registers a new connection whose upgrade the app accepted. If `resume` names the app
    /// session of a tab this tracker knows, or `client` the page token of one, the connection
    /// joins that tab (a reconnect); otherwise it starts a new tab session.
    ///
    /// `login` is the signed-in browser the tab belongs to. Over the per-user limit, the
    /// user's oldest tab is ended or this one refused (`Err(EvictedUserCap)`), as configured.
    pub fn connect(
        &self,
        resume: Option<&str>,
        client: Option<&str>,
        login: Option<Arc<LoginSession>>,
    ) -> Result<TabConnection, Refused> {
        let now = Instant::now();
        let mut registry = self.registry();
        if let Some(reason) = registry.ended_reason(resume, client) {
            return Err(Refused::Ended(reason));
        }
        let existing = resume
            .and_then(|id| registry.by_app_session.get(id))
            .or_else(|| client.and_then(|token| registry.by_client.get(token)))
            .and_then(|tab_id| registry.tabs.get(tab_id))
            .cloned();
        if let Some(tab) = existing {
            if let Some(token) = client {
                let mut inner = lock(&tab.inner);
                if inner.client.is_none() {
                    inner.client = Some(token.to_owned());
                    registry.by_client.insert(token.to_owned(), tab.id);
                }
            }
            drop(registry);
            return Ok(self.attach(tab, now));
        }
        let evict = match self.over_user_cap(&registry, login.as_deref()) {
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
            inner: Mutex::new(TabInner {
                app_session: resume.map(str::to_owned),
                running: None,
                requested: None,
                disconnected_since: None,
                hidden_since: None,
                client: client.map(str::to_owned),
                connection: Some((1, tx)),
                generation: 1,
                ended: None,
                releases: Vec::new(),
            }),
        });
        if let Some(app_session) = resume {
            registry.by_app_session.insert(app_session.to_owned(), id);
        }
        if let Some(token) = client {
            registry.by_client.insert(token.to_owned(), id);
        }
        registry.tabs.insert(id, tab.clone());
        drop(registry);
        if let Some(oldest) = evict {
            self.end(oldest, EndReason::EvictedUserCap);
        }
        tracing::info!(
            tab = id,
            app_session = resume.map(short_hash).as_deref().unwrap_or("-"),
            resumed = resume.is_some(),
            "tab session started"
        );
        self.reschedule(id);
        Ok(TabConnection {
            tracker: self.clone(),
            tab,
            generation: 1,
            first: resume.is_none(),
            ending: rx,
            done: false,
        })
    }

    fn attach(&self, tab: Arc<Tab>, now: Instant) -> TabConnection {
        let (tx, rx) = watch::channel(None);
        let mut inner = lock(&tab.inner);
        inner.generation += 1;
        let generation = inner.generation;
        let away = inner.disconnected_since.take().map(|since| now - since);
        // Another connection still holds the tab (a half-open socket): it is taken over.
        if let Some((_, old)) = inner.connection.replace((generation, tx)) {
            let _ = old.send(Some(Ending {
                reason: EndReason::Closed,
                notify_browser: false,
            }));
        }
        inner.running = None;
        inner.requested = None;
        drop(inner);
        tracing::info!(
            tab = tab.id,
            away_ms = away.map(|d| d.as_millis() as u64).unwrap_or(0),
            "tab session reconnected"
        );
        TabConnection {
            tracker: self.clone(),
            tab,
            generation,
            first: false,
            ending: rx,
            done: false,
        }
    }

    /// Records activity for the tab holding `app_session` (an upload, say). Unknown ids are
    /// ignored: they belong to no tab this process tracks.
    pub fn activity_for_app_session(&self, app_session: &str) {
        if let Some(tab) = self.tab_of(app_session) {
            self.touch(&tab);
        }
    }

    /// Remembers a release for the tab holding `app_session`, to replay when it ends.
    pub fn record_release(&self, app_session: &str, release: Release) {
        if let Some(tab) = self.tab_of(app_session) {
            let mut inner = lock(&tab.inner);
            inner.releases.retain(|r| r.path != release.path);
            if inner.releases.len() >= RELEASE_CAP {
                inner.releases.remove(0);
            }
            inner.releases.push(release);
        }
    }

    /// Forgets the release for `path` (the page already released it itself).
    pub fn forget_release(&self, app_session: &str, path: &str) {
        if let Some(tab) = self.tab_of(app_session) {
            lock(&tab.inner).releases.retain(|r| r.path != path);
        }
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
            let (app_session, client) = {
                let inner = lock(&tab.inner);
                (inner.app_session.clone(), inner.client.clone())
            };
            if let Some(app_session) = app_session {
                registry.by_app_session.remove(&app_session);
                registry.ended.insert(app_session, reason, now);
            }
            if let Some(client) = client {
                registry.by_client.remove(&client);
                registry.ended_clients.insert(client, reason, now);
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
        let mut inner = lock(&tab.inner);
        if inner.ended.is_some() {
            return false;
        }
        inner.ended = Some(reason);
        let releases = std::mem::take(&mut inner.releases);
        if let (Some(queue), false) = (&self.shared.releases, releases.is_empty()) {
            let _ = queue.send(releases);
        }
        if let Some((_, conn)) = inner.connection.take() {
            let _ = conn.send(Some(Ending {
                reason,
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

    fn state_of(&self, tab: &Tab) -> TabState {
        let inner = lock(&tab.inner);
        TabState {
            opened_at: tab.opened_at,
            last_activity: self.instant(tab.last_activity_ms.load(Ordering::Relaxed)),
            running: inner.running,
            disconnected_since: inner.disconnected_since,
            hidden_since: inner.hidden_since,
            login: tab.login.as_ref().map(|login| login.clock()),
        }
    }

    fn touch(&self, tab: &Tab) {
        tab.last_activity_ms
            .fetch_max(self.millis(Instant::now()), Ordering::Relaxed);
        if let Some(login) = &tab.login {
            login.touch();
        }
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
}

impl Registry {
    /// Why the tab of an app session id or page token ended, if it did.
    fn ended_reason(&self, app_session: Option<&str>, client: Option<&str>) -> Option<EndReason> {
        app_session
            .and_then(|id| self.ended.get(id))
            .or_else(|| client.and_then(|token| self.ended_clients.get(token)))
    }
}

impl TabConnection {
    /// The tab this connection belongs to.
    pub fn tab_id(&self) -> TabId {
        self.tab.id
    }

    /// Resolves when the tab ends (or another connection takes it over).
    pub async fn ended(&self) -> Ending {
        let mut ending = self.ending();
        loop {
            if let Some(ending) = *ending.borrow_and_update() {
                return ending;
            }
            if ending.changed().await.is_err() {
                // The sender is gone only when the tab was replaced without a message.
                return Ending {
                    reason: EndReason::Closed,
                    notify_browser: false,
                };
            }
        }
    }

    /// A receiver that changes once, when the tab ends or another connection takes it over.
    pub fn ending(&self) -> watch::Receiver<Option<Ending>> {
        self.ending.clone()
    }

    /// Applies what the connection saw.
    pub fn signal(&self, signal: Signal) {
        let tracker = &self.tracker;
        match signal {
            Signal::Activity => tracker.touch(&self.tab),
            Signal::RunRequested(cause) => {
                // The run a page asks for right after it connects is automatic; on a fresh
                // page load it is the person's own request, and counts as theirs.
                let cause = match cause {
                    RunCause::Reconnect if self.first => RunCause::Person,
                    other => other,
                };
                if cause == RunCause::Person {
                    tracker.touch(&self.tab);
                }
                let mut inner = lock(&self.tab.inner);
                inner.requested = inner.requested.max(Some(cause));
            }
            Signal::Running(true) => {
                let mut inner = lock(&self.tab.inner);
                let cause = inner.requested.take().unwrap_or(RunCause::Timer);
                inner.running = inner.running.max(Some(cause));
            }
            Signal::Running(false) => {
                let finished = lock(&self.tab.inner).running.take();
                if finished == Some(RunCause::Person) {
                    // The person was waiting for this result; idle time starts now.
                    tracker.touch(&self.tab);
                }
                if finished.is_some() {
                    tracker.reschedule(self.tab.id);
                }
            }
            Signal::SessionId(id) => self.learn_app_session(id),
        }
    }

    fn learn_app_session(&self, id: String) {
        let mut registry = self.tracker.registry();
        let mut inner = lock(&self.tab.inner);
        if inner.app_session.as_deref() == Some(id.as_str()) || inner.ended.is_some() {
            return;
        }
        if let Some(old) = inner.app_session.replace(id.clone()) {
            registry.by_app_session.remove(&old);
        }
        registry.by_app_session.insert(id, self.tab.id);
    }

    /// The connection is gone. The tab waits `tabs.reconnect_grace` for the browser to come
    /// back, unless it has ended or another connection has taken it over.
    pub fn closed(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let mut inner = lock(&self.tab.inner);
        let current = matches!(inner.connection, Some((g, _)) if g == self.generation);
        if inner.ended.is_some() || !current {
            return;
        }
        inner.connection = None;
        inner.running = None;
        inner.requested = None;
        inner.disconnected_since = Some(Instant::now());
        drop(inner);
        tracing::debug!(
            tab = self.tab.id,
            "tab connection closed; waiting for a reconnect"
        );
        self.tracker.reschedule(self.tab.id);
    }
}

impl Drop for TabConnection {
    fn drop(&mut self) {
        self.finish();
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
