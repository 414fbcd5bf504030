//! What each change does to Redis: the commands that write it, in the pipeline of its
//! batch, and the message that tells the other replicas.

use redis::Pipeline;

use super::fill::{revoked_ttl, write_login, REPLICA_TTL};
use super::wire::{Body, HandOffWire, Keys, NoticeWire};
use super::{Op, Shared};
use crate::store::UnixMillis;

/// Adds the commands that write `op` to `pipe`; the message that tells the other replicas
/// (none for [`Op::Stop`]).
pub(super) fn write(
    pipe: &mut Pipeline,
    shared: &Shared,
    op: &Op,
    now: UnixMillis,
) -> Option<Body> {
    let keys = &shared.keys;
    let body = match op {
        Op::Login(login) => {
            write_login(pipe, shared, login, now);
            Body::Login {
                login: login.clone(),
            }
        }
        Op::Revoke { key, user, reason } => {
            pipe.del(keys.login(key)).ignore();
            pipe.zrem(keys.logins(), key).ignore();
            pipe.zrem(keys.user(user), key).ignore();
            let ttl = revoked_ttl(shared);
            pipe.set_options(
                keys.revoked(key),
                1,
                redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl)),
            )
            .ignore();
            Body::Revoke {
                key: key.clone(),
                reason: Some(reason.as_str().to_owned()),
            }
        }
        Op::Ended {
            hash,
            notice,
            until,
        } => ended(pipe, keys, hash, notice, *until, now),
        Op::TabOpened(tab) => {
            let json = serde_json::to_string(tab).unwrap_or_default();
            let key = keys.tabs(shared.replica);
            pipe.hset(&key, tab.tab, json).ignore();
            pipe.pexpire(&key, REPLICA_TTL.as_millis() as i64).ignore();
            Body::TabOpened { tab: tab.clone() }
        }
        Op::TabClosed(tab) => {
            pipe.hdel(keys.tabs(shared.replica), *tab).ignore();
            Body::TabClosed {
                replica: shared.replica,
                tab: *tab,
            }
        }
        Op::HandOff { hashes, tab, until } => hand_off(pipe, keys, hashes, tab, *until, now),
        Op::Taken { hashes } => {
            for hash in hashes {
                pipe.del(keys.handoff(hash)).ignore();
                pipe.zrem(keys.handoffs(), hash).ignore();
            }
            Body::Taken {
                hashes: hashes.clone(),
            }
        }
        Op::Command(command) => Body::of_command(command)?,
        // Expanded into revocations before the batch is written (`Link::write`).
        Op::RevokeUser { .. } => return None,
        Op::Stop(_) => return None,
    };
    Some(body)
}

/// Writes how a tab ended, under its hashed id.
fn ended(
    pipe: &mut Pipeline,
    keys: &Keys,
    hash: &str,
    notice: &NoticeWire,
    until: UnixMillis,
    now: UnixMillis,
) -> Body {
    let json = serde_json::to_string(notice).unwrap_or_default();
    let ttl = until.saturating_sub(now).max(1);
    pipe.set_options(
        keys.ended(hash),
        json,
        redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl)),
    )
    .ignore();
    pipe.zadd(keys.ended_index(), hash, until).ignore();
    pipe.pexpire(keys.ended_index(), ttl as i64).ignore();
    Body::Ended {
        hash: hash.to_owned(),
        notice: notice.clone(),
        until,
    }
}

/// Writes a handed-over tab under each of its hashed ids.
fn hand_off(
    pipe: &mut Pipeline,
    keys: &Keys,
    hashes: &[String],
    tab: &HandOffWire,
    until: UnixMillis,
    now: UnixMillis,
) -> Body {
    let json = serde_json::to_string(tab).unwrap_or_default();
    let ttl = until.saturating_sub(now).max(1);
    for hash in hashes {
        pipe.set_options(
            keys.handoff(hash),
            &json,
            redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl)),
        )
        .ignore();
        pipe.zadd(keys.handoffs(), hash, until).ignore();
    }
    pipe.pexpire(keys.handoffs(), ttl as i64).ignore();
    Body::HandOff {
        hashes: hashes.to_vec(),
        tab: tab.clone(),
        until,
    }
}
