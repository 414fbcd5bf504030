//! One tab session's state: what the tracker knows about the tab, its runs, its uploads and
//! the evidence of a person in it.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::time::Instant;

use super::attribution::Attribution;
use super::{EndNotice, EndReason, Ending, Release, RunCause, TabId};
pub use crate::lifecycle::ActivityRule;
use crate::store::LoginSession;

/// Run requests merged into one unit of work (the app restarts a run when asked again while
/// it runs): the highest cause among them, and the range of their request ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Work {
    pub cause: RunCause,
    pub first: u64,
    pub last: u64,
}

impl Work {
    pub fn new(cause: RunCause, id: u64) -> Self {
        Self {
            cause,
            first: id,
            last: id,
        }
    }

    pub fn merge(self, other: Option<Work>) -> Work {
        match other {
            None => self,
            Some(other) => Work {
                cause: self.cause.max(other.cause),
                first: self.first.min(other.first),
                last: self.last.max(other.last),
            },
        }
    }

    pub fn covers(&self, id: u64) -> bool {
        (self.first..=self.last).contains(&id)
    }
}

/// An upload in flight.
#[derive(Debug, Clone, Copy)]
pub(super) struct Upload {
    pub id: u64,
    pub started: Instant,
    /// Whether a person started it (as far as known when it started).
    pub by_person: bool,
}

/// One tab session.
pub struct Tab {
    pub(super) id: TabId,
    pub(super) opened_at: Instant,
    /// The login the tab was opened under, when people sign in.
    pub(super) login: Option<Arc<LoginSession>>,
    /// Milliseconds since the tracker's epoch; written on every activity without a lock.
    pub(super) last_activity_ms: AtomicU64,
    pub(super) inner: Mutex<TabInner>,
}

impl Tab {
    /// Whether a request made under `login` may use this tab (report on it, reconnect to
    /// it): only the login that opened it, or anyone when nobody signs in.
    pub(super) fn belongs_to(&self, login: Option<&Arc<LoginSession>>) -> bool {
        match (&self.login, login) {
            (None, _) => true,
            (Some(own), Some(other)) => Arc::ptr_eq(own, other),
            (Some(_), None) => false,
        }
    }
}

pub(super) struct TabInner {
    pub app_session: Option<String>,
    /// The page script's token for this tab, if the page has idlegate's script.
    pub client: Option<String>,
    /// The page the tab shows (path and query), and whether it is in an iframe.
    pub page: Option<String>,
    pub embedded: bool,
    /// Whether the page script has reported: from then on the input rule decides.
    pub script_reported: bool,
    pub requested: Option<Work>,
    pub running: Option<Work>,
    pub next_request: u64,
    pub attribution: Attribution,
    pub uploads: Vec<Upload>,
    pub next_upload: u64,
    /// The app set timers that make the page ask for runs by itself.
    pub timers: bool,
    /// The last run the page asked for was a fragment's.
    pub last_request_fragment: bool,
    /// A run was in progress (or asked for) when the connection dropped.
    pub interrupted: bool,
    /// After a reconnect that the page answers with its own rerun: until when that rerun is
    /// expected.
    pub expect_page_rerun: Option<Instant>,
    pub disconnected_since: Option<Instant>,
    pub hidden_since: Option<Instant>,
    pub connection: Option<(u64, watch::Sender<Option<Ending>>)>,
    pub generation: u64,
    pub ended: Option<EndReason>,
    pub releases: Vec<Release>,
}

impl TabInner {
    pub fn new(
        app_session: Option<String>,
        client: Option<String>,
        connection: watch::Sender<Option<Ending>>,
    ) -> Self {
        Self {
            app_session,
            client,
            page: None,
            embedded: false,
            script_reported: false,
            requested: None,
            running: None,
            next_request: 0,
            attribution: Attribution::default(),
            uploads: Vec::new(),
            next_upload: 0,
            timers: false,
            last_request_fragment: false,
            interrupted: false,
            expect_page_rerun: None,
            disconnected_since: None,
            hidden_since: None,
            connection: Some((1, connection)),
            generation: 1,
            ended: None,
            releases: Vec::new(),
        }
    }

    /// How to tell the page that the tab ended for `reason`.
    pub fn notice(&self, reason: EndReason) -> EndNotice {
        EndNotice {
            reason,
            page: self.page.clone(),
            embedded: self.embedded,
            sent_away: 0,
        }
    }

    pub fn rule(&self) -> ActivityRule {
        if self.script_reported {
            ActivityRule::Input
        } else {
            ActivityRule::Messages
        }
    }

    /// Whether a person's upload is streaming: uploads nobody can be shown to have started
    /// (a script in the page) do not hold the tab.
    pub fn person_uploading(&self) -> bool {
        self.uploads
            .iter()
            .any(|upload| upload.by_person || self.attribution.started_by_person(upload.started))
    }

    /// The run in progress, for the policy.
    pub fn running_cause(&self) -> Option<RunCause> {
        self.running.map(|work| work.cause)
    }

    /// Makes a request the page attributed late (its report came after the request) a
    /// person's, if it is still pending or running. Returns whether the run in progress
    /// became one a person waits for (the tab is busy from now).
    pub fn attribute(&mut self, request: u64) -> bool {
        let was_awaited = self.running.is_some_and(|work| work.cause.is_awaited());
        for work in [&mut self.requested, &mut self.running]
            .into_iter()
            .flatten()
        {
            if work.covers(request) {
                work.cause = RunCause::Person;
            }
        }
        !was_awaited && self.running.is_some_and(|work| work.cause.is_awaited())
    }
}
