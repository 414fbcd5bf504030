//! The Redis/Valkey store: what several replicas of one app share (`store.url`).
//!
//! Every replica keeps a full local view of the shared state (a [`MemoryStore`]), so each
//! method answers at once, as the [store traits](crate::store) require. Changes made here
//! go to a background task ([`sync`]) that writes them to Redis and publishes them on one
//! channel; changes other replicas publish are applied to the view as they arrive (well
//! under a second). A person's activity only moves an atomic; the task writes the logins
//! whose activity moved, at most once per login every [`FLUSH_EVERY`].
//!
//! When Redis cannot be reached, the view keeps answering (open tabs go on, and end on
//! time) and changes wait in a bounded queue. Once Redis is back, the task writes this
//! replica's whole state, reads the others', then sends what waited: a Redis that lost its
//! data is filled again, and nothing written before the fault is lost.

mod fill;
mod sync;
mod wire;
mod write;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::login::key_of;
use super::memory::MemoryStore;
use super::{
    Cluster, Command, EndedId, EndedSessions, HandedOff, LoginLimits, LoginSession, LoginStore,
    Replica, Stores, TabDirectory, TabRecord, UnixMillis, WallClock,
};
use crate::config::{RedisUrl, StoreConfig};
use crate::lifecycle::{EndNotice, EndReason, TabId};
use wire::{HandOffWire, Keys, LoginWire, NoticeWire, TabWire};

/// Logins whose activity moved are written at most this often.
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// How late another replica's activity may be seen here: one flush, plus the time to
/// write and publish it.
pub const SYNC_LAG: Duration = Duration::from_secs(3);
/// Changes waiting for Redis, at most; beyond, they are dropped and counted.
const QUEUE: usize = 65_536;

/// A change for the background task to write and publish.
#[derive(Debug)]
enum Op {
    Login(LoginWire),
    Revoke {
        key: String,
        user: String,
        reason: EndReason,
    },
    Ended {
        hash: String,
        notice: NoticeWire,
        until: UnixMillis,
    },
    TabOpened(TabWire),
    TabClosed(TabId),
    HandOff {
        hashes: Vec<String>,
        tab: HandOffWire,
        until: UnixMillis,
    },
    Taken {
        hashes: Vec<String>,
    },
    Command(Command),
    /// Revoke every login of this user that the index by user lists.
    RevokeUser {
        user: String,
        reason: EndReason,
    },
    /// Stop: say this replica is gone, write the last activity, then answer.
    Stop(tokio::sync::oneshot::Sender<()>),
}

/// What the store and its task share.
struct Shared {
    view: MemoryStore,
    replica: Replica,
    keys: Keys,
    clock: WallClock,
    /// The logins' limits, for their keys' time to live (a reload changes them).
    limits: arc_swap::ArcSwap<LoginLimits>,
    /// Whether Redis answers now.
    up: AtomicBool,
    ops: mpsc::Sender<Op>,
    /// Changes dropped because the queue was full.
    dropped: AtomicU64,
    /// Logins revoked here or told revoked, until they could no longer be live anywhere: a
    /// refill never brings one back, whatever Redis still lists.
    revoked: std::sync::Mutex<std::collections::HashMap<String, UnixMillis>>,
    /// Where this replica tells itself to end a revoked login's tabs.
    commands: mpsc::Sender<Command>,
    /// This replica's tabs whose activity moved since the last flush.
    touched_tabs: std::sync::Mutex<std::collections::HashSet<TabId>>,
    /// The last activity in Redis, per login key: what a flush compares with.
    written: std::sync::Mutex<std::collections::HashMap<String, UnixMillis>>,
}

impl Shared {
    /// Revokes login `key` in the view and remembers it; when another replica revoked it
    /// (`elsewhere`, for this reason), the tabs of it here end too: what ended them there (a
    /// sign-out) may not reach here.
    fn forbid(&self, key: &str, elsewhere: Option<EndReason>) {
        let until = self.clock.now_ms() + fill::revoked_ttl(self);
        {
            let mut revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
            let now = self.clock.now_ms();
            revoked.retain(|_, until| *until > now);
            revoked.insert(key.to_owned(), until);
        }
        let revoked = self.view.revoke(key, EndReason::Logout).is_some();
        if let (true, Some(reason)) = (revoked, elsewhere) {
            let _ = self.commands.try_send(Command::EndLogin {
                key: key.to_owned(),
                reason,
            });
        }
    }

    /// Whether login `key` was revoked (see [`Shared::forbid`]).
    fn forbidden(&self, key: &str) -> bool {
        self.revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(key)
    }

    /// Notes that Redis has `last` as the last activity of login `key`.
    fn wrote(&self, key: &str, last: UnixMillis) {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let entry = written.entry(key.to_owned()).or_insert(last);
        *entry = (*entry).max(last);
    }
}

impl Shared {
    fn queue(&self, op: Op) {
        if self.ops.try_send(op).is_err() && self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::error!(
                "the store's queue of changes for Redis is full ({QUEUE}): changes are dropped until Redis answers again"
            );
        }
    }
}

/// The store of one replica, shared through Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
}

/// A started Redis store: the [`Stores`] to use, and what other replicas ask of this one.
pub struct Started {
    pub stores: Stores,
    pub store: RedisStore,
    /// Commands from other replicas, for the tracker (`Tracker::obey`).
    pub commands: mpsc::Receiver<Command>,
}

/// The store's URL could not be used.
#[derive(Debug, thiserror::Error)]
#[error("store.url: {0}")]
pub struct StoreError(String);

impl RedisStore {
    /// Starts the store for `url` (from `config`), with the logins' `limits` for the time
    /// to live of their keys. Returns at once: the connection is made (and remade after
    /// any fault) in the background; until then [`Cluster::available`] is false.
    ///
    /// # Errors
    /// A URL the client cannot use (the message never shows the URL: it may hold a
    /// password).
    pub fn start(
        url: &RedisUrl,
        config: &StoreConfig,
        limits: LoginLimits,
    ) -> Result<Started, StoreError> {
        let client = redis::Client::open(url.expose())
            .map_err(|e| StoreError(format!("cannot use the Redis URL ({:?})", e.kind())))?;
        let db = redis::IntoConnectionInfo::into_connection_info(url.expose())
            .map(|info| info.redis_settings().db())
            .unwrap_or_default();
        let (ops, queued) = mpsc::channel(QUEUE);
        let (commands_tx, commands) = mpsc::channel(1024);
        let clock = WallClock::now();
        let shared = Arc::new(Shared {
            view: MemoryStore::default(),
            replica: rand::random(),
            keys: Keys::new(&config.key_prefix, db),
            clock,
            limits: arc_swap::ArcSwap::from_pointee(limits),
            up: AtomicBool::new(false),
            ops,
            dropped: AtomicU64::new(0),
            written: Default::default(),
            touched_tabs: Default::default(),
            revoked: Default::default(),
            commands: commands_tx.clone(),
        });
        tokio::spawn(sync::run(shared.clone(), client, queued, commands_tx));
        let store = Self { shared };
        let handle = Arc::new(store.clone());
        let stores = Stores {
            clock,
            replica: store.shared.replica,
            logins: handle.clone(),
            ended: handle.clone(),
            tabs: handle.clone(),
            cluster: handle,
            sync_lag: SYNC_LAG,
        };
        Ok(Started {
            stores,
            store,
            commands,
        })
    }

    /// Says this replica is gone and writes what waits, waiting at most `deadline`.
    /// Returns at once while Redis is away: nothing could be written.
    pub async fn stop(&self, deadline: Duration) {
        if !self.shared.up.load(Ordering::Relaxed) {
            return;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.shared.queue(Op::Stop(tx));
        let _ = tokio::time::timeout(deadline, rx).await;
    }

    /// Waits until Redis is connected and the view filled from it, at most `deadline`.
    pub async fn connected(&self, deadline: Duration) {
        let until = tokio::time::Instant::now() + deadline;
        while !self.shared.up.load(Ordering::Relaxed) && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !self.shared.up.load(Ordering::Relaxed) {
            tracing::warn!("serving before the store reached Redis");
        }
    }
}

/// The shared name of an ended tab's id: its kind and a SHA-256 of it (128 bits, hex), so
/// the store never holds an app's session id or a page token.
fn ended_hash(id: EndedId<'_>) -> String {
    let (kind, text) = match id {
        EndedId::AppSession(id) => ("a", id),
        EndedId::PageToken(token) => ("p", token),
    };
    let mut hash = key_of(&format!("{kind}:{text}"));
    hash.truncate(32);
    hash
}

fn hashed(ids: &[EndedId<'_>]) -> Vec<String> {
    ids.iter().map(|id| ended_hash(*id)).collect()
}

/// Hashed ids, as the view holds them.
fn as_ids(hashes: &[String]) -> Vec<EndedId<'_>> {
    hashes
        .iter()
        .map(|hash| EndedId::AppSession(hash))
        .collect()
}

impl LoginStore for RedisStore {
    fn insert(&self, login: Arc<LoginSession>) {
        self.shared.wrote(login.key(), login.last_activity());
        self.shared.queue(Op::Login(LoginWire::of(&login)));
        self.shared.view.insert(login);
    }

    fn get(&self, id: &str) -> Option<Arc<LoginSession>> {
        self.shared.view.get(id)
    }

    fn by_key(&self, key: &str) -> Option<Arc<LoginSession>> {
        self.shared.view.by_key(key)
    }

    fn revoke(&self, key: &str, reason: EndReason) -> Option<Arc<LoginSession>> {
        let login = self.shared.view.by_key(key)?;
        self.shared.forbid(key, None);
        self.shared.queue(Op::Revoke {
            key: key.to_owned(),
            user: login.identity.user.clone(),
            reason,
        });
        Some(login)
    }

    fn of_user(&self, user: &str) -> Vec<Arc<LoginSession>> {
        LoginStore::of_user(&self.shared.view, user)
    }

    fn all(&self) -> Vec<Arc<LoginSession>> {
        LoginStore::all(&self.shared.view)
    }
}

impl EndedSessions for RedisStore {
    fn bury(&self, id: EndedId<'_>, notice: &EndNotice, now: UnixMillis, ttl: Duration) {
        let hash = ended_hash(id);
        self.shared
            .view
            .bury(EndedId::AppSession(&hash), notice, now, ttl);
        self.shared.queue(Op::Ended {
            hash,
            notice: NoticeWire::of(notice),
            until: now.saturating_add(ttl.as_millis() as UnixMillis),
        });
    }

    fn find(&self, id: EndedId<'_>, now: UnixMillis) -> Option<EndNotice> {
        let hash = ended_hash(id);
        self.shared.view.find(EndedId::AppSession(&hash), now)
    }
}

impl TabDirectory for RedisStore {
    fn open(&self, record: TabRecord) {
        if record.replica == self.shared.replica {
            self.shared.queue(Op::TabOpened(TabWire::of(&record)));
        }
        self.shared.view.open(record);
    }

    fn close(&self, replica: Replica, tab: TabId) -> Option<TabRecord> {
        let record = self.shared.view.close(replica, tab)?;
        if replica == self.shared.replica {
            self.shared.queue(Op::TabClosed(tab));
        }
        Some(record)
    }

    fn touch(&self, replica: Replica, tab: TabId, at: UnixMillis) {
        self.shared.view.touch(replica, tab, at);
        if replica == self.shared.replica {
            self.shared
                .touched_tabs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(tab);
        }
    }

    fn hand_off(&self, ids: &[EndedId<'_>], tab: HandedOff, now: UnixMillis, ttl: Duration) {
        let hashes = hashed(ids);
        let until = now.saturating_add(ttl.as_millis() as UnixMillis);
        self.shared.view.leave(&as_ids(&hashes), tab.clone(), until);
        self.shared.queue(Op::HandOff {
            tab: HandOffWire::of(&tab, &hashes),
            hashes,
            until,
        });
    }

    fn handed_off(&self, ids: &[EndedId<'_>], now: UnixMillis) -> Option<HandedOff> {
        let hashes = hashed(ids);
        let (tab, _) = self.shared.view.left(&as_ids(&hashes), now, false)?;
        Some(tab)
    }

    fn take_handed_off(&self, ids: &[EndedId<'_>], now: UnixMillis) -> Option<HandedOff> {
        let hashes = hashed(ids);
        // Gone under every id it was left under, here and everywhere.
        let (tab, hashes) = self.shared.view.left(&as_ids(&hashes), now, true)?;
        self.shared.queue(Op::Taken { hashes });
        Some(tab)
    }

    fn count_of(&self, user: &str) -> usize {
        self.shared.view.count_of(user)
    }

    fn total(&self) -> usize {
        self.shared.view.total()
    }

    fn of_user(&self, user: &str) -> Vec<TabRecord> {
        TabDirectory::of_user(&self.shared.view, user)
    }

    fn all(&self) -> Vec<TabRecord> {
        TabDirectory::all(&self.shared.view)
    }
}

impl Cluster for RedisStore {
    fn send(&self, command: Command) {
        self.shared.queue(Op::Command(command));
    }

    fn available(&self) -> bool {
        self.shared.up.load(Ordering::Relaxed)
    }

    fn shared(&self) -> bool {
        true
    }

    fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    fn revoke_user(&self, user: &str, reason: EndReason) {
        self.shared.queue(Op::RevokeUser {
            user: user.to_owned(),
            reason,
        });
    }

    fn login_limits(&self, limits: LoginLimits) {
        self.shared.limits.store(Arc::new(limits));
    }
}

#[cfg(test)]
mod tests;
