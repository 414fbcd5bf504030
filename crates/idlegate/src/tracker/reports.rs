//! What a page's script reports about its tab, and what it is told back.
//!
//! The script in each page chooses a random token and names it when it opens the app's
//! session socket, so its reports reach the right tab session. Only the login that opened a
//! tab may report on it. A report says when the person's last input happened (its age, so the
//! server's clock decides, and an end comes on time after the last input however late the
//! report travels), which messages the page sent the app right after a person's input
//! ([`super::attribution`]), and visibility changes; the answer is the tab's deadline as the
//! server sees it, so the page's warning follows the server and not its own guess. Unknown,
//! foreign and ended tokens get nothing but that fact.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::refusals::RefusedLimit;
use super::tab::ActivityRule;
use super::{lock, policy, EndReason, RunCause, Tab, Tracker};
use crate::lifecycle::Event;
use crate::store::{EndedId, LoginSession};

/// At most this many sends are taken from one report.
pub const MAX_SENDS_PER_REPORT: usize = 8;

/// What the page says changed, besides input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportEvent {
    /// Nothing changed; the page reports input or only asks for its deadline.
    None,
    /// The page went to the background.
    Hidden,
    /// The page came to the front again. Not activity by itself.
    Visible,
    /// The page shows the warning before the end.
    Warned,
    /// The person chose to keep working in the warning (the click is input too).
    KeptWorking,
}

/// One report from a page's script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub event: ReportEvent,
    /// How long ago the person's latest input happened (pointer, keys, wheel, touch, while
    /// the page was visible), if there was input since the last report.
    pub input_age: Option<Duration>,
    /// How long ago the page sent the app a message right after a person's input, one age
    /// per such message (at most [`MAX_SENDS_PER_REPORT`] are used).
    pub human_sends: Vec<Duration>,
}

impl Report {
    /// A report that only asks for the tab's state.
    pub fn check() -> Self {
        Self {
            event: ReportEvent::None,
            input_age: None,
            human_sends: Vec::new(),
        }
    }

    /// A report of input `age` ago and nothing else.
    pub fn input(age: Duration) -> Self {
        Self {
            input_age: Some(age),
            ..Self::check()
        }
    }

    fn changes_anything(&self) -> bool {
        self.event != ReportEvent::None || self.input_age.is_some() || !self.human_sends.is_empty()
    }
}

/// What the page is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TabStatus {
    /// The tab is open.
    Open {
        /// Time until it ends unless a person does something; `None` when nothing would end
        /// it now (no limits).
        ends_in: Option<Duration>,
        /// What would end it.
        reason: Option<EndReason>,
        /// Whether activity can postpone that end.
        extendable: bool,
        /// Whether the server believes the page is hidden.
        hidden: bool,
        /// Whether a run the person is waiting for (or an upload) holds the idle limit off:
        /// the deadline will change when it finishes.
        busy: bool,
    },
    /// The tab ended, for this reason.
    Ended(EndReason),
    /// No tab of this login has this token (never had, or ended too long ago).
    Unknown,
    /// The page was refused a new tab over this limit (lately).
    Refused(RefusedLimit),
}

impl Tracker {
    /// Applies a page's report for the tab with the page token `client`, sent under `login`,
    /// and answers with the tab's state after it. Reports on another login's tab are treated
    /// as unknown and change nothing; past a per-tab rate, reports are answered but change
    /// nothing either.
    pub fn report(
        &self,
        client: &str,
        login: Option<&Arc<LoginSession>>,
        report: &Report,
    ) -> TabStatus {
        let tab = {
            let registry = self.registry();
            let found = registry
                .by_client
                .get(client)
                .and_then(|id| registry.tabs.get(id))
                .cloned();
            match found {
                Some(tab) if tab.belongs_to(login) => tab,
                Some(_) => return TabStatus::Unknown,
                None => {
                    drop(registry);
                    let stores = &self.shared.stores;
                    let ended = stores
                        .ended
                        .find(EndedId::PageToken(client), stores.clock.now_ms());
                    if let Some(notice) = ended {
                        return TabStatus::Ended(notice.reason);
                    }
                    let refused = lock(&self.shared.refusals).find(client, Instant::now());
                    return refused.map_or(TabStatus::Unknown, TabStatus::Refused);
                }
            }
        };
        let now = Instant::now();
        lock(&tab.inner).script_reported = true;
        // Input and the page's own news (visibility, warnings) have separate allowances, so
        // a page switched back and forth quickly cannot crowd out a person's "Keep working".
        let page_news = matches!(
            report.event,
            ReportEvent::Hidden | ReportEvent::Visible | ReportEvent::Warned
        ) && report.input_age.is_none()
            && report.human_sends.is_empty();
        if report.changes_anything() && self.shared.reports.check_key(&(tab.id, page_news)).is_ok()
        {
            self.apply(&tab, report, now);
        }
        self.status(&tab, now)
    }

    fn apply(&self, tab: &Tab, report: &Report, now: Instant) {
        if let Some(age) = report.input_age {
            // Input cannot be in the future, nor before the tab opened.
            let at = now
                .checked_sub(age)
                .unwrap_or(tab.opened_at)
                .max(tab.opened_at);
            self.touch_at(tab, at, ActivityRule::Input);
            if report.event != ReportEvent::Hidden && lock(&tab.inner).hidden_since.take().is_some()
            {
                self.publish(|| Event::Hidden {
                    tab: tab.id,
                    hidden: false,
                });
            }
        }
        let mut inner = lock(&tab.inner);
        let mut now_busy = false;
        for age in report.human_sends.iter().take(MAX_SENDS_PER_REPORT) {
            let at = now.checked_sub(*age).unwrap_or(now);
            if let Some(request) = inner.attribution.human_send(at, now) {
                now_busy |= inner.attribute(request);
            }
        }
        let tab_id = tab.id;
        if now_busy {
            // The run in progress turned out to be a person's: the tab is busy from now.
            drop(inner);
            self.publish(|| Event::Busy {
                tab: tab_id,
                busy: true,
            });
            self.reschedule(tab_id);
            inner = lock(&tab.inner);
            // The run may have finished meanwhile, its end told before this start: the last
            // word must be that the tab is not busy.
            if inner.running.is_none() {
                drop(inner);
                self.publish(|| Event::Busy {
                    tab: tab_id,
                    busy: false,
                });
                inner = lock(&tab.inner);
            }
        }
        match report.event {
            ReportEvent::Hidden => {
                let newly_hidden = inner.hidden_since.is_none();
                inner.hidden_since.get_or_insert(now);
                drop(inner);
                // The hidden limit may be shorter: the deadline can move closer.
                if newly_hidden {
                    self.publish(|| Event::Hidden {
                        tab: tab_id,
                        hidden: true,
                    });
                    self.reschedule(tab_id);
                }
            }
            ReportEvent::Visible => {
                if inner.hidden_since.take().is_some() {
                    drop(inner);
                    self.publish(|| Event::Hidden {
                        tab: tab_id,
                        hidden: false,
                    });
                }
            }
            ReportEvent::Warned => {
                drop(inner);
                self.publish(|| Event::Warned { tab: tab_id });
            }
            ReportEvent::KeptWorking => {
                drop(inner);
                self.publish(|| Event::KeptWorking { tab: tab_id });
            }
            ReportEvent::None => {}
        }
    }

    fn status(&self, tab: &Tab, now: Instant) -> TabStatus {
        if let Some(reason) = lock(&tab.inner).ended {
            return TabStatus::Ended(reason);
        }
        let policy = self.policy();
        let state = self.state_of(tab, &policy);
        let deadline = policy::deadline(&state, &policy);
        TabStatus::Open {
            ends_in: deadline.map(|d| d.at.saturating_duration_since(now)),
            reason: deadline.map(|d| d.reason),
            extendable: deadline.is_some_and(|d| d.reason != EndReason::MaxLifetime),
            hidden: state.hidden_since.is_some(),
            busy: state.uploading || state.running.is_some_and(RunCause::is_awaited),
        }
    }
}
