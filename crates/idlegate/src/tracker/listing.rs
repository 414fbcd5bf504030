//! What operators see of the open tabs: one [`TabView`] per tab, read from the tab's state and
//! the deadline policy at one instant (for the admin API, the admin page and the metrics).

use std::time::Duration;

use tokio::time::Instant;

use super::{lock, policy, ActivityRule, Deadline, Tab, TabId, Tracker};
use crate::config::TabPolicy;

/// The state an operator filters tabs by, in this order of precedence: a tab that is both
/// disconnected and hidden is `Disconnected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TabActivity {
    /// The browser's connection dropped; the page may still come back.
    Disconnected,
    /// A run the person waits for (asked for or in progress), or an upload, holds the idle
    /// limit off.
    Busy,
    /// The page is in the background.
    Hidden,
    /// The page shows the warning before the end (its deadline is within
    /// `tabs.warn_before` and its script reports).
    Warned,
    /// None of the above.
    Active,
}

impl TabActivity {
    /// All states, for filters and metrics.
    pub const ALL: [TabActivity; 5] = [
        Self::Active,
        Self::Warned,
        Self::Hidden,
        Self::Busy,
        Self::Disconnected,
    ];

    /// The name in the API, the metrics and filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disconnected => "disconnected",
            Self::Busy => "busy",
            Self::Hidden => "hidden",
            Self::Warned => "warned",
            Self::Active => "active",
        }
    }
}

/// One open tab as operators see it, at the instant it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TabView {
    pub tab: TabId,
    /// The signed-in user's key, when people sign in.
    pub user: Option<String>,
    /// How long the tab has been open.
    pub age: Duration,
    /// How long since a person was last active in it.
    pub human_idle: Duration,
    /// When it ends unless a person does something, and why; `None` when nothing would end
    /// it now.
    pub deadline: Option<Deadline>,
    /// How long until that deadline (zero when it is due).
    pub remaining: Option<Duration>,
    pub activity: TabActivity,
    /// Whether the page script reports (the input rule judges the tab).
    pub script: bool,
    pub rule: ActivityRule,
}

impl Tracker {
    /// Every open tab, oldest first, as of now.
    pub fn views(&self) -> Vec<TabView> {
        let now = Instant::now();
        let mut tabs: Vec<_> = self.registry().tabs.values().cloned().collect();
        tabs.sort_unstable_by_key(|tab| tab.id);
        let policy = self.policy();
        tabs.iter()
            .map(|tab| self.view_of(tab, now, &policy))
            .collect()
    }

    /// One open tab, as of now.
    pub fn view(&self, id: TabId) -> Option<TabView> {
        let tab = self.registry().tabs.get(&id).cloned()?;
        Some(self.view_of(&tab, Instant::now(), &self.policy()))
    }

    /// The tab as of `now`, judged by `policy`.
    pub(super) fn view_of(&self, tab: &Tab, now: Instant, policy: &TabPolicy) -> TabView {
        let state = self.state_of(tab, policy);
        let deadline = policy::deadline(&state, policy);
        let (rule, asked) = {
            let inner = lock(&tab.inner);
            (inner.rule(), inner.requested.map(|work| work.cause))
        };
        // A run a person asked for is waited for from the request on, before the app starts
        // it (a busy app may take a while to).
        let suspended = state.running.is_some_and(policy::RunCause::is_awaited)
            || asked.is_some_and(policy::RunCause::is_awaited)
            || state.uploading;
        let warned = rule == ActivityRule::Input
            && deadline
                .zip(policy.warn_before)
                .is_some_and(|(d, lead)| d.at.saturating_duration_since(now) <= lead);
        let activity = if state.disconnected_since.is_some() {
            TabActivity::Disconnected
        } else if suspended {
            TabActivity::Busy
        } else if state.hidden_since.is_some() {
            TabActivity::Hidden
        } else if warned {
            TabActivity::Warned
        } else {
            TabActivity::Active
        };
        TabView {
            tab: tab.id,
            user: tab.login.as_ref().map(|login| login.identity.user.clone()),
            age: now.saturating_duration_since(state.opened_at),
            human_idle: now.saturating_duration_since(state.last_activity),
            remaining: deadline.map(|d| d.at.saturating_duration_since(now)),
            deadline,
            activity,
            script: rule == ActivityRule::Input,
            rule,
        }
    }
}
