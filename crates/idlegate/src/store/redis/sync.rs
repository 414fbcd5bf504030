//! The Redis store's background task: connects (again after any fault), fills Redis with
//! this replica's state and the view with the others', then writes and publishes changes,
//! applies what other replicas publish, writes moved activity every [`FLUSH_EVERY`] and
//! says every [`HEARTBEAT`] that this replica lives.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Pipeline, RedisResult};
use tokio::sync::mpsc;

use super::fill::{
    adopt, fill, forget_replicas_except, heartbeat, index_login, index_ttl, login_ttl, write_login,
    CHUNK, REPLICA_TTL,
};
use super::wire::{Body, HandOffWire, Keys, LoginWire, Message, NoticeWire, TabWire};
use super::{as_ids, Op, Shared, FLUSH_EVERY};
use crate::lifecycle::EndReason;
use crate::store::{
    Command, EndedId, EndedSessions, LoginStore, Replica, TabDirectory, UnixMillis,
};

/// How often a replica says it lives.
pub const HEARTBEAT: Duration = Duration::from_secs(20);
/// Waiting for Redis to connect or answer.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Runs until the store stops.
pub(super) async fn run(
    shared: Arc<Shared>,
    client: Client,
    mut ops: mpsc::Receiver<Op>,
    commands: mpsc::Sender<Command>,
) {
    let mut backoff = Duration::from_millis(250);
    let mut retry: Vec<Op> = Vec::new();
    let mut was_up = false;
    loop {
        let outcome = async {
            let (mut conn, messages) = connect(&client, &shared).await?;
            fill(&mut conn, &shared).await?;
            Ok::<_, redis::RedisError>((conn, messages))
        }
        .await;
        match outcome {
            Ok((mut conn, messages)) => {
                shared.up.store(true, Ordering::Relaxed);
                tracing::info!(recovered = was_up, "the store is connected to Redis");
                was_up = true;
                backoff = Duration::from_millis(250);
                let mut link = Link {
                    shared: &shared,
                    conn: &mut conn,
                    commands: &commands,
                };
                match link.serve(messages, &mut ops, &mut retry).await {
                    Served::Stopped => return,
                    Served::Fault(e) => fault(&shared, &e),
                }
            }
            Err(e) => fault(&shared, &e),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn fault(shared: &Shared, error: &redis::RedisError) {
    if shared.up.swap(false, Ordering::Relaxed) {
        tracing::error!(
            error = %error,
            "the store lost Redis: open tabs go on here, changes wait until it is back"
        );
    } else {
        tracing::debug!(error = %error, "the store cannot reach Redis");
    }
}

type Messages = std::pin::Pin<Box<dyn futures_util::Stream<Item = redis::Msg> + Send>>;

async fn connect(
    client: &Client,
    shared: &Shared,
) -> RedisResult<(MultiplexedConnection, Messages)> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT));
    let conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let mut pubsub = tokio::time::timeout(TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| timed_out())??;
    pubsub.subscribe(shared.keys.channel()).await?;
    Ok((conn, Box::pin(pubsub.into_on_message())))
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

/// How serving a connection ended.
enum Served {
    Stopped,
    Fault(redis::RedisError),
}

/// One live connection to Redis.
struct Link<'a> {
    shared: &'a Shared,
    conn: &'a mut MultiplexedConnection,
    commands: &'a mpsc::Sender<Command>,
}

impl Link<'_> {
    async fn serve(
        &mut self,
        mut messages: Messages,
        ops: &mut mpsc::Receiver<Op>,
        retry: &mut Vec<Op>,
    ) -> Served {
        let waiting = std::mem::take(retry);
        if let Err((e, unsent)) = self.write(waiting).await {
            *retry = unsent;
            return Served::Fault(e);
        }
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.tick().await;
        loop {
            let result = tokio::select! {
                message = messages.next() => match message {
                    Some(message) => {
                        self.apply(&message);
                        Ok(())
                    }
                    None => Err(connection_lost()),
                },
                op = ops.recv() => {
                    let Some(op) = op else { return Served::Stopped };
                    let mut batch = vec![op];
                    while batch.len() < CHUNK {
                        match ops.try_recv() {
                            Ok(op) => batch.push(op),
                            Err(_) => break,
                        }
                    }
                    if let Some(position) = batch.iter().position(|op| matches!(op, Op::Stop(_))) {
                        let Op::Stop(done) = batch.remove(position) else { unreachable!() };
                        let _ = self.write(batch).await;
                        self.stop().await;
                        let _ = done.send(());
                        return Served::Stopped;
                    }
                    self.write(batch).await.map_err(|(e, unsent)| {
                        *retry = unsent;
                        e
                    })
                }
                _ = flush.tick() => self.flush().await,
                _ = beat.tick() => self.beat().await,
            };
            if let Err(e) = result {
                return Served::Fault(e);
            }
        }
    }

    /// Writes and publishes `batch` in one pipeline; on a fault, gives the batch back.
    async fn write(&mut self, batch: Vec<Op>) -> Result<(), (redis::RedisError, Vec<Op>)> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = self.shared.clock.now_ms();
        let mut pipe = redis::pipe();
        for op in &batch {
            self.add(&mut pipe, op, now);
        }
        match pipe.query_async::<()>(self.conn).await {
            Ok(()) => Ok(()),
            Err(e) => Err((e, batch)),
        }
    }

    fn publish(&self, pipe: &mut Pipeline, body: Body) {
        let message = Message {
            from: self.shared.replica,
            body,
        };
        let json = serde_json::to_string(&message).unwrap_or_default();
        pipe.publish(self.shared.keys.channel(), json).ignore();
    }

    fn add(&self, pipe: &mut Pipeline, op: &Op, now: UnixMillis) {
        let (shared, keys) = (self.shared, &self.shared.keys);
        let body = match op {
            Op::Login(login) => {
                write_login(pipe, shared, login, now);
                Body::Login {
                    login: login.clone(),
                }
            }
            Op::Revoke { key, user } => {
                pipe.del(keys.login(key)).ignore();
                pipe.zrem(keys.logins(), key).ignore();
                pipe.zrem(keys.user(user), key).ignore();
                let ttl = index_ttl(shared);
                pipe.set_options(
                    keys.revoked(key),
                    1,
                    redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl)),
                )
                .ignore();
                Body::Revoke { key: key.clone() }
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
            Op::Command(command) => Body::of_command(command),
            Op::Stop(_) => return,
        };
        self.publish(pipe, body);
    }

    /// Writes the logins whose activity moved since they were last written, and this
    /// replica's tabs whose activity moved.
    async fn flush(&mut self) -> RedisResult<()> {
        let now = self.shared.clock.now_ms();
        let moved = self.moved_logins();
        let tabs = self.moved_tabs();
        if moved.is_empty() && tabs.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for login in &moved {
            let (deadline, ttl) = login_ttl(self.shared, login, now);
            let key = self.shared.keys.login(&login.key);
            pipe.hset(&key, "last", login.last).ignore();
            pipe.pexpire(&key, ttl as i64).ignore();
            index_login(&mut pipe, self.shared, login, deadline);
        }
        let key = self.shared.keys.tabs(self.shared.replica);
        for tab in &tabs {
            let json = serde_json::to_string(tab).unwrap_or_default();
            pipe.hset(&key, tab.tab, json).ignore();
        }
        let logins = moved.into_iter().map(|l| (l.key, l.last)).collect();
        let tabs = tabs.into_iter().map(|t| (t.tab, t.last)).collect();
        self.publish(&mut pipe, Body::Touch { logins, tabs });
        pipe.query_async(self.conn).await
    }

    /// The logins whose activity moved since it was last written (now counted as written).
    fn moved_logins(&self) -> Vec<LoginWire> {
        let mut written = self
            .shared
            .written
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut moved = Vec::new();
        for login in LoginStore::all(&self.shared.view) {
            let last = login.last_activity();
            let known = written.entry(login.key().to_owned()).or_insert(0);
            if *known < last {
                *known = last;
                moved.push(LoginWire::of(&login));
            }
        }
        moved
    }

    /// This replica's open tabs whose activity moved since the last flush.
    fn moved_tabs(&self) -> Vec<TabWire> {
        let touched = std::mem::take(
            &mut *self
                .shared
                .touched_tabs
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        if touched.is_empty() {
            return Vec::new();
        }
        TabDirectory::all(&self.shared.view)
            .iter()
            .filter(|r| r.replica == self.shared.replica && touched.contains(&r.tab))
            .map(TabWire::of)
            .collect()
    }

    /// Says this replica lives; forgets replicas that stopped saying so, and what it wrote
    /// of logins no longer known.
    async fn beat(&mut self) -> RedisResult<()> {
        let now = self.shared.clock.now_ms();
        let mut pipe = redis::pipe();
        heartbeat(&mut pipe, self.shared, now);
        pipe.query_async::<()>(self.conn).await?;
        let live: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.shared.keys.replicas())
            .arg(now)
            .arg("+inf")
            .arg("BYSCORE")
            .query_async(self.conn)
            .await?;
        let live = live
            .iter()
            .filter_map(|hex| Replica::from_str_radix(hex, 16).ok())
            .collect();
        forget_replicas_except(self.shared, &live);
        let view = &self.shared.view;
        self.shared
            .written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key, _| view.by_key(key).is_some());
        Ok(())
    }

    /// This replica stops: its last activity written, its tabs gone.
    async fn stop(&mut self) {
        let _ = self.flush().await;
        let keys = &self.shared.keys;
        let mut pipe = redis::pipe();
        pipe.del(keys.tabs(self.shared.replica)).ignore();
        pipe.zrem(keys.replicas(), format!("{:016x}", self.shared.replica))
            .ignore();
        self.publish(&mut pipe, Body::Gone);
        let _ = pipe.query_async::<()>(self.conn).await;
    }

    /// Applies what another replica published.
    fn apply(&mut self, message: &redis::Msg) {
        let Ok(message) = serde_json::from_slice::<Message>(message.get_payload_bytes()) else {
            tracing::debug!("the store ignored a message it cannot read");
            return;
        };
        if message.from == self.shared.replica {
            return;
        }
        let (shared, now) = (self.shared, self.shared.clock.now_ms());
        match message.body {
            Body::Login { login } => adopt(shared, Some(login)),
            Body::Touch { logins, tabs } => {
                for (key, last) in logins {
                    if let Some(login) = shared.view.by_key(&key) {
                        login.touch(last);
                        shared.wrote(&key, last);
                    }
                }
                for (tab, last) in tabs {
                    shared.view.touch(message.from, tab, last);
                }
            }
            Body::Revoke { key } => {
                shared.view.revoke(&key);
            }
            Body::Ended {
                hash,
                notice,
                until,
            } => {
                if let Some(notice) = notice.notice() {
                    let ttl = Duration::from_millis(until.saturating_sub(now));
                    shared
                        .view
                        .bury(EndedId::AppSession(&hash), &notice, now, ttl);
                }
            }
            Body::TabOpened { tab } => shared.view.open(tab.record()),
            Body::TabClosed { replica, tab } => {
                shared.view.close(replica, tab);
            }
            Body::EndUser { user, reason } => {
                if let Some(reason) = EndReason::from_name(&reason) {
                    let _ = self.commands.try_send(Command::EndUser { user, reason });
                }
            }
            Body::EndTab {
                replica,
                tab,
                reason,
            } => {
                if let Some(reason) = EndReason::from_name(&reason) {
                    let _ = self.commands.try_send(Command::EndTab {
                        replica,
                        tab,
                        reason,
                    });
                }
            }
            Body::HandOff { hashes, tab, until } => {
                shared.view.leave(&as_ids(&hashes), tab.tab(), until);
            }
            Body::Taken { hashes } => {
                shared.view.left(&as_ids(&hashes), now, true);
            }
            Body::Gone => {
                let others: HashSet<Replica> = TabDirectory::all(&shared.view)
                    .iter()
                    .map(|record| record.replica)
                    .filter(|replica| *replica != message.from)
                    .collect();
                forget_replicas_except(shared, &others);
            }
        }
    }
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

fn connection_lost() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
}
