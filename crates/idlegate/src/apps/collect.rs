//! Freeing an ended session inside the app's Python process (launcher mode), for every
//! Python framework: a full garbage collection, and for Streamlit also ending sessions for
//! good.
//!
//! When idlegate starts the app itself it puts a small `sitecustomize` module on
//! `PYTHONPATH` that answers SIGUSR1:
//!
//! - **Ended sessions are shut down at once.** idlegate writes their ids to a file in the
//!   hook directory first. For Gradio, the handler marks each session closed with no time
//!   left (`SessionState.is_closed`, `STATE_TTL_WHEN_CLOSED`, `state_holder.py`), so Gradio's
//!   own once-a-second pass deletes its `gr.State` values (calling their `delete_callback`)
//!   instead of an hour later; the state holder is found once among the process's objects.
//!   For Streamlit, the handler (on a thread of its own, never inside the signal)
//!   calls `Runtime.instance().clear_user_info_for_session(id)`, Streamlit's thread-safe
//!   way to end a session for good (`runtime/runtime.py`): a stored session is shut down,
//!   a connected one is marked so its disconnect shuts it down instead of storing it. Only
//!   `AppSession.shutdown()` releases a session's uploaded files, media and lazy table
//!   sources (`runtime/app_session.py`); a session Streamlit merely lets expire keeps them
//!   until it is garbage collected. Downloadable media go on the second orphan sweep after
//!   their session ends (`runtime/media_file_manager.py`), so the handler sweeps twice.
//! - **A full garbage collection.** A session caught in a reference cycle is only freed by
//!   Python's next full collection, which Streamlit runs after script runs; an idle server
//!   would keep it. A Shiny session is always in such cycles (its server function's
//!   closures and the session refer to each other): without a collection, an ended
//!   session's data stays until enough other allocations trigger one. The handler collects after closing sessions, or alone when asked after
//!   a reclaim ([`super::reclaim`]).
//!
//! SIGUSR1 would terminate a process without the handler, so the module writes a marker
//! file named after its process id once the handler is in place, and idlegate only signals
//! a process whose marker exists. The marker holds the installed Streamlit's version (from
//! its package metadata, without importing it), which a page drawn in place on a new
//! connection must name before any session has told it. A command that is not Python, or runs Python with `-S`
//! or `-I`, simply never gets the signal. Any `sitecustomize` the module shadows is still
//! loaded.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::kind::{LaunchRequest, ProcessHook, Runtime};

/// The module written into the hook directory.
const SITECUSTOMIZE: &str = r#""""Lets the idlegate gateway in front of this app end sessions for good and free memory.

idlegate sends SIGUSR1 after a tab session ended (having written the session ids to a
file here) or after the app dropped expired sessions: the ended sessions are shut down,
which frees their uploaded files, media and table sources, and a full garbage collection
frees sessions caught in reference cycles.
"""
import gc as _gc
import importlib.machinery as _machinery
import importlib.util as _util
import os as _os
import signal as _signal
import sys as _sys
import threading as _threading
import time as _time

_here = _os.path.dirname(_os.path.abspath(__file__))


_idlegate_holders = []


def _idlegate_gradio_close(ids):
    """Has Gradio delete the sessions' gr.State values on its next pass (within a second),
    as it does for a closed session an hour after its tab left: each is marked closed with
    no time left. Gradio's own loop deletes them (calling their delete_callback). The state
    holders (one per server app Gradio made) are found among the process's objects, again
    when a session is in none of those known."""
    global _idlegate_holders
    module = _sys.modules.get("gradio.state_holder")
    if module is None:
        return
    for attempt in range(2):
        holders = [ref() for ref in _idlegate_holders]
        holders = [h for h in holders if h is not None]
        missing = []
        for session_id in ids:
            sessions = [h.session_data.get(session_id) for h in holders]
            sessions = [s for s in sessions if s is not None]
            for session in sessions:
                session.STATE_TTL_WHEN_CLOSED = 0
                session.is_closed = True
            if not sessions:
                missing.append(session_id)
        if not missing or attempt:
            return
        import weakref as _weakref

        kind = module.StateHolder
        _idlegate_holders = [_weakref.ref(o) for o in _gc.get_objects() if type(o) is kind]
        ids = missing


def _idlegate_close(ids):
    try:
        _idlegate_gradio_close(ids)
    except Exception:
        pass
    if "streamlit" not in _sys.modules:
        # Gradio deletes the state within a second; collect after that.
        _time.sleep(1.5)
        _gc.collect()
        return
    try:
        from streamlit.runtime import Runtime

        runtime = Runtime.instance()
        for session_id in ids:
            runtime.clear_user_info_for_session(session_id)
        # Shutting a session down sweeps media once; downloads go on the second sweep.
        for _ in range(2):
            _time.sleep(0.5)
            runtime.media_file_mgr.remove_orphaned_files()
    except Exception:
        pass
    _gc.collect()


def _idlegate_take_requests():
    ids = []
    prefix = "close-%d." % _os.getpid()
    for name in sorted(_os.listdir(_here)):
        if not name.startswith(prefix) or name.endswith(".tmp"):
            continue
        path = _os.path.join(_here, name)
        try:
            with open(path) as requests:
                ids.extend(line.strip() for line in requests if line.strip())
            _os.remove(path)
        except OSError:
            pass
    return ids


def _idlegate_version():
    try:
        from importlib.metadata import version

        return version("streamlit")
    except Exception:
        return ""


def _idlegate_collect(_signum, _frame):
    ids = _idlegate_take_requests()
    if ids:
        _threading.Thread(target=_idlegate_close, args=(ids,), daemon=True).start()
    else:
        _gc.collect()


try:
    if _signal.getsignal(_signal.SIGUSR1) == _signal.SIG_DFL:
        _signal.signal(_signal.SIGUSR1, _idlegate_collect)
        with open(_os.path.join(_here, "ready-%d" % _os.getpid()), "w") as _ready:
            _ready.write(_idlegate_version())
except (ValueError, OSError, AttributeError):
    pass

# Load the sitecustomize module this one shadows, if there is one.
_rest = [p for p in _sys.path if _os.path.abspath(p or ".") != _here]
_spec = _machinery.PathFinder.find_spec("sitecustomize", _rest)
if _spec is not None and _spec.loader is not None:
    _module = _util.module_from_spec(_spec)
    _sys.modules["sitecustomize"] = _module
    _spec.loader.exec_module(_module)
"#;

/// The hook directory for one launched app. Removed when dropped.
#[derive(Debug)]
pub struct GcHook {
    dir: PathBuf,
    requests: AtomicU64,
}

impl GcHook {
    /// Creates the directory with the module in it.
    pub fn create() -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "idlegate-gc-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("sitecustomize.py"), SITECUSTOMIZE)?;
        Ok(Self {
            dir,
            requests: AtomicU64::new(0),
        })
    }

    /// `PYTHONPATH` for the app: the hook directory first, then what was there.
    pub fn python_path(&self, existing: Option<&std::ffi::OsStr>) -> std::ffi::OsString {
        let mut value = self.dir.clone().into_os_string();
        if let Some(existing) = existing.filter(|e| !e.is_empty()) {
            value.push(":");
            value.push(existing);
        }
        value
    }

    /// Asks process `pid` for a full collection, if its handler is in place. Returns whether
    /// the signal was sent.
    pub fn collect(&self, pid: u32) -> bool {
        if !self.is_ready(pid) {
            return false;
        }
        match i32::try_from(pid) {
            Ok(raw) => kill(Pid::from_raw(raw), Signal::SIGUSR1).is_ok(),
            Err(_) => false,
        }
    }

    /// Asks process `pid` to end the sessions `ids` for good (and then collect garbage), if
    /// its handler is in place. Each id must be a session id as Streamlit makes them (a
    /// UUID); others are skipped. Returns whether the request was made.
    pub fn close_sessions(&self, pid: u32, ids: &[&str]) -> bool {
        let ids: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| {
                !id.is_empty()
                    && id.len() <= 64
                    && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            .collect();
        if ids.is_empty() || !self.is_ready(pid) {
            return false;
        }
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("close-{pid}.{n:012}"));
        let staged = path.with_extension(format!("{n:012}.tmp"));
        let written =
            std::fs::write(&staged, ids.join("\n")).and_then(|()| std::fs::rename(&staged, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&staged);
            return false;
        }
        self.collect(pid)
    }

    /// The Streamlit version process `pid` would import, as its marker says; `None` before
    /// the marker is written or when the package metadata was not found.
    pub fn version(&self, pid: u32) -> Option<String> {
        let text = std::fs::read_to_string(self.dir.join(format!("ready-{pid}"))).ok()?;
        let version = text.trim();
        let plausible = !version.is_empty()
            && version.len() <= 32
            && version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'));
        plausible.then(|| version.to_owned())
    }

    /// Whether process `pid` has installed the handler.
    pub fn is_ready(&self, pid: u32) -> bool {
        self.dir.join(format!("ready-{pid}")).is_file()
    }

    /// The hook directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The launched app's Python runtime, reached through its hook: ends sessions for good and
/// collects garbage.
#[derive(Debug, Clone)]
pub struct AppRuntime {
    hook: std::sync::Arc<GcHook>,
    pid: u32,
}

impl AppRuntime {
    pub fn new(hook: std::sync::Arc<GcHook>, pid: u32) -> Self {
        Self { hook, pid }
    }

    /// Ends the sessions `ids` for good (see the module docs). Returns whether the request
    /// was made (the app installed the hook).
    pub fn close_sessions(&self, ids: &[&str]) -> bool {
        self.hook.close_sessions(self.pid, ids)
    }

    /// Asks for a full garbage collection.
    pub fn collect(&self) -> bool {
        self.hook.collect(self.pid)
    }

    /// The app's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The app's Streamlit version ([`GcHook::version`]).
    pub fn version(&self) -> Option<String> {
        self.hook.version(self.pid)
    }
}

impl Drop for GcHook {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl ProcessHook for GcHook {
    fn runtime(self: Arc<Self>, pid: u32) -> Arc<dyn Runtime> {
        Arc::new(AppRuntime::new(self, pid))
    }
}

impl Runtime for AppRuntime {
    fn close_sessions(&self, ids: &[&str]) -> bool {
        AppRuntime::close_sessions(self, ids)
    }

    fn collect(&self) -> bool {
        AppRuntime::collect(self)
    }

    fn version(&self) -> Option<String> {
        AppRuntime::version(self)
    }

    fn resident_bytes(&self) -> Option<u64> {
        crate::procfs::tree_resident_bytes(self.pid())
    }
}

/// The environment a Python app is launched with, and the collection hook, if any.
pub type PythonLaunch = (
    Vec<(String, std::ffi::OsString)>,
    Option<Arc<dyn ProcessHook>>,
);

/// What every Python app's launch needs: its output unbuffered (idlegate relays it through
/// a pipe, where Python would buffer it by the block: lines would show late, or be lost if
/// the app is killed), and, with `launcher.collect_garbage`, the hook on `PYTHONPATH`.
/// Returns the environment to set and the hook.
///
/// # Errors
/// The hook's directory cannot be made.
pub fn python_launch(request: &LaunchRequest<'_>) -> Result<PythonLaunch, String> {
    let mut env = Vec::new();
    if (request.env)("PYTHONUNBUFFERED").is_none() {
        env.push(("PYTHONUNBUFFERED".to_owned(), "1".into()));
    }
    if !request.config.launcher.collect_garbage {
        return Ok((env, None));
    }
    let gc = Arc::new(
        GcHook::create().map_err(|e| format!("cannot prepare the garbage-collection hook: {e}"))?,
    );
    let existing = (request.env)("PYTHONPATH").map(std::ffi::OsString::from);
    env.push(("PYTHONPATH".to_owned(), gc.python_path(existing.as_deref())));
    Ok((env, Some(gc as Arc<dyn ProcessHook>)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_path_puts_the_hook_first() {
        let hook = GcHook::create().unwrap();
        let path = hook.python_path(Some(std::ffi::OsStr::new("/a:/b")));
        let text = path.to_string_lossy();
        assert!(text.starts_with(hook.dir().to_str().unwrap()));
        assert!(text.ends_with(":/a:/b"));
        assert!(hook.dir().join("sitecustomize.py").is_file());
        let dir = hook.dir().to_owned();
        drop(hook);
        assert!(!dir.exists());
    }

    #[test]
    fn a_process_without_the_handler_is_never_signalled() {
        let hook = GcHook::create().unwrap();
        // This test process has no marker; signalling it would kill it.
        assert!(!hook.collect(std::process::id()));
    }
}
