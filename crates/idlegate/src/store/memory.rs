//! The in-memory store: everything in this process, gone when it exits. The default.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{
    EndedId, EndedSessions, LoginSession, LoginStore, TabDirectory, TabRecord, UnixMillis,
};
use crate::lifecycle::{EndNotice, TabId};

/// At most this many tombstones are kept; the oldest are forgotten first.
const TOMBSTONE_CAP: usize = 100_000;

/// Logins, tombstones and open tabs in maps behind mutexes (each held only for a map
/// operation).
#[derive(Default)]
pub struct MemoryStore {
    logins: Mutex<HashMap<String, Arc<LoginSession>>>,
    ended: Mutex<Tombstones>,
    tabs: Mutex<Tabs>,
}

#[derive(Default)]
struct Tombstones {
    app_sessions: HashMap<String, (EndNotice, UnixMillis)>,
    page_tokens: HashMap<String, (EndNotice, UnixMillis)>,
    /// Insertion order with each entry's expiry, for forgetting the oldest first.
    order: VecDeque<(UnixMillis, bool, String)>,
}

impl Tombstones {
    /// The map for one kind of id (`true`: page tokens).
    fn map(&mut self, page_token: bool) -> &mut HashMap<String, (EndNotice, UnixMillis)> {
        if page_token {
            &mut self.page_tokens
        } else {
            &mut self.app_sessions
        }
    }
}

fn split(id: EndedId<'_>) -> (bool, &str) {
    match id {
        EndedId::AppSession(id) => (false, id),
        EndedId::PageToken(token) => (true, token),
    }
}

#[derive(Default)]
struct Tabs {
    /// Ordered by id, which is the order they opened.
    open: BTreeMap<TabId, TabRecord>,
    by_user: HashMap<String, BTreeSet<TabId>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LoginStore for MemoryStore {
    fn insert(&self, login: Arc<LoginSession>) {
        lock(&self.logins).insert(login.id().to_owned(), login);
    }

    fn get(&self, id: &str) -> Option<Arc<LoginSession>> {
        let mut logins = lock(&self.logins);
        let login = logins.get(id)?.clone();
        if login.is_revoked() {
            logins.remove(id);
            return None;
        }
        Some(login)
    }

    fn revoke(&self, id: &str) -> Option<Arc<LoginSession>> {
        let login = lock(&self.logins).remove(id)?;
        login.revoke().then_some(login)
    }

    fn of_user(&self, user: &str) -> Vec<Arc<LoginSession>> {
        lock(&self.logins)
            .values()
            .filter(|login| login.identity.user == user && !login.is_revoked())
            .cloned()
            .collect()
    }

    fn all(&self) -> Vec<Arc<LoginSession>> {
        lock(&self.logins)
            .values()
            .filter(|login| !login.is_revoked())
            .cloned()
            .collect()
    }
}

impl EndedSessions for MemoryStore {
    fn bury(&self, id: EndedId<'_>, notice: &EndNotice, now: UnixMillis, ttl: Duration) {
        let (page_token, id) = split(id);
        let until = now.saturating_add(ttl.as_millis() as UnixMillis);
        let mut ended = lock(&self.ended);
        ended.expire(now);
        ended
            .map(page_token)
            .insert(id.to_owned(), (notice.clone(), until));
        ended.order.push_back((until, page_token, id.to_owned()));
        while ended.order.len() > TOMBSTONE_CAP {
            if let Some((_, page_token, old)) = ended.order.pop_front() {
                ended.map(page_token).remove(&old);
            }
        }
    }

    fn find(&self, id: EndedId<'_>, now: UnixMillis) -> Option<EndNotice> {
        let (page_token, id) = split(id);
        let mut ended = lock(&self.ended);
        ended
            .map(page_token)
            .get(id)
            .filter(|(_, until)| *until > now)
            .map(|(notice, _)| notice.clone())
    }
}

impl Tombstones {
    /// Forgets what expired by `now` (oldest first; an id buried again later stays).
    fn expire(&mut self, now: UnixMillis) {
        while let Some((until, ..)) = self.order.front() {
            if *until > now {
                break;
            }
            if let Some((_, page_token, id)) = self.order.pop_front() {
                let map = self.map(page_token);
                if map.get(&id).is_some_and(|(_, until)| *until <= now) {
                    map.remove(&id);
                }
            }
        }
    }
}

impl TabDirectory for MemoryStore {
    fn open(&self, record: TabRecord) {
        let mut tabs = lock(&self.tabs);
        if let Some(user) = &record.user {
            tabs.by_user
                .entry(user.clone())
                .or_default()
                .insert(record.tab);
        }
        tabs.open.insert(record.tab, record);
    }

    fn close(&self, tab: TabId) -> Option<TabRecord> {
        let mut tabs = lock(&self.tabs);
        let record = tabs.open.remove(&tab)?;
        if let Some(user) = &record.user {
            if let Some(ids) = tabs.by_user.get_mut(user) {
                ids.remove(&tab);
                if ids.is_empty() {
                    tabs.by_user.remove(user);
                }
            }
        }
        Some(record)
    }

    fn count_of(&self, user: &str) -> usize {
        lock(&self.tabs).by_user.get(user).map_or(0, BTreeSet::len)
    }

    fn of_user(&self, user: &str) -> Vec<TabRecord> {
        let tabs = lock(&self.tabs);
        tabs.by_user
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|id| tabs.open.get(id).cloned())
            .collect()
    }

    fn all(&self) -> Vec<TabRecord> {
        lock(&self.tabs).open.values().cloned().collect()
    }
}
