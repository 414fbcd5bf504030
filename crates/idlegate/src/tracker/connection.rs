//! A connection's link to its tab: what the relay saw on the app's socket becomes the tab's
//! state.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use super::tab::{ActivityRule, Work};
use super::{lock, Ending, RunCause, Signal, Tab, TabId, Tracker};
use crate::lifecycle::Event;

/// A connection's link to its tab. Dropping it without [`TabConnection::closed`] counts as
/// closed too.
pub struct TabConnection {
    tracker: Tracker,
    tab: Arc<Tab>,
    generation: u64,
    /// Whether this is the tab's first connection (a page load) rather than a reconnect.
    first: bool,
    ending: watch::Receiver<Option<Ending>>,
    done: bool,
}

impl TabConnection {
    pub(super) fn new(
        tracker: Tracker,
        tab: Arc<Tab>,
        generation: u64,
        first: bool,
        ending: watch::Receiver<Option<Ending>>,
    ) -> Self {
        Self {
            tracker,
            tab,
            generation,
            first,
            ending,
            done: false,
        }
    }

    /// The tab this connection belongs to.
    pub fn tab_id(&self) -> TabId {
        self.tab.id
    }

    /// Whether this connection joined a tab that was already open (a page that reconnected).
    pub fn is_reconnect(&self) -> bool {
        !self.first
    }

    /// Resolves when the tab ends (or another connection takes it over).
    pub async fn ended(&self) -> Ending {
        let mut ending = self.ending();
        loop {
            if let Some(ending) = ending.borrow_and_update().clone() {
                return ending;
            }
            if ending.changed().await.is_err() {
                // The sender is gone only when the tab was replaced without a message.
                return Ending::quiet();
            }
        }
    }

    /// A receiver that changes once, when the tab ends or another connection takes it over.
    pub fn ending(&self) -> watch::Receiver<Option<Ending>> {
        self.ending.clone()
    }

    /// Applies what the connection saw.
    pub fn signal(&self, signal: Signal) {
        let tracker = &self.tracker;
        match signal {
            Signal::PersonMessage => {
                let rule = lock(&self.tab.inner).rule();
                if rule == ActivityRule::Messages {
                    tracker.touch(&self.tab, rule);
                }
            }
            Signal::RunRequested {
                automatic,
                fragment,
            } => self.requested(Asked::of(automatic), fragment),
            Signal::RunRequestedUnclear { fragment } => self.requested(Asked::Unclear, fragment),
            Signal::Running(true) => {
                let mut inner = lock(&self.tab.inner);
                let started = inner.requested.take();
                let was_busy = inner.running.is_some_and(|work| work.cause.is_awaited());
                let work = match (inner.running, started) {
                    (_, Some(started)) => started,
                    (Some(running), None) => running,
                    // The app runs without being asked (it reran itself): not a person.
                    (None, None) => Work::new(RunCause::Timer, inner.next_request),
                };
                inner.running = Some(work);
                drop(inner);
                if work.cause.is_awaited() && !was_busy {
                    let tab = self.tab.id;
                    tracker.publish(|| Event::Busy { tab, busy: true });
                }
            }
            Signal::Running(false) => {
                let (finished, rule) = {
                    let mut inner = lock(&self.tab.inner);
                    (inner.running.take(), inner.rule())
                };
                if finished.is_some_and(|work| work.cause.is_awaited()) {
                    let tab = self.tab.id;
                    tracker.publish(|| Event::Busy { tab, busy: false });
                }
                match finished.map(|work| work.cause) {
                    // The person was waiting for this result; idle time starts now.
                    Some(RunCause::Person) => tracker.touch(&self.tab, rule),
                    // So does the tab's, after a page load; a script can reload a page, so
                    // the login is not touched.
                    Some(RunCause::PageLoad) => tracker.touch_tab(&self.tab, Instant::now()),
                    _ => {}
                }
                if finished.is_some() {
                    tracker.reschedule(self.tab.id);
                }
            }
            Signal::TimerSet => lock(&self.tab.inner).timers = true,
            Signal::Page { path, embedded } => {
                let mut inner = lock(&self.tab.inner);
                inner.page = Some(path);
                inner.embedded = embedded;
            }
            Signal::SessionId(id) => self.learn_app_session(id),
        }
    }

    /// A run request: its cause, and the activity it is now.
    fn requested(&self, asked: Asked, fragment: bool) {
        match self.run_requested(asked, fragment) {
            Some(RunCause::Person) => self.tracker.touch(&self.tab, ActivityRule::Messages),
            // A page load starts the tab's idle time, not its login's.
            Some(RunCause::PageLoad) => self.tracker.touch_tab(&self.tab, Instant::now()),
            _ => {}
        }
    }

    /// Classifies a run request; returns its cause when that is activity now.
    fn run_requested(&self, asked: Asked, fragment: bool) -> Option<RunCause> {
        let now = Instant::now();
        let mut inner = lock(&self.tab.inner);
        let id = inner.next_request;
        inner.next_request += 1;
        let rule = inner.rule();
        let expected = inner.expect_page_rerun.take();
        inner.last_request_fragment = fragment;
        let cause = if asked == Asked::Automatic {
            RunCause::Timer
        } else if self.first && id == 0 {
            // The first run of a page load: whoever opened the page waits for it.
            RunCause::PageLoad
        } else if expected.is_some_and(|until| now <= until) {
            RunCause::Reconnect
        } else if rule == ActivityRule::Messages {
            match asked {
                Asked::Person => RunCause::Person,
                _ => RunCause::Timer,
            }
        } else if inner.attribution.request(now, id) {
            RunCause::Person
        } else {
            RunCause::Unattributed
        };
        let work = Work::new(cause, id);
        if fragment {
            // A fragment's run waits for (or joins) the run in progress; it does not stop it.
            match inner.running {
                Some(running) => inner.running = Some(running.merge(Some(work))),
                None => inner.requested = Some(work.merge(inner.requested)),
            }
        } else if inner.running.is_some() {
            // Asked for the whole page while it runs, the app stops the run and starts this
            // one: the run is now this request's.
            inner.running = Some(work);
        } else {
            inner.requested = Some(work);
        }
        // Under the input rule the person's input itself was the activity.
        match cause {
            RunCause::PageLoad => Some(cause),
            RunCause::Person if rule == ActivityRule::Messages => Some(cause),
            _ => None,
        }
    }

    fn learn_app_session(&self, id: String) {
        let mut registry = self.tracker.registry();
        let mut inner = lock(&self.tab.inner);
        if inner.app_session.as_deref() == Some(id.as_str()) || inner.ended.is_some() {
            return;
        }
        if let Some(old) = inner.app_session.replace(id.clone()) {
            registry.by_app_session.remove(&old);
        }
        registry.by_app_session.insert(id, self.tab.id);
    }

    /// The connection is gone. The tab waits `tabs.reconnect_grace` for the browser to come
    /// back, unless it has ended or another connection has taken it over.
    pub fn closed(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let mut inner = lock(&self.tab.inner);
        let current = matches!(inner.connection, Some((g, _)) if g == self.generation);
        if inner.ended.is_some() || !current {
            return;
        }
        inner.connection = None;
        inner.interrupted = inner.running.is_some() || inner.requested.is_some();
        inner.running = None;
        inner.requested = None;
        inner.disconnected_since = Some(Instant::now());
        drop(inner);
        let tab = self.tab.id;
        self.tracker.publish(|| Event::Disconnected { tab });
        self.tracker.reschedule(tab);
    }
}

impl Drop for TabConnection {
    fn drop(&mut self) {
        self.finish();
    }
}

/// What a run request's message says about who caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// The app's own timer (an automatic rerun).
    Automatic,
    /// Only a person sends it (without the page script, it counts).
    Person,
    /// It does not say: the page script decides.
    Unclear,
}

impl Asked {
    fn of(automatic: bool) -> Self {
        if automatic {
            Self::Automatic
        } else {
            Self::Person
        }
    }
}
