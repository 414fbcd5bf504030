//! Making room: which open tabs end first when a new tab is over a cap (`tabs.max_per_user`,
//! `tabs.max_total`) or the app's memory is over its high water mark (`capacity.memory_high`).
//!
//! The order is one rule, [`order`]: a tab whose page is gone (its connection dropped, it
//! waits out `tabs.reconnect_grace`) comes first; a tab a person waits on (a run or an
//! upload) comes after every idle one; a tab a person used within [`RECENTLY_USED`] comes
//! after every other one; among the rest, the tab that went longest without a person's
//! activity first. So a full server ends the tab nobody has touched for an hour, not the one
//! someone is reading; and pages that connect and leave at once (a script filling the cap)
//! make room for the next tab instead of holding the server full for the grace period.
//!
//! Even with `tabs.on_limit = "refuse"`, a tab whose page is gone makes room before a new tab
//! is refused. While the app's memory is over its high water mark, new tabs are refused
//! ([`Tracker::set_memory_full`]): each would add to it.

use std::cmp::Reverse;
use std::time::Duration;

use tokio::time::Instant;

use super::listing::{TabActivity, TabView};
use super::{Registry, TabId, Tracker};
use crate::config::{OnLimit, TabPolicy};
use crate::store::Replica;

/// A tab a person used within this long is ended to make room only when no other is left.
pub const RECENTLY_USED: Duration = Duration::from_secs(60);

/// Sorts `tabs` into the order they end in to make room: `EndOldest` by age (oldest first),
/// otherwise least recently active first (see the module docs). Ties go to the older tab.
pub fn order(tabs: &mut [TabView], on_limit: OnLimit) {
    let present = |view: &TabView| view.activity != TabActivity::Disconnected;
    match on_limit {
        OnLimit::EndOldest => tabs.sort_by_key(|view| (present(view), Reverse(view.age), view.tab)),
        OnLimit::EndLeastRecentlyActive | OnLimit::Refuse => tabs.sort_by_key(|view| {
            (
                present(view),
                view.activity == TabActivity::Busy,
                view.human_idle < RECENTLY_USED,
                Reverse(view.human_idle),
                view.tab,
            )
        }),
    }
}

impl Tracker {
    /// The open tabs in the order they end in to make room (see [`order`]), those of `user`
    /// only when given, by `on_limit`'s rule.
    pub fn eviction_order(&self, user: Option<&str>, on_limit: OnLimit) -> Vec<TabView> {
        let registry = self.registry();
        self.eviction_order_in(&registry, user, on_limit)
    }

    pub(super) fn eviction_order_in(
        &self,
        registry: &Registry,
        user: Option<&str>,
        on_limit: OnLimit,
    ) -> Vec<TabView> {
        let now = Instant::now();
        let policy = self.policy();
        let mut views: Vec<TabView> = registry
            .tabs
            .values()
            .filter(|tab| {
                user.is_none_or(|user| {
                    tab.login
                        .as_ref()
                        .is_some_and(|login| login.identity.user == user)
                })
            })
            .map(|tab| self.view_of(tab, now, &policy))
            .collect();
        order(&mut views, on_limit);
        views
    }

    /// The tab to end so a new tab fits under `tabs.max_total`, when the server is at it:
    /// `Ok(None)` when there is room, `Err(())` when the new tab must be refused (the server
    /// is full and refuses, or the app's memory is over its high water mark).
    pub(super) fn over_total_cap(
        &self,
        registry: &Registry,
        policy: &TabPolicy,
    ) -> Result<Option<(Replica, TabId)>, ()> {
        if self
            .shared
            .memory_full
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(());
        }
        // Every replica's tabs count (the directory), and this one's too should the
        // directory lag behind.
        let open = self.shared.stores.tabs.total().max(registry.tabs.len());
        if policy.max_total.is_none_or(|max| open < max) {
            return Ok(None);
        }
        let here = self.shared.stores.replica;
        let first = self
            .eviction_order_in(registry, None, policy.on_limit)
            .into_iter()
            .next();
        match (policy.on_limit, first) {
            (OnLimit::Refuse, Some(gone)) if gone.activity == TabActivity::Disconnected => {
                Ok(Some((here, gone.tab)))
            }
            (OnLimit::Refuse, _) => Err(()),
            // This replica's tabs in the eviction order; when it holds none, the oldest
            // elsewhere.
            (_, Some(first)) => Ok(Some((here, first.tab))),
            (_, None) => Ok(self.oldest_of(None)),
        }
    }

    /// Whether the app's memory is over its high water mark (set by the memory pressure
    /// monitor): new tabs are refused meanwhile.
    pub fn set_memory_full(&self, full: bool) {
        self.shared
            .memory_full
            .store(full, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::ActivityRule;

    fn view(tab: TabId, age_s: u64, idle_s: u64, activity: TabActivity) -> TabView {
        TabView {
            tab,
            user: None,
            age: Duration::from_secs(age_s),
            human_idle: Duration::from_secs(idle_s),
            deadline: None,
            remaining: None,
            activity,
            script: true,
            rule: ActivityRule::Input,
        }
    }

    fn ids(tabs: &[TabView]) -> Vec<TabId> {
        tabs.iter().map(|v| v.tab).collect()
    }

    #[test]
    fn idle_tabs_go_first_longest_idle_first_then_recent_then_busy() {
        let mut tabs = vec![
            view(1, 3600, 3000, TabActivity::Busy),
            view(2, 600, 30, TabActivity::Active),
            view(3, 900, 400, TabActivity::Hidden),
            view(4, 100, 90, TabActivity::Warned),
            view(5, 5000, 10, TabActivity::Busy),
            view(6, 700, 400, TabActivity::Disconnected),
            view(7, 50, 5, TabActivity::Active),
            view(8, 2, 1, TabActivity::Disconnected),
        ];
        order(&mut tabs, OnLimit::EndLeastRecentlyActive);
        // Pages that are gone first (even one that left a second ago), then idle the longest
        // (ties to the older tab), then those used in the last minute, then busy ones: a busy
        // tab idle for 50 minutes still comes after a tab used 5 seconds ago.
        assert_eq!(ids(&tabs), vec![6, 8, 3, 4, 2, 7, 1, 5]);
    }

    #[test]
    fn end_oldest_goes_by_age() {
        let mut tabs = vec![
            view(1, 10, 5, TabActivity::Active),
            view(2, 900, 1, TabActivity::Busy),
            view(3, 90, 80, TabActivity::Active),
        ];
        order(&mut tabs, OnLimit::EndOldest);
        assert_eq!(ids(&tabs), vec![2, 3, 1]);
    }
}
