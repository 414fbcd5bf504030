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
    adopt, fill, forget_replicas_except, heartbeat, index_login, login_ttl, read_logins, read_tabs,
    CHUNK,
};
use super::wire::{Body, LoginWire, Message, TabWire};
use super::{as_ids, write, Op, Shared, FLUSH_EVERY};
use crate::lifecycle::EndReason;
use crate::store::{
    Command, EndedId, EndedSessions, LoginStore, Replica, TabDirectory, UnixMillis,
};

/// How often a replica says it lives.
pub const HEARTBEAT: Duration = Duration::from_secs(20);
/// How much later than its heartbeat a replica must hear it back on its subscription.
const SILENCE: Duration = Duration::from_secs(10);
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
    let mut warned: Option<tokio::time::Instant> = None;
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
                    heard: tokio::time::Instant::now(),
                    commands: &commands,
                };
                match link.serve(messages, &mut ops, &mut retry).await {
                    Served::Stopped => return,
                    Served::Fault(e) => fault(&shared, &e, &mut warned),
                }
            }
            Err(e) => fault(&shared, &e, &mut warned),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// While Redis cannot be reached (or refuses what is asked), says so: at once when it was
/// reachable, then at most once a minute.
fn fault(shared: &Shared, error: &redis::RedisError, warned: &mut Option<tokio::time::Instant>) {
    if shared.up.swap(false, Ordering::Relaxed) {
        tracing::error!(
            error = %error,
            "the store lost Redis: open tabs go on here, changes wait until it is back"
        );
        *warned = Some(tokio::time::Instant::now());
    } else if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
        tracing::warn!(
            error = %error,
            "the store cannot reach Redis yet: open tabs go on here, changes wait (it keeps trying)"
        );
        *warned = Some(tokio::time::Instant::now());
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
    /// When the subscription last brought a message (this replica's own heartbeat at least).
    heard: tokio::time::Instant,
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
                    Some(message) => match self.apply(&message) {
                        Some(filled) => self.read_again(filled).await,
                        None => Ok(()),
                    },
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
        let batch = match self.expand(batch).await {
            Ok(batch) => batch,
            Err(fault) => return Err(fault),
        };
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

    /// Turns each [`Op::RevokeUser`] into the revocation of every login the user's index
    /// lists (read from Redis now).
    async fn expand(&mut self, batch: Vec<Op>) -> Result<Vec<Op>, (redis::RedisError, Vec<Op>)> {
        if !batch.iter().any(|op| matches!(op, Op::RevokeUser { .. })) {
            return Ok(batch);
        }
        let mut expanded = Vec::with_capacity(batch.len());
        for (n, op) in batch.iter().enumerate() {
            let Op::RevokeUser { user, reason } = op else {
                continue;
            };
            let keys: Vec<String> = match redis::cmd("ZRANGE")
                .arg(self.shared.keys.user(user))
                .arg(0)
                .arg(-1)
                .query_async(self.conn)
                .await
            {
                Ok(keys) => keys,
                Err(e) => return Err((e, batch)),
            };
            for key in keys {
                self.shared.forbid(&key, None);
                expanded.push((n, key, user.clone(), *reason));
            }
        }
        let mut ops: Vec<Op> = Vec::with_capacity(batch.len() + expanded.len());
        for (n, op) in batch.into_iter().enumerate() {
            if matches!(op, Op::RevokeUser { .. }) {
                ops.extend(expanded.iter().filter(|(at, ..)| *at == n).map(
                    |(_, key, user, reason)| Op::Revoke {
                        key: key.clone(),
                        user: user.clone(),
                        reason: *reason,
                    },
                ));
            } else {
                ops.push(op);
            }
        }
        Ok(ops)
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
        if let Some(body) = write::write(pipe, self.shared, op, now) {
            self.publish(pipe, body);
        }
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
        // A subscription can die without a word (a NAT or a load balancer dropping an idle
        // connection): then not even this replica's own heartbeat comes back, and the link
        // is made again, with a refill.
        if self.heard.elapsed() > HEARTBEAT + SILENCE {
            tracing::warn!("the store's subscription went silent; reconnecting to Redis");
            return Err(connection_lost());
        }
        let now = self.shared.clock.now_ms();
        let mut pipe = redis::pipe();
        heartbeat(&mut pipe, self.shared, now);
        self.publish(&mut pipe, Body::Alive);
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

    /// Reads the logins and the tabs of `replica` again, after it filled Redis.
    async fn read_again(&mut self, replica: Replica) -> RedisResult<()> {
        let now = self.shared.clock.now_ms();
        read_logins(self.conn, self.shared, now).await?;
        read_tabs(self.conn, self.shared, now, Some(replica)).await
    }

    /// Applies what another replica published; the replica to read again, when it says it
    /// filled Redis.
    fn apply(&mut self, message: &redis::Msg) -> Option<Replica> {
        self.heard = tokio::time::Instant::now();
        let payload = message.get_payload_bytes();
        // This replica's own messages come back too: skipped unread (a burst of new tabs
        // would otherwise be parsed here once more).
        if payload.starts_with(format!("{{\"from\":{},", self.shared.replica).as_bytes()) {
            return None;
        }
        let Ok(message) = serde_json::from_slice::<Message>(payload) else {
            tracing::debug!("the store ignored a message it cannot read");
            return None;
        };
        if message.from == self.shared.replica {
            return None;
        }
        follow(self.shared, self.commands, message)
    }
}

/// Applies another replica's `message` to the view; the replica to read again, when it says
/// it filled Redis.
fn follow(shared: &Shared, commands: &mpsc::Sender<Command>, message: Message) -> Option<Replica> {
    let now = shared.clock.now_ms();
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
        Body::Revoke { key, reason } => {
            let reason = reason
                .as_deref()
                .and_then(EndReason::from_name)
                .unwrap_or(EndReason::Logout);
            shared.forbid(&key, Some(reason));
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
                let _ = commands.try_send(Command::EndUser { user, reason });
            }
        }
        Body::EndTab {
            replica,
            tab,
            reason,
        } => {
            if let Some(reason) = EndReason::from_name(&reason) {
                let _ = commands.try_send(Command::EndTab {
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
        Body::Filled => return Some(message.from),
        Body::Alive => {}
    }
    None
}

fn connection_lost() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
}
