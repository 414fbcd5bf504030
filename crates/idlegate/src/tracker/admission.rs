//! Admission: whether a connecting page may resume an app session, join an open tab or open
//! a new one, decided by one rule ([`Tracker::decide`]) before the app's handshake (so a
//! refused page never reaches the app) and again after it (the tab may have changed hands
//! while the app answered).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::time::Instant;

use super::refusals::RefusedLimit;
use super::restart;
use super::tab::TabInner;
use super::{
    lock, EndNotice, EndReason, Registry, Tab, TabConnection, TabId, Tracker, PAGE_RERUN_WINDOW,
};
use crate::config::{OnLimit, TabPolicy};
use crate::lifecycle::Event;
use crate::store::{EndedId, LoginSession, Replica, TabRecord};

/// The ids a connecting page may use: the ones that belong to its login. A page cannot take
/// over another login's tab or app session by naming its id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// The app session to resume.
    pub resume: Option<String>,
    /// The page script's token.
    pub client: Option<String>,
}

/// Why a connection may not become (or join) a tab.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The tab it names ended; the browser must be told so instead.
    #[error("the tab session ended ({})", .0.reason)]
    Ended(EndNotice),
    /// The user has as many tabs open as allowed, and new ones are refused.
    #[error("the user has as many tabs open as allowed")]
    OverUserCap,
    /// The server has `tabs.max_total` tabs open, and new ones are refused.
    #[error("the server has as many tabs open as allowed")]
    ServerBusy,
}

/// What idlegate knows of an app session a request names ([`Tracker::lookup_session`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionLookup {
    /// An open tab of the request's login has it.
    Open,
    /// Another login's tab has it.
    Foreign,
    /// Its tab ended; the page must be told so.
    Ended(EndNotice),
    /// No tab here has it: a new page's.
    Unknown,
}

/// What admission decided for a connection that may go ahead.
struct Decision {
    entry: Entry,
    /// The open tab of this login the entry names (a reconnect).
    joins: Option<Arc<Tab>>,
    /// The tab to end to make room for a new one (on this replica or another), and why.
    evict: Option<(Replica, TabId, EndReason)>,
    /// Whether the entry names a tab another process handed over, to take over.
    adopts: bool,
}

impl Tracker {
    /// Decides whether a connection asking to resume `app_session`, from a page whose script
    /// chose the token `client`, may go to the app, and with which of those ids (ids of
    /// another login's tab are dropped).
    pub fn admit(
        &self,
        app_session: Option<&str>,
        client: Option<&str>,
        login: Option<&Arc<LoginSession>>,
    ) -> Result<Entry, Refused> {
        let registry = self.registry();
        self.decide(&registry, app_session, client, login)
            .map(|decision| decision.entry)
    }

    /// Registers a new connection whose upgrade the app accepted. If `entry` names the app
    /// session or the page token of a tab of this login, the connection joins that tab (a
    /// reconnect); otherwise it starts a new tab session.
    ///
    /// `login` is the signed-in browser the tab belongs to. Over the per-user limit or the
    /// server's, a tab is ended to make room or this one refused (`Err(OverUserCap)`,
    /// `Err(ServerBusy)`), as `tabs.on_limit` says.
    pub fn connect(
        &self,
        entry: &Entry,
        login: Option<Arc<LoginSession>>,
    ) -> Result<TabConnection, Refused> {
        let now = Instant::now();
        let mut registry = self.registry();
        let (resume, client) = (entry.resume.as_deref(), entry.client.as_deref());
        let Decision {
            entry,
            joins,
            evict,
            adopts,
        } = self.decide(&registry, resume, client, login.as_ref())?;
        if let Some(tab) = joins {
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
        let times = match adopts {
            true => {
                let (resume, client) = (entry.resume.as_deref(), entry.client.as_deref());
                let left = self.handed_off(resume, client, login.as_ref(), true);
                // Another replica took it meanwhile: the page is from before a restart.
                let left = left.ok_or(Refused::Ended(EndNotice::reason(
                    EndReason::ServerRestarted,
                )))?;
                self.times_of(&left)
            }
            false => (now, now),
        };
        let (tab, rx) = self.open(&mut registry, &entry, login, times);
        drop(registry);
        if let Some((replica, victim, reason)) = evict {
            self.end_anywhere(replica, victim, reason);
        }
        self.publish(|| Event::TabOpened {
            tab: tab.id,
            user: tab.login.as_ref().map(|l| l.identity.user.clone()),
            app_session: entry.resume.clone(),
            resumed: entry.resume.is_some(),
            script: entry.client.is_some(),
        });
        self.reschedule(tab.id);
        Ok(TabConnection::new(
            self.clone(),
            tab,
            1,
            entry.resume.is_none(),
            rx,
        ))
    }

    /// The one admission rule: ended ids are told so; ids of another login's tab are
    /// dropped; a new tab over the user's limit or the server's is refused or makes room, as
    /// configured.
    fn decide(
        &self,
        registry: &Registry,
        app_session: Option<&str>,
        client: Option<&str>,
        login: Option<&Arc<LoginSession>>,
    ) -> Result<Decision, Refused> {
        if let Some(notice) = self.ended_notice(app_session, client) {
            return Err(Refused::Ended(notice));
        }
        let before_restart = registry.names_a_tab_before_restart(app_session, client);
        // A tab another process handed over goes on here, as a reconnect would.
        let adopts = before_restart && self.handed_off(app_session, client, login, false).is_some();
        if before_restart && !adopts {
            return Err(Refused::Ended(EndNotice::reason(
                EndReason::ServerRestarted,
            )));
        }
        let entry = registry.entry(app_session, client, login);
        let joins = registry.owned_tab(&entry);
        if joins.is_none() && self.is_draining() {
            return Err(Refused::Ended(EndNotice::reason(EndReason::Shutdown)));
        }
        let evict = if joins.is_some() || adopts {
            None
        } else {
            self.make_room(registry, login)?
        };
        Ok(Decision {
            entry,
            joins,
            evict,
            adopts,
        })
    }

    /// Whether app session `id` is one idlegate knows: a tab's, open or ended, or one a
    /// stopping replica handed over.
    pub fn knows_app_session(&self, id: &str) -> bool {
        let stores = &self.shared.stores;
        self.registry().by_app_session.contains_key(id)
            || self.ended_notice(Some(id), None).is_some()
            || stores
                .tabs
                .handed_off(&[EndedId::AppSession(id)], stores.clock.now_ms())
                .is_some()
    }

    /// What idlegate knows of app session `id` for a request of `login` naming it (a
    /// request-shaped session's request, which opens no connection of its own).
    pub fn lookup_session(&self, id: &str, login: Option<&Arc<LoginSession>>) -> SessionLookup {
        if let Some(notice) = self.ended_notice(Some(id), None) {
            return SessionLookup::Ended(notice);
        }
        match self.tab_of(id) {
            Some(tab) if tab.belongs_to(login) => SessionLookup::Open,
            Some(_) => SessionLookup::Foreign,
            None => SessionLookup::Unknown,
        }
    }

    /// Tells subscribers that a page was refused a new tab for a limit (nothing for an ended
    /// tab's page), and remembers it for a minute by the page script's token `client`, so
    /// the script's next check learns why ([`TabStatus::Refused`](super::TabStatus)).
    pub fn refused(&self, refused: &Refused, client: Option<&str>) {
        let limit = match refused {
            Refused::OverUserCap => RefusedLimit::PerUser,
            Refused::ServerBusy => RefusedLimit::Total,
            Refused::Ended(_) => return,
        };
        if let Some(client) = client {
            lock(&self.shared.refusals).add(client, limit, Instant::now());
        }
        self.publish(|| Event::TabRefused {
            limit: limit.as_str(),
        });
    }

    /// Whether a page that may not reach the app (it is not signed in) comes from before
    /// this process ([`restart::from_before_restart`]), so it is told the server restarted
    /// rather than sent to sign in to a page that would show its old screen over a fresh
    /// session. A page whose tab this process ended is not: it is sent to sign in as before.
    pub fn restarted_page(&self, app_session: Option<&str>, client: Option<&str>) -> bool {
        self.ended_notice(app_session, client).is_none()
            && self
                .registry()
                .names_a_tab_before_restart(app_session, client)
    }

    /// How the tab of an app session id or page token ended, if it did.
    fn ended_notice(&self, app_session: Option<&str>, client: Option<&str>) -> Option<EndNotice> {
        let stores = &self.shared.stores;
        let now = stores.clock.now_ms();
        app_session
            .and_then(|id| stores.ended.find(EndedId::AppSession(id), now))
            .or_else(|| client.and_then(|token| stores.ended.find(EndedId::PageToken(token), now)))
    }

    /// The tab to end so a new tab of `login` fits under the per-user limit and the server's
    /// (ending one of the user's own makes room under both).
    fn make_room(
        &self,
        registry: &Registry,
        login: Option<&Arc<LoginSession>>,
    ) -> Result<Option<(Replica, TabId, EndReason)>, Refused> {
        let policy = self.policy();
        let here = self.shared.stores.replica;
        let user = login.map(|login| login.identity.user.as_str());
        let own = match (self.over_user_cap(login, &policy), user) {
            (Some(OnLimit::Refuse), _) => return Err(Refused::OverUserCap),
            (Some(OnLimit::EndOldest), Some(user)) => self.oldest_of(Some(user)),
            // This replica's tabs of the user in the eviction order; when it holds none, the
            // oldest elsewhere (other replicas know nothing of a tab's activity here).
            (Some(rule), Some(user)) => self
                .eviction_order_in(registry, Some(user), rule)
                .first()
                .map(|view| (here, view.tab))
                .or_else(|| self.oldest_of(Some(user))),
            _ => None,
        };
        if let Some((replica, tab)) = own {
            return Ok(Some((replica, tab, EndReason::EvictedUserCap)));
        }
        match self.over_total_cap(registry, &policy) {
            Ok(victim) => {
                Ok(victim.map(|(replica, tab)| (replica, tab, EndReason::EvictedCapacity)))
            }
            Err(()) => Err(Refused::ServerBusy),
        }
    }

    /// The oldest open tab (of `user`, when given) on any replica.
    pub(super) fn oldest_of(&self, user: Option<&str>) -> Option<(Replica, TabId)> {
        let tabs = &self.shared.stores.tabs;
        let oldest = match user {
            Some(user) => tabs.of_user(user).into_iter().next(),
            None => tabs.all().into_iter().next(),
        };
        oldest.map(|record| (record.replica, record.tab))
    }

    /// What to do for a new tab of `login`'s user, if they are at the limit.
    fn over_user_cap(
        &self,
        login: Option<&Arc<LoginSession>>,
        policy: &TabPolicy,
    ) -> Option<OnLimit> {
        let limit = policy.max_per_user?;
        let open = self.shared.stores.tabs.count_of(&login?.identity.user);
        (open >= limit).then_some(policy.on_limit)
    }

    /// A new tab for `entry`, registered here and in the directory, opened and last used at
    /// these times (now for a new tab, earlier for one another process handed over).
    fn open(
        &self,
        registry: &mut Registry,
        entry: &Entry,
        login: Option<Arc<LoginSession>>,
        (opened, last): (Instant, Instant),
    ) -> (Arc<Tab>, watch::Receiver<Option<super::Ending>>) {
        let id = self
            .shared
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.shared.stores.tabs.open(TabRecord {
            replica: self.shared.stores.replica,
            tab: id,
            user: login.as_ref().map(|login| login.identity.user.clone()),
            opened: self.shared.stores.clock.ms(opened),
            last_activity: self.shared.stores.clock.ms(last),
        });
        let (tx, rx) = watch::channel(None);
        let tab = Arc::new(Tab {
            id,
            opened_at: opened,
            login,
            last_activity_ms: AtomicU64::new(self.millis(last)),
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
        (tab, rx)
    }

    /// Joins a connection to its open tab; a connection still holding it is taken over.
    fn attach(&self, tab: Arc<Tab>, now: Instant) -> TabConnection {
        let (tx, rx) = watch::channel(None);
        let mut inner = lock(&tab.inner);
        inner.generation += 1;
        let generation = inner.generation;
        let away = inner.disconnected_since.take().map(|since| now - since);
        // Another connection still holds the tab (a half-open socket): it is taken over.
        if let Some((_, old)) = inner.connection.replace((generation, tx)) {
            inner.interrupted = inner.running.is_some() || inner.requested.is_some();
            let _ = old.send(Some(super::Ending::quiet()));
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
        self.publish(|| Event::TabReconnected {
            tab: tab.id,
            away: away.unwrap_or_default(),
        });
        TabConnection::new(self.clone(), tab, generation, false, rx)
    }
}

impl Registry {
    /// [`restart::from_before_restart`] against this process's open tabs.
    fn names_a_tab_before_restart(&self, app_session: Option<&str>, client: Option<&str>) -> bool {
        restart::from_before_restart(
            app_session,
            client,
            |id| self.by_app_session.contains_key(id),
            |token| self.by_client.contains_key(token),
        )
    }

    /// The ids a connection of `login` may use: an id that names another login's tab is
    /// dropped, so it starts a tab of its own instead of taking that one over.
    fn entry(
        &self,
        app_session: Option<&str>,
        client: Option<&str>,
        login: Option<&Arc<LoginSession>>,
    ) -> Entry {
        let usable = |index: &std::collections::HashMap<String, TabId>, id: &str| {
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
