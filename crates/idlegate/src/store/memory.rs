//! The in-memory store: everything in this process, gone when it exits. The default.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::BuildHasher;
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

/// Ended ids, kept small: at most [`TOMBSTONE_CAP`] of them, each a 64-bit keyed hash of its
/// kind and text (not the id itself) with its expiry, and one shared notice for the ids of a
/// tab (they are buried one after the other with the same notice). Measured: 13 MiB for
/// 100,000 ids (50,000 tabs with their page paths), against 70 MiB with the ids as text. The hash key is random per
/// process, so nobody can choose an id that collides with another's; by chance, two of
/// 100,000 ids share a hash with odds of about 3 in 10^10.
struct Tombstones {
    hasher: RandomState,
    by_id: HashMap<u64, (Arc<EndNotice>, UnixMillis)>,
    /// Insertion order with each entry's expiry, for forgetting the oldest first.
    order: VecDeque<(UnixMillis, u64)>,
    /// The notice buried last, shared with the next id buried with an equal one.
    last: Option<Arc<EndNotice>>,
}

impl Default for Tombstones {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            by_id: HashMap::new(),
            order: VecDeque::new(),
            last: None,
        }
    }
}

impl Tombstones {
    fn key(&self, id: EndedId<'_>) -> u64 {
        match id {
            EndedId::AppSession(id) => self.hasher.hash_one((0u8, id)),
            EndedId::PageToken(token) => self.hasher.hash_one((1u8, token)),
        }
    }

    /// `notice` in a shared allocation: the last one when equal.
    fn shared(&mut self, notice: &EndNotice) -> Arc<EndNotice> {
        match &self.last {
            Some(last) if **last == *notice => last.clone(),
            _ => {
                let fresh = Arc::new(notice.clone());
                self.last = Some(fresh.clone());
                fresh
            }
        }
    }

    /// Forgets what expired by `now` (oldest first; an id buried again later stays until
    /// its newest expiry), then the oldest beyond the cap.
    fn expire(&mut self, now: UnixMillis) {
        while let Some(&(until, key)) = self.order.front() {
            let over_cap = self.order.len() > TOMBSTONE_CAP;
            if until > now && !over_cap {
                break;
            }
            self.order.pop_front();
            // An id buried again has a later entry, which removes it (the map never holds
            // more ids than the order has entries).
            let newest = self.by_id.get(&key).map(|(_, newest)| *newest);
            if newest.is_some_and(|newest| newest <= until) {
                self.by_id.remove(&key);
            }
        }
        // After a burst, give the memory back.
        if self.by_id.capacity() > 4 * self.by_id.len().max(1024) {
            self.by_id.shrink_to_fit();
            self.order.shrink_to_fit();
        }
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
        let until = now.saturating_add(ttl.as_millis() as UnixMillis);
        let mut ended = lock(&self.ended);
        let key = ended.key(id);
        let notice = ended.shared(notice);
        ended.by_id.insert(key, (notice, until));
        ended.order.push_back((until, key));
        ended.expire(now);
    }

    fn find(&self, id: EndedId<'_>, now: UnixMillis) -> Option<EndNotice> {
        let ended = lock(&self.ended);
        ended
            .by_id
            .get(&ended.key(id))
            .filter(|(_, until)| *until > now)
            .map(|(notice, _)| EndNotice::clone(notice))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::EndReason;

    const T0: UnixMillis = 1_700_000_000_000;
    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn the_oldest_tombstones_go_first_beyond_the_cap() {
        let store = MemoryStore::default();
        let notice = EndNotice::reason(EndReason::Idle);
        for n in 0..TOMBSTONE_CAP + 10 {
            let id = format!("s-{n}");
            store.bury(EndedId::AppSession(&id), &notice, T0, HOUR);
        }
        let ended = lock(&store.ended);
        assert_eq!(ended.by_id.len(), TOMBSTONE_CAP);
        assert_eq!(ended.order.len(), TOMBSTONE_CAP);
        drop(ended);
        assert_eq!(store.find(EndedId::AppSession("s-9"), T0), None);
        assert!(store.find(EndedId::AppSession("s-10"), T0).is_some());
        let last = format!("s-{}", TOMBSTONE_CAP + 9);
        assert!(store.find(EndedId::AppSession(&last), T0).is_some());
    }

    #[test]
    fn the_ids_of_one_tab_share_their_notice_and_expired_ones_give_memory_back() {
        let store = MemoryStore::default();
        let notice = EndNotice {
            page: Some("/report?id=1".to_owned()),
            ..EndNotice::reason(EndReason::Idle)
        };
        // Ids expire in the order they were buried (the time to live is one setting).
        for n in 0..50_000 {
            let id = format!("burst-{n}");
            store.bury(EndedId::PageToken(&id), &notice, T0, Duration::from_secs(1));
        }
        let later = T0 + 2_000;
        store.bury(EndedId::AppSession("s"), &notice, later, HOUR);
        store.bury(EndedId::PageToken("t"), &notice, later, HOUR);
        {
            let ended = lock(&store.ended);
            let [a, b] = [
                ended.key(EndedId::AppSession("s")),
                ended.key(EndedId::PageToken("t")),
            ]
            .map(|key| ended.by_id[&key].0.clone());
            assert!(Arc::ptr_eq(&a, &b), "one notice for both ids");
        }
        let ended = lock(&store.ended);
        assert_eq!(ended.by_id.len(), 2, "the burst expired");
        assert!(ended.by_id.capacity() < 4096, "{}", ended.by_id.capacity());
        assert!(ended.order.capacity() < 4096, "{}", ended.order.capacity());
    }
}
