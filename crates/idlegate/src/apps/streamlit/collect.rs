//! A full garbage collection in the app's Python process after a reclaim (launcher mode).
//!
//! Streamlit drops expired sessions when [`super::reclaim`] pokes it, but a session caught
//! in a reference cycle is only freed by Python's next full collection. Streamlit runs one
//! after every script run, so a busy server frees it soon; an idle server keeps it. When
//! idlegate starts the app itself it puts a small `sitecustomize` module on `PYTHONPATH`
//! that lets SIGUSR1 run `gc.collect()`, and sends that signal after each reclaim.
//!
//! SIGUSR1 would terminate a process without the handler, so the module writes a marker
//! file named after its process id once the handler is in place, and idlegate only signals
//! a process whose marker exists. A command that is not Python, or runs Python with `-S`
//! or `-I`, simply never gets the signal. Any `sitecustomize` the module shadows is still
//! loaded.

use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The module written into the hook directory.
const SITECUSTOMIZE: &str = r#""""Lets the idlegate gateway in front of this app ask for a full garbage collection.

idlegate sends SIGUSR1 after the app dropped expired sessions, so that sessions caught in
reference cycles give their memory back even when no other session runs a script.
"""
import gc as _gc
import importlib.machinery as _machinery
import importlib.util as _util
import os as _os
import signal as _signal
import sys as _sys

_here = _os.path.dirname(_os.path.abspath(__file__))


def _idlegate_collect(_signum, _frame):
    _gc.collect()


try:
    if _signal.getsignal(_signal.SIGUSR1) == _signal.SIG_DFL:
        _signal.signal(_signal.SIGUSR1, _idlegate_collect)
        with open(_os.path.join(_here, "ready-%d" % _os.getpid()), "w"):
            pass
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
        Ok(Self { dir })
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

    /// Whether process `pid` has installed the handler.
    pub fn is_ready(&self, pid: u32) -> bool {
        self.dir.join(format!("ready-{pid}")).is_file()
    }

    /// The hook directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for GcHook {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
