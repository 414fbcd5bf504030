//! The audit log (`audit.path`): one JSON line per lifecycle event an audit asks about (OWASP's
//! session lifecycle events): tab started, warned, kept working, ended (with the reason and
//! the human idle time), signed in, sign-in failed, login ended, administrator actions with
//! the caller, and configuration reloads. Session ids appear only as short hashes
//! ([`crate::redact::short_hash`]); user keys appear as they are, for an audit must say whose
//! session it was.
//!
//! Writing never waits on the data path: lines go through a bounded queue to a thread that
//! owns the file. When the queue is full a line is dropped and counted, and the next line
//! written says how many were lost (`"event": "audit_lines_dropped"`). [`Audit::reopen`]
//! (idlegate calls it on SIGHUP) reopens the file, after a log rotation moved it away.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::config::AuditTarget;
use crate::lifecycle::{Event, Subscriber, TabId};
use crate::redact::short_hash;

/// Lines waiting for the writer at most.
const QUEUE: usize = 8192;

enum Command {
    Line(String),
    Reopen,
}

/// The audit log's subscriber. Cheap to share (`Arc`).
pub struct Audit {
    queue: SyncSender<Command>,
    dropped: AtomicU64,
    /// The user of each open tab (tab ends do not carry it).
    users: Mutex<HashMap<TabId, Option<String>>>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit").finish_non_exhaustive()
    }
}

impl Audit {
    /// Opens the target and starts its writer thread.
    pub fn start(target: &AuditTarget) -> std::io::Result<Arc<Self>> {
        let sink = Sink::open(target)?;
        let (queue, lines) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("idlegate-audit".to_owned())
            .spawn(move || write_lines(sink, lines))?;
        Ok(Arc::new(Self {
            queue,
            dropped: AtomicU64::new(0),
            users: Mutex::new(HashMap::new()),
        }))
    }

    /// Reopens the file (after log rotation). Nothing to do for standard output.
    pub fn reopen(&self) {
        let _ = self.queue.try_send(Command::Reopen);
    }

    /// Writes that the configuration was reloaded (`"event": "config_reloaded"`):
    /// `result` is `"success"` or `"failure"`; `keys` the changed keys that took effect, or
    /// with a failure the key that was refused (when the error names one); `restart` the
    /// changed keys that wait for a restart. Key names only, never values.
    pub fn config_reloaded(&self, result: &str, keys: &[String], restart: &[String]) {
        self.send(line(
            "config_reloaded",
            json!({ "result": result, "keys": keys, "restart_needed": restart }),
        ));
    }

    fn send(&self, line: Value) {
        let lost = self.dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let note = record("audit_lines_dropped", json!({ "count": lost }));
            if self.queue.try_send(Command::Line(note)).is_err() {
                self.dropped.fetch_add(lost, Ordering::Relaxed);
            }
        }
        match self.queue.try_send(Command::Line(line.to_string())) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn user_of(&self, tab: TabId, forget: bool) -> Option<String> {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if forget {
            users.remove(&tab).flatten()
        } else {
            users.get(&tab).cloned().flatten()
        }
    }
}

/// The JSON line of `event` with `fields`: `{"time": RFC 3339 UTC, "event": …, fields…}`.
fn record(event: &str, fields: Value) -> String {
    line(event, fields).to_string()
}

fn line(event: &str, fields: Value) -> Value {
    let mut out = Map::new();
    out.insert(
        "time".to_owned(),
        Value::from(humantime::format_rfc3339_millis(SystemTime::now()).to_string()),
    );
    out.insert("event".to_owned(), Value::from(event));
    if let Value::Object(fields) = fields {
        out.extend(fields);
    }
    Value::Object(out)
}

/// The audit line of `event`, if it is one an audit asks about. `user` is the tab's user,
/// for tab events.
pub fn audit_line(event: &Event, user: Option<String>) -> Option<Value> {
    let hashed = |id: &Option<String>| id.as_deref().map(short_hash);
    Some(match event {
        Event::TabOpened {
            tab,
            app_session,
            script,
            ..
        } => line(
            "tab_started",
            json!({ "tab": tab, "user": user, "app_session": hashed(app_session), "script": script }),
        ),
        Event::Warned { tab } => line("warned", json!({ "tab": tab, "user": user })),
        Event::KeptWorking { tab } => line("kept_working", json!({ "tab": tab, "user": user })),
        Event::TabEnded(end) => line(
            "tab_ended",
            json!({
                "tab": end.tab,
                "user": user,
                "app_session": hashed(&end.app_session),
                "reason": end.reason.as_str(),
                "rule": end.rule.as_str(),
                "lifetime_seconds": round(end.lifetime.as_secs_f64()),
                "human_idle_seconds": round(end.human_idle.as_secs_f64()),
            }),
        ),
        Event::LoginStarted { user } => line("signed_in", json!({ "user": user })),
        Event::LoginEnded { user, reason } => line(
            "login_ended",
            json!({ "user": user, "reason": reason.as_str() }),
        ),
        Event::SignInFailed {
            user,
            client,
            method,
        } => line(
            "sign_in_failed",
            json!({ "user_hash": user, "client": client.to_string(), "method": method }),
        ),
        Event::AdminAction {
            caller,
            action,
            target,
            tabs,
            logins,
        } => line(
            "admin_action",
            json!({ "caller": caller, "action": action, "target": target, "tabs": tabs, "logins": logins }),
        ),
        _ => return None,
    })
}

fn round(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

impl Subscriber for Audit {
    fn on_event(&self, event: &Event) {
        let user = match event {
            Event::TabOpened { tab, user, .. } => {
                let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
                users.insert(*tab, user.clone());
                user.clone()
            }
            Event::Warned { tab } | Event::KeptWorking { tab } => self.user_of(*tab, false),
            Event::TabEnded(end) => self.user_of(end.tab, true),
            _ => None,
        };
        if let Some(line) = audit_line(event, user) {
            self.send(line);
        }
    }
}

/// Where the writer thread writes.
enum Sink {
    Stdout,
    File { path: PathBuf, file: std::fs::File },
}

impl Sink {
    fn open(target: &AuditTarget) -> std::io::Result<Self> {
        Ok(match target {
            AuditTarget::Stdout => Self::Stdout,
            AuditTarget::File(path) => Self::File {
                file: open_append(path)?,
                path: path.clone(),
            },
        })
    }

    fn write(&mut self, line: &str) -> std::io::Result<()> {
        match self {
            Self::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}")?;
                out.flush()
            }
            Self::File { file, .. } => writeln!(file, "{line}"),
        }
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        if let Self::File { path, file } = self {
            *file = open_append(path)?;
        }
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

fn write_lines(mut sink: Sink, commands: Receiver<Command>) {
    let mut failing = false;
    for command in commands {
        let result = match command {
            Command::Line(line) => sink.write(&line),
            Command::Reopen => sink.reopen(),
        };
        match result {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot write the audit log");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
