//! The in-memory store: everything in this process, gone when it exits. The default.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::login::key_of;
use super::{
    Cluster, Command, EndedId, EndedSessions, HandedOff, LoginSession, LoginStore, Replica,
    TabDirectory, TabRecord, UnixMillis,
};
use crate::lifecycle::{EndNotice, EndReason, TabId};

/// At most this many tombstones are kept; the oldest are forgotten first.
const TOMBSTONE_CAP: usize = 100_000;

/// Logins, tombstones and open tabs in maps behind mutexes (each held only for a map
/// operation).
#[derive(Default)]
pub struct MemoryStore {
    logins: Mutex<HashMap<String, Arc<LoginSession>>>,
    ended: Mutex<Tombstones>,
    tabs: Mutex<Tabs>,
    handoffs: Mutex<Handoffs>,
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

/// Where a tab sits in the order they opened: its opening time, then its replica and number.
type Slot = (UnixMillis, Replica, TabId);

#[derive(Default)]
struct Tabs {
    /// In the order they opened.
    open: BTreeMap<Slot, TabRecord>,
    slots: HashMap<(Replica, TabId), UnixMillis>,
    by_user: HashMap<String, BTreeSet<Slot>>,
}

fn slot(record: &TabRecord) -> Slot {
    (record.opened, record.replica, record.tab)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LoginStore for MemoryStore {
    fn insert(&self, login: Arc<LoginSession>) {
        lock(&self.logins).insert(login.key().to_owned(), login);
    }

    fn get(&self, id: &str) -> Option<Arc<LoginSession>> {
        self.by_key(&key_of(id))
    }

    fn by_key(&self, key: &str) -> Option<Arc<LoginSession>> {
        let mut logins = lock(&self.logins);
        let login = logins.get(key)?.clone();
        if login.is_revoked() {
            logins.remove(key);
            return None;
        }
        Some(login)
    }

    fn revoke(&self, key: &str, _reason: EndReason) -> Option<Arc<LoginSession>> {
        let login = lock(&self.logins).remove(key)?;
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
        self.close(record.replica, record.tab);
        let mut tabs = lock(&self.tabs);
        let at = slot(&record);
        if let Some(user) = &record.user {
            tabs.by_user.entry(user.clone()).or_default().insert(at);
        }
        tabs.slots
            .insert((record.replica, record.tab), record.opened);
        tabs.open.insert(at, record);
    }

    fn close(&self, replica: Replica, tab: TabId) -> Option<TabRecord> {
        let mut tabs = lock(&self.tabs);
        let opened = tabs.slots.remove(&(replica, tab))?;
        let at = (opened, replica, tab);
        let record = tabs.open.remove(&at)?;
        if let Some(user) = &record.user {
            if let Some(slots) = tabs.by_user.get_mut(user) {
                slots.remove(&at);
                if slots.is_empty() {
                    tabs.by_user.remove(user);
                }
            }
        }
        Some(record)
    }

    fn touch(&self, replica: Replica, tab: TabId, at: UnixMillis) {
        let mut tabs = lock(&self.tabs);
        let Some(&opened) = tabs.slots.get(&(replica, tab)) else {
            return;
        };
        if let Some(record) = tabs.open.get_mut(&(opened, replica, tab)) {
            record.last_activity = record.last_activity.max(at);
        }
    }

    fn hand_off(&self, ids: &[EndedId<'_>], tab: HandedOff, now: UnixMillis, ttl: Duration) {
        self.leave(ids, tab, now.saturating_add(ttl.as_millis() as UnixMillis));
    }

    fn handed_off(&self, ids: &[EndedId<'_>], now: UnixMillis) -> Option<HandedOff> {
        self.left(ids, now, false).map(|(tab, _)| tab)
    }

    fn take_handed_off(&self, ids: &[EndedId<'_>], now: UnixMillis) -> Option<HandedOff> {
        self.left(ids, now, true).map(|(tab, _)| tab)
    }

    fn count_of(&self, user: &str) -> usize {
        lock(&self.tabs).by_user.get(user).map_or(0, BTreeSet::len)
    }

    fn total(&self) -> usize {
        lock(&self.tabs).open.len()
    }

    fn of_user(&self, user: &str) -> Vec<TabRecord> {
        let tabs = lock(&self.tabs);
        tabs.by_user
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|at| tabs.open.get(at).cloned())
            .collect()
    }

    fn all(&self) -> Vec<TabRecord> {
        lock(&self.tabs).open.values().cloned().collect()
    }
}

/// One process: there is no other replica to tell, and its memory is always there.
impl Cluster for MemoryStore {
    fn send(&self, _command: Command) {}

    fn available(&self) -> bool {
        true
    }

    fn shared(&self) -> bool {
        false
    }

    fn dropped(&self) -> u64 {
        0
    }
}

/// Tabs left for another process, by each id they are known by (kind and text).
#[derive(Default)]
struct Handoffs {
    by_id: HashMap<(u8, String), (Arc<HandedOff>, UnixMillis)>,
}

fn handoff_id(id: &EndedId<'_>) -> (u8, String) {
    match id {
        EndedId::AppSession(id) => (0, (*id).to_owned()),
        EndedId::PageToken(token) => (1, (*token).to_owned()),
    }
}

impl MemoryStore {
    /// Leaves a tab under `ids` (see [`TabDirectory::hand_off`]).
    pub fn leave(&self, ids: &[EndedId<'_>], tab: HandedOff, until: UnixMillis) {
        let tab = Arc::new(tab);
        let mut handoffs = lock(&self.handoffs);
        for id in ids {
            handoffs.by_id.insert(handoff_id(id), (tab.clone(), until));
        }
    }

    /// The tab left under any of `ids` at `now`; with `take`, it waits no longer, and the
    /// texts of every id it was left under are returned with it.
    pub fn left(
        &self,
        ids: &[EndedId<'_>],
        now: UnixMillis,
        take: bool,
    ) -> Option<(HandedOff, Vec<String>)> {
        let mut handoffs = lock(&self.handoffs);
        handoffs.by_id.retain(|_, (_, until)| *until > now);
        let found = ids
            .iter()
            .find_map(|id| handoffs.by_id.get(&handoff_id(id)))
            .map(|(tab, _)| tab.clone())?;
        let mut taken = Vec::new();
        if take {
            handoffs.by_id.retain(|(_, id), (tab, _)| {
                let same = Arc::ptr_eq(tab, &found);
                if same {
                    taken.push(id.clone());
                }
                !same
            });
        }
        Some((HandedOff::clone(&found), taken))
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
