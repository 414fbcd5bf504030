//! The Redis store against a real `redis-server`: the conformance suite, and what replicas
//! see of each other's changes, across a restart of a replica and of Redis itself.

use std::sync::Arc;
use std::time::Duration;

use testkit::redis::RedisServer;

use super::*;
use crate::config::{Config, OnUnavailable};
use crate::lifecycle::EndReason;
use crate::store::{conformance, Identity};

fn config(url: &str, prefix: &str) -> (RedisUrl, StoreConfig) {
    let config = Config::from_toml(&format!(
        "[store]\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\n"
    ))
    .expect("a Redis store config");
    let crate::config::StoreBackend::Redis(url) = config.store.backend.clone() else {
        panic!("a Redis URL")
    };
    assert_eq!(config.store.on_unavailable, OnUnavailable::Refuse);
    (url, config.store)
}

const LIMITS: LoginLimits = LoginLimits {
    idle_timeout: Some(Duration::from_secs(600)),
    max_lifetime: Some(Duration::from_secs(3600)),
};

fn replica(redis: &RedisServer, prefix: &str) -> Started {
    let (url, config) = config(&redis.url(), prefix);
    RedisStore::start(&url, &config, LIMITS).expect("a Redis store")
}

/// Waits until `check` holds (the other replica's view follows within a second or two).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn connected(started: &Started) {
    eventually("connected to Redis", || started.stores.cluster.available()).await;
}

fn alice() -> Arc<LoginSession> {
    let identity = Identity {
        user: "alice".into(),
        name: Some("Alice".into()),
        email: None,
        groups: vec!["analysts".into()],
    };
    Arc::new(LoginSession::new(identity, WallClock::now().now_ms()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_passes_the_conformance_suite() {
    let redis = RedisServer::start().await.expect("redis-server");
    let count = std::sync::atomic::AtomicUsize::new(0);
    conformance::run(&|| {
        let n = count.fetch_add(1, Ordering::Relaxed);
        replica(&redis, &format!("conformance{n}:")).stores
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_see_each_others_logins_activity_revocations_ends_and_tabs() {
    let redis = RedisServer::start().await.expect("redis-server");
    let (a, mut b) = (replica(&redis, "app:"), replica(&redis, "app:"));
    connected(&a).await;
    connected(&b).await;
    let login = alice();
    a.stores.logins.insert(login.clone());
    eventually("B knows A's login", || {
        b.stores.logins.get(login.id()).is_some()
    })
    .await;
    let seen = b.stores.logins.get(login.id()).expect("the login on B");
    assert_eq!(seen.identity, login.identity);
    assert!(!seen.has_id(), "B never learns the cookie's id");
    // Activity on A reaches B after one flush.
    login.touch(login.last_activity() + 5_000);
    eventually("B sees A's activity", || {
        seen.last_activity() == login.last_activity()
    })
    .await;
    // A tab ended on A is remembered on B.
    let notice = EndNotice::reason(EndReason::Idle);
    let now = a.stores.clock.now_ms();
    let ttl = Duration::from_secs(60);
    a.stores
        .ended
        .bury(EndedId::AppSession("s-1"), &notice, now, ttl);
    eventually("B knows the ended tab", || {
        b.stores.ended.find(EndedId::AppSession("s-1"), now) == Some(notice.clone())
    })
    .await;
    // Tabs count across replicas.
    let record = |stores: &Stores, tab| TabRecord {
        replica: stores.replica,
        tab,
        user: Some("alice".into()),
        opened: now,
        last_activity: now,
    };
    a.stores.tabs.open(record(&a.stores, 1));
    b.stores.tabs.open(record(&b.stores, 1));
    for stores in [&a.stores, &b.stores] {
        eventually("both tabs counted", || stores.tabs.count_of("alice") == 2).await;
        assert_eq!(stores.tabs.total(), 2);
    }
    // Commands reach the other replica.
    a.stores.cluster.send(Command::EndUser {
        user: "alice".into(),
        reason: EndReason::Logout,
    });
    let command = tokio::time::timeout(Duration::from_secs(5), b.commands.recv()).await;
    assert_eq!(
        command.expect("a command within 5 s"),
        Some(Command::EndUser {
            user: "alice".into(),
            reason: EndReason::Logout
        })
    );
    // A revocation on B reaches A, and the login's holders.
    b.stores.logins.revoke(login.key(), EndReason::Logout);
    eventually("A forgets the revoked login", || {
        a.stores.logins.get(login.id()).is_none()
    })
    .await;
    assert!(login.is_revoked());
    // A stopped replica's tabs are gone for the others.
    b.store.stop(Duration::from_secs(3)).await;
    eventually("A forgets B's tabs", || a.stores.tabs.total() == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_reads_the_state_and_an_emptied_redis_is_filled_again() {
    let mut redis = RedisServer::start().await.expect("redis-server");
    let a = replica(&redis, "app:");
    connected(&a).await;
    let (kept, revoked) = (alice(), alice());
    a.stores.logins.insert(kept.clone());
    a.stores.logins.insert(revoked.clone());
    a.stores.logins.revoke(revoked.key(), EndReason::Logout);
    let now = a.stores.clock.now_ms();
    a.stores.tabs.open(TabRecord {
        replica: a.stores.replica,
        tab: 7,
        user: Some("alice".into()),
        opened: now,
        last_activity: now,
    });
    let notice = EndNotice::reason(EndReason::Admin);
    let ttl = Duration::from_secs(60);
    a.stores
        .ended
        .bury(EndedId::PageToken("p-1"), &notice, now, ttl);
    // A replica started later (a rolling update) reads it all from Redis.
    let later = |redis: &RedisServer| replica(redis, "app:");
    let check = |c: &Started| {
        c.stores.logins.get(kept.id()).is_some()
            && c.stores.logins.get(revoked.id()).is_none()
            && c.stores.tabs.count_of("alice") == 1
            && c.stores.ended.find(EndedId::PageToken("p-1"), now) == Some(notice.clone())
    };
    let c = later(&redis);
    eventually("the new replica read the state", || check(&c)).await;
    c.store.stop(Duration::from_secs(3)).await;
    // Redis dies and comes back empty: A notices, and fills it again.
    redis.kill().await.expect("kill");
    eventually("A sees Redis gone", || !a.stores.cluster.available()).await;
    assert!(a.stores.logins.get(kept.id()).is_some(), "A's view goes on");
    redis.restart().await.expect("restart");
    connected(&a).await;
    let d = later(&redis);
    eventually("a replica after the fault reads A's state", || {
        d.stores.logins.get(kept.id()).is_some() && d.stores.tabs.count_of("alice") == 1
    })
    .await;
    // Every key has a time to live.
    let keys = redis.command("KEYS *").await.expect("KEYS");
    for key in keys.lines().filter(|line| line.starts_with("app:")) {
        let ttl = redis.command(&format!("PTTL {key}")).await.expect("PTTL");
        assert!(
            ttl.starts_with(':') && !ttl.starts_with(":-"),
            "{key}: {ttl}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_replica_never_moves_a_login_back_nor_revives_a_revoked_one() {
    let redis = RedisServer::start().await.expect("redis-server");
    let a = replica(&redis, "app:");
    connected(&a).await;
    let (kept, revoked) = (alice(), alice());
    a.stores.logins.insert(kept.clone());
    a.stores.logins.insert(revoked.clone());
    let later = kept.last_activity() + 60_000;
    let key = |login: &LoginSession| format!("app:login:{}", login.key());
    eventually_async("the logins are in Redis", async || {
        redis
            .command(&format!("EXISTS {}", key(&revoked)))
            .await
            .ok()
            == Some(":1\r\n".into())
    })
    .await;
    // Meanwhile, as far as A could not hear: another replica saw later activity, and
    // another revoked a login.
    redis
        .command(&format!("HSET {} last {later}", key(&kept)))
        .await
        .expect("HSET");
    redis
        .command(&format!("SET app:revoked:{} 1 PX 60000", revoked.key()))
        .await
        .expect("SET");
    // A's link drops (its subscription is cut) and it fills Redis again.
    redis
        .command("CLIENT KILL TYPE pubsub")
        .await
        .expect("CLIENT KILL");
    eventually("A took the later activity", || {
        kept.last_activity() == later
    })
    .await;
    eventually("A dropped the revoked login", || revoked.is_revoked()).await;
    let last = redis
        .command(&format!("HGET {} last", key(&kept)))
        .await
        .expect("HGET");
    assert!(last.contains(&later.to_string()), "{last}");
}

/// [`eventually`], for checks that must wait on something themselves.
async fn eventually_async(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_the_url_is_used_and_a_wrong_one_keeps_the_store_unavailable() {
    let redis = RedisServer::start_with(&["--requirepass", "s3cret-pass"])
        .await
        .expect("redis-server");
    let with = |password: &str| {
        let url = format!("redis://:{password}@127.0.0.1:{}/0", redis.port());
        let (url, config) = config(&url, "auth:");
        assert!(!format!("{url:?}").contains(password), "Debug hides it");
        RedisStore::start(&url, &config, LIMITS).expect("a Redis store")
    };
    let right = with("s3cret-pass");
    connected(&right).await;
    let wrong = with("wrong-pass");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!wrong.stores.cluster.available());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_comes_back_empty_every_replica_recovers_and_sees_the_others_tabs() {
    let mut redis = RedisServer::start().await.expect("redis-server");
    let (a, b) = (replica(&redis, "app:"), replica(&redis, "app:"));
    connected(&a).await;
    connected(&b).await;
    let login = alice();
    a.stores.logins.insert(login.clone());
    eventually("B knows the login", || {
        b.stores.logins.get(login.id()).is_some()
    })
    .await;
    let now = a.stores.clock.now_ms();
    let tab = |stores: &Stores, tab| TabRecord {
        replica: stores.replica,
        tab,
        user: Some("alice".into()),
        opened: now,
        last_activity: now,
    };
    a.stores.tabs.open(tab(&a.stores, 1));
    b.stores.tabs.open(tab(&b.stores, 1));
    b.stores.tabs.open(tab(&b.stores, 2));
    eventually("A sees three tabs", || a.stores.tabs.total() == 3).await;
    redis.kill().await.expect("kill");
    eventually("both see Redis gone", || {
        !a.stores.cluster.available() && !b.stores.cluster.available()
    })
    .await;
    // While Redis is away, B's second tab closes.
    b.stores.tabs.close(b.stores.replica, 2);
    redis.restart().await.expect("restart");
    connected(&a).await;
    connected(&b).await;
    for (name, stores) in [("A", &a.stores), ("B", &b.stores)] {
        eventually(&format!("{name} sees the two open tabs"), || {
            stores.tabs.total() == 2
        })
        .await;
        assert!(
            stores.logins.get(login.id()).is_some(),
            "{name} keeps the login"
        );
    }
    // Both stay connected (neither is stuck refilling).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(a.stores.cluster.available() && b.stores.cluster.available());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_revoked_while_redis_stalls_stays_revoked_after_the_refill() {
    let redis = RedisServer::start().await.expect("redis-server");
    let a = replica(&redis, "app:");
    connected(&a).await;
    let login = alice();
    a.stores.logins.insert(login.clone());
    eventually_async("the login is in Redis", async || {
        redis
            .command(&format!("EXISTS app:login:{}", login.key()))
            .await
            .ok()
            == Some(":1\r\n".into())
    })
    .await;
    // Redis stalls (as behind a dropped link): the sign-out's write times out, and the
    // refill after it finds the login still listed.
    redis
        .command("CLIENT PAUSE 4000 ALL")
        .await
        .expect("CLIENT PAUSE");
    a.stores.logins.revoke(login.key(), EndReason::Logout);
    eventually("A sees Redis stalled", || !a.stores.cluster.available()).await;
    connected(&a).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        a.stores.logins.get(login.id()).is_none(),
        "the revoked login came back"
    );
    eventually_async("the revocation reached Redis", async || {
        redis
            .command(&format!("EXISTS app:login:{}", login.key()))
            .await
            .ok()
            == Some(":0\r\n".into())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_told_apart_by_database_do_not_hear_each_other() {
    let redis = RedisServer::start().await.expect("redis-server");
    let on = |db: u8| {
        let url = format!("redis://127.0.0.1:{}/{db}", redis.port());
        let (url, config) = config(&url, "app:");
        RedisStore::start(&url, &config, LIMITS).expect("a Redis store")
    };
    let (zero, one, zero_too) = (on(0), on(1), on(0));
    for started in [&zero, &one, &zero_too] {
        connected(started).await;
    }
    let login = alice();
    zero.stores.logins.insert(login.clone());
    eventually("the same app hears it", || {
        zero_too.stores.logins.get(login.id()).is_some()
    })
    .await;
    assert!(
        one.stores.logins.get(login.id()).is_none(),
        "another database's app must not hear it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_a_user_out_revokes_every_login_the_index_lists_even_ones_this_replica_missed() {
    let redis = RedisServer::start().await.expect("redis-server");
    let a = replica(&redis, "app:");
    connected(&a).await;
    // A login A never heard of (another replica wrote it while A's link was down).
    let missed = "f".repeat(64);
    let deadline = a.stores.clock.now_ms() + 600_000;
    for line in [
        format!("HSET app:login:{missed} user alice started 1 last 1 groups []"),
        format!("ZADD app:user:alice {deadline} {missed}"),
    ] {
        redis.command(&line).await.expect("write");
    }
    a.stores.cluster.revoke_user("alice", EndReason::Logout);
    eventually_async("the missed login is revoked in Redis", async || {
        redis
            .command(&format!("EXISTS app:login:{missed}"))
            .await
            .ok()
            == Some(":0\r\n".into())
            && redis
                .command(&format!("EXISTS app:revoked:{missed}"))
                .await
                .ok()
                == Some(":1\r\n".into())
    })
    .await;
}
