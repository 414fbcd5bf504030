//! What a page's script reports about its tab, and what it is told back.
//!
//! The script in each page chooses a random token and tags its session socket with it, so its
//! reports reach the right tab session. Reports are input activity and visibility changes;
//! the answer is the tab's deadline as the server sees it, so the page's warning follows the
//! server and not its own guess. Unknown and ended tokens get nothing but that fact.

use std::time::Duration;

use tokio::time::Instant;

use super::{lock, policy, EndReason, RunCause, Tracker};

/// What the page says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TabReport {
    /// A person used the page (pointer, keys, wheel, touch, focus) while it was visible.
    Activity,
    /// The page went to the background.
    Hidden,
    /// The page came to the front again. Not activity by itself.
    Visible,
    /// Nothing happened; the page only asks for its deadline.
    Check,
}

/// What the page is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TabStatus {
    /// The tab is open.
    Open {
        /// Time until it ends unless a person does something; `None` when nothing would end
        /// it now (a run the person is waiting for, or no limits).
        ends_in: Option<Duration>,
        /// What would end it.
        reason: Option<EndReason>,
        /// Whether activity can postpone that end.
        extendable: bool,
        /// Whether the server believes the page is hidden.
        hidden: bool,
        /// Whether a run the person is waiting for holds the idle limit off: the deadline
        /// will change when it finishes.
        busy: bool,
    },
    /// The tab ended, for this reason.
    Ended(EndReason),
    /// No tab has this token (never had, or ended too long ago).
    Unknown,
}

impl Tracker {
    /// Applies a page's report for the tab with the page token `client`, and answers with the
    /// tab's state after it.
    pub fn report(&self, client: &str, report: TabReport) -> TabStatus {
        let tab = {
            let registry = self.registry();
            let found = registry
                .by_client
                .get(client)
                .and_then(|id| registry.tabs.get(id))
                .cloned();
            match found {
                Some(tab) => tab,
                None => {
                    return match registry.ended_clients.get(client) {
                        Some(reason) => TabStatus::Ended(reason),
                        None => TabStatus::Unknown,
                    }
                }
            }
        };
        let now = Instant::now();
        match report {
            TabReport::Activity => {
                self.touch(&tab);
                lock(&tab.inner).hidden_since = None;
            }
            TabReport::Hidden => {
                let newly_hidden = {
                    let mut inner = lock(&tab.inner);
                    let newly = inner.hidden_since.is_none();
                    inner.hidden_since.get_or_insert(now);
                    newly
                };
                // The hidden limit may be shorter: the deadline can move closer.
                if newly_hidden {
                    self.reschedule(tab.id);
                }
            }
            TabReport::Visible => lock(&tab.inner).hidden_since = None,
            TabReport::Check => {}
        }
        if let Some(reason) = lock(&tab.inner).ended {
            return TabStatus::Ended(reason);
        }
        let state = self.state_of(&tab);
        let deadline = policy::deadline(&state, &self.shared.policy);
        TabStatus::Open {
            ends_in: deadline.map(|d| d.at.saturating_duration_since(now)),
            reason: deadline.map(|d| d.reason),
            extendable: deadline.is_some_and(|d| d.reason != EndReason::MaxLifetime),
            hidden: state.hidden_since.is_some(),
            busy: matches!(state.running, Some(RunCause::Person | RunCause::Reconnect)),
        }
    }
}
