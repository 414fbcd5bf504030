//! Filling Redis with this replica's state and the view with the others' (after every
//! (re)connect), and the writes of logins and of the heartbeat that other paths share.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{Pipeline, RedisResult};

use super::wire::{Body, HandOffWire, LoginWire, Message, NoticeWire, TabWire};
use super::{as_ids, Shared};
use crate::lifecycle::EndReason;
use crate::store::{EndedId, EndedSessions, LoginStore, Replica, TabDirectory, UnixMillis};

/// A replica not heard of for this long is gone (it crashed): its tabs are forgotten.
pub(super) const REPLICA_TTL: Duration = Duration::from_secs(60);
/// Keys of logins outlive their deadline by this much.
const LOGIN_SLACK: Duration = Duration::from_secs(60);
/// A login without any limit is kept this long after its last activity.
const LOGIN_MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Commands per pipeline when filling or reading in bulk.
pub(super) const CHUNK: usize = 500;

/// Fills Redis with this replica's logins and tabs, then the view with everyone's.
pub(super) async fn fill(conn: &mut MultiplexedConnection, shared: &Shared) -> RedisResult<()> {
    let now = shared.clock.now_ms();
    // Logins revoked while this replica did not hear are not written back, and one that
    // Redis has with later activity (another replica's) is not moved back.
    let logins = LoginStore::all(&shared.view);
    for chunk in logins.chunks(CHUNK) {
        let mut read = redis::pipe();
        for login in chunk {
            read.exists(shared.keys.revoked(login.key()));
            read.hget(shared.keys.login(login.key()), "last");
        }
        let found: Vec<(bool, Option<UnixMillis>)> = read.query_async(conn).await?;
        let mut write = redis::pipe();
        for (login, (revoked, last)) in chunk.iter().zip(found) {
            match (revoked, last) {
                // Why is not kept; the person is signed out either way.
                (true, _) => shared.forbid(login.key(), Some(EndReason::Logout)),
                (false, Some(last)) if last >= login.last_activity() => {
                    login.touch(last);
                    shared.wrote(login.key(), last);
                }
                (false, _) => write_login(&mut write, shared, &LoginWire::of(login), now),
            }
        }
        // An empty pipeline is no command: Redis would answer nothing to wait for.
        if write.cmd_iter().next().is_some() {
            write.query_async::<()>(conn).await?;
        }
    }
    let own = TabDirectory::all(&shared.view)
        .into_iter()
        .filter(|record| record.replica == shared.replica);
    let mut tabs = redis::pipe();
    tabs.del(shared.keys.tabs(shared.replica)).ignore();
    for record in own {
        let tab = TabWire::of(&record);
        let json = serde_json::to_string(&tab).unwrap_or_default();
        tabs.hset(shared.keys.tabs(shared.replica), tab.tab, json)
            .ignore();
    }
    heartbeat(&mut tabs, shared, now);
    tabs.query_async::<()>(conn).await?;
    read_logins(conn, shared, now).await?;
    read_tabs(conn, shared, now, None).await?;
    read_ended(conn, shared, now).await?;
    read_handoffs(conn, shared, now).await?;
    // The others read this replica's state again: they may have read Redis before it was
    // filled (it came back empty, and they reconnected first).
    let filled = Message {
        from: shared.replica,
        body: Body::Filled,
    };
    redis::cmd("PUBLISH")
        .arg(shared.keys.channel())
        .arg(serde_json::to_string(&filled).unwrap_or_default())
        .query_async(conn)
        .await
}

/// The entries of a sorted set `index` still current at `now` (scored by when they expire),
/// each with the string value of its own key (`key` of the member), read in chunks.
async fn read_indexed(
    conn: &mut MultiplexedConnection,
    index: String,
    key: impl Fn(&str) -> String,
    now: UnixMillis,
) -> RedisResult<Vec<(String, u64, Option<String>)>> {
    let members: Vec<(String, u64)> = redis::cmd("ZRANGE")
        .arg(index)
        .arg(now)
        .arg("+inf")
        .arg("BYSCORE")
        .arg("WITHSCORES")
        .query_async(conn)
        .await?;
    let mut read = Vec::with_capacity(members.len());
    for chunk in members.chunks(CHUNK) {
        let mut pipe = redis::pipe();
        for (member, _) in chunk {
            pipe.get(key(member));
        }
        let values: Vec<Option<String>> = pipe.query_async(conn).await?;
        read.extend(
            chunk
                .iter()
                .zip(values)
                .map(|((member, until), value)| (member.clone(), *until, value)),
        );
    }
    Ok(read)
}

/// The tabs stopped replicas handed over that still wait.
async fn read_handoffs(
    conn: &mut MultiplexedConnection,
    shared: &Shared,
    now: UnixMillis,
) -> RedisResult<()> {
    let keys = &shared.keys;
    let left = read_indexed(conn, keys.handoffs(), |h| keys.handoff(h), now).await?;
    for (hash, until, json) in left {
        let tab = json.and_then(|json| serde_json::from_str::<HandOffWire>(&json).ok());
        // Left once under all of its ids, when its first id is read.
        if let Some(tab) = tab.filter(|tab| tab.hashes.first().is_none_or(|h| *h == hash)) {
            let hashes = if tab.hashes.is_empty() {
                vec![hash]
            } else {
                tab.hashes.clone()
            };
            shared.view.leave(&as_ids(&hashes), tab.tab(), until);
        }
    }
    Ok(())
}

/// The milliseconds a login's keys live: past its deadline by [`LOGIN_SLACK`].
pub(super) fn login_ttl(shared: &Shared, login: &LoginWire, now: UnixMillis) -> (UnixMillis, u64) {
    let ms = |d: Duration| d.as_millis() as UnixMillis;
    let limits = **shared.limits.load();
    let idle = limits.idle_timeout.map(|t| login.last + ms(t));
    let lifetime = limits.max_lifetime.map(|t| login.started + ms(t));
    let deadline = idle
        .into_iter()
        .chain(lifetime)
        .min()
        .unwrap_or(login.last + ms(LOGIN_MAX_TTL));
    let ttl = deadline.saturating_sub(now) + ms(LOGIN_SLACK);
    (deadline, ttl)
}

/// How long the indexes live: as long as the longest login could, from now.
pub(super) fn index_ttl(shared: &Shared) -> u64 {
    let limits = **shared.limits.load();
    let longest = limits
        .max_lifetime
        .or(limits.idle_timeout)
        .unwrap_or(LOGIN_MAX_TTL);
    (longest + LOGIN_SLACK).as_millis() as u64
}

/// How long a revocation is remembered: as long as a login could live at all. Without
/// `login.max_lifetime`, a login slides as long as its person is active, so the longest
/// any login is kept.
pub(super) fn revoked_ttl(shared: &Shared) -> u64 {
    let longest = shared.limits.load().max_lifetime.unwrap_or(LOGIN_MAX_TTL);
    (longest + LOGIN_SLACK).as_millis() as u64
}

pub(super) fn write_login(
    pipe: &mut Pipeline,
    shared: &Shared,
    login: &LoginWire,
    now: UnixMillis,
) {
    let keys = &shared.keys;
    let (deadline, ttl) = login_ttl(shared, login, now);
    let key = keys.login(&login.key);
    pipe.hset_multiple(&key, &login.fields()).ignore();
    pipe.pexpire(&key, ttl as i64).ignore();
    index_login(pipe, shared, login, deadline);
}

pub(super) fn index_login(
    pipe: &mut Pipeline,
    shared: &Shared,
    login: &LoginWire,
    deadline: UnixMillis,
) {
    let keys = &shared.keys;
    let ttl = index_ttl(shared) as i64;
    for index in [keys.logins(), keys.user(&login.user)] {
        pipe.zadd(&index, &login.key, deadline).ignore();
        pipe.pexpire(&index, ttl).ignore();
    }
}

/// This replica lives; forgets what expired in the indexes.
pub(super) fn heartbeat(pipe: &mut Pipeline, shared: &Shared, now: UnixMillis) {
    let keys = &shared.keys;
    let ttl = REPLICA_TTL.as_millis() as u64;
    let slack = LOGIN_SLACK.as_millis() as u64;
    pipe.zadd(
        keys.replicas(),
        format!("{:016x}", shared.replica),
        now + ttl,
    )
    .ignore();
    pipe.pexpire(keys.replicas(), ttl as i64).ignore();
    pipe.pexpire(keys.tabs(shared.replica), ttl as i64).ignore();
    pipe.zrembyscore(keys.replicas(), "-inf", now).ignore();
    pipe.zrembyscore(keys.logins(), "-inf", now.saturating_sub(slack))
        .ignore();
    pipe.zrembyscore(keys.ended_index(), "-inf", now).ignore();
    pipe.zrembyscore(keys.handoffs(), "-inf", now).ignore();
}

pub(super) async fn read_logins(
    conn: &mut MultiplexedConnection,
    shared: &Shared,
    now: UnixMillis,
) -> RedisResult<()> {
    let slack = LOGIN_SLACK.as_millis() as u64;
    let keys: Vec<String> = redis::cmd("ZRANGE")
        .arg(shared.keys.logins())
        .arg(now.saturating_sub(slack))
        .arg("+inf")
        .arg("BYSCORE")
        .query_async(conn)
        .await?;
    for chunk in keys.chunks(CHUNK) {
        let mut read = redis::pipe();
        for key in chunk {
            read.hgetall(shared.keys.login(key));
        }
        let found: Vec<HashMap<String, String>> = read.query_async(conn).await?;
        for (key, fields) in chunk.iter().zip(found) {
            adopt(shared, LoginWire::from_fields(key, &fields));
        }
    }
    Ok(())
}

/// Puts a login another replica made into the view, or moves its activity.
pub(super) fn adopt(shared: &Shared, login: Option<LoginWire>) {
    let Some(login) = login else { return };
    if shared.forbidden(&login.key) {
        return;
    }
    shared.wrote(&login.key, login.last);
    match shared.view.by_key(&login.key) {
        Some(known) => known.touch(login.last),
        None => shared.view.insert(Arc::new(login.session())),
    }
}

/// Reads the other live replicas' tabs (only `only`'s, when given) into the view, in place
/// of what it had of them, and forgets the tabs of replicas that are gone.
pub(super) async fn read_tabs(
    conn: &mut MultiplexedConnection,
    shared: &Shared,
    now: UnixMillis,
    only: Option<Replica>,
) -> RedisResult<()> {
    let live: Vec<String> = redis::cmd("ZRANGE")
        .arg(shared.keys.replicas())
        .arg(now)
        .arg("+inf")
        .arg("BYSCORE")
        .query_async(conn)
        .await?;
    let live: HashSet<Replica> = live
        .iter()
        .filter_map(|hex| Replica::from_str_radix(hex, 16).ok())
        .collect();
    forget_replicas_except(shared, &live);
    let others = live
        .into_iter()
        .filter(|r| *r != shared.replica && only.is_none_or(|only| only == *r));
    for replica in others {
        let tabs: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(shared.keys.tabs(replica))
            .query_async(conn)
            .await?;
        let records: Vec<_> = tabs
            .values()
            .filter_map(|json| serde_json::from_str::<TabWire>(json).ok())
            .map(TabWire::record)
            .filter(|record| record.replica == replica)
            .collect();
        let known: HashSet<_> = records.iter().map(|record| record.tab).collect();
        for gone in TabDirectory::all(&shared.view)
            .into_iter()
            .filter(|r| r.replica == replica && !known.contains(&r.tab))
        {
            shared.view.close(replica, gone.tab);
        }
        for record in records {
            shared.view.open(record);
        }
    }
    Ok(())
}

/// Forgets the tabs of every other replica not in `live` (they stopped or crashed).
pub(super) fn forget_replicas_except(shared: &Shared, live: &HashSet<Replica>) {
    for record in TabDirectory::all(&shared.view) {
        if record.replica != shared.replica && !live.contains(&record.replica) {
            shared.view.close(record.replica, record.tab);
        }
    }
}

async fn read_ended(
    conn: &mut MultiplexedConnection,
    shared: &Shared,
    now: UnixMillis,
) -> RedisResult<()> {
    let keys = &shared.keys;
    let ended = read_indexed(conn, keys.ended_index(), |h| keys.ended(h), now).await?;
    for (hash, until, json) in ended {
        let notice = json
            .and_then(|json| serde_json::from_str::<NoticeWire>(&json).ok())
            .and_then(NoticeWire::notice);
        if let Some(notice) = notice {
            let ttl = Duration::from_millis(until.saturating_sub(now));
            shared
                .view
                .bury(EndedId::AppSession(&hash), &notice, now, ttl);
        }
    }
    Ok(())
}
