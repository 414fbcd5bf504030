//! The deadline policy: when a tab session ends unless a person does something.
//!
//! A pure function of a tab's state, the configured [`TabPolicy`] and nothing else: no clock
//! reads, no locks, no I/O. The reaper calls it whenever a deadline may have moved.

use tokio::time::Instant;

use crate::config::TabPolicy;
pub use crate::lifecycle::EndReason;

/// What made the page ask the app for a script run, as far as idleness is concerned. Ordered
/// from "surely a machine" to "surely a person": requests merged into one run keep the
/// highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RunCause {
    /// A timer in the page the app itself marked as automatic (an auto-refreshing fragment).
    /// Never keeps a tab alive.
    Timer,
    /// The page asked, and nothing shows a person did: under the input rule, no person's
    /// input came right before the request (a component on a timer, a lazy load, a script in
    /// the page). Treated like [`RunCause::Timer`]; a late report of a person's input can
    /// still make it [`RunCause::Person`].
    Unattributed,
    /// The page's own rerun after it reconnected (it repeats a run the connection cut). Not
    /// activity, but the person may be waiting for its result, so it suspends the idle limit
    /// while it runs, up to `tabs.busy_timeout`.
    Reconnect,
    /// The first run of a page load. The person (if a person loaded the page: a script may
    /// reload it too) waits for it, so it suspends the idle limit while it runs, and the
    /// tab's idle time counts from its end; but it is no evidence of a person for the login.
    PageLoad,
    /// A person: a page load, a widget, a button. Suspends the idle limit while it runs (up
    /// to `tabs.busy_timeout`), and the idle time counts from the end of the run.
    Person,
}

impl RunCause {
    /// Whether a run of this cause holds the idle limit off while it runs.
    pub fn is_awaited(self) -> bool {
        matches!(self, Self::Person | Self::PageLoad | Self::Reconnect)
    }
}

/// What the policy needs to know about one tab session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TabState {
    pub opened_at: Instant,
    pub last_activity: Instant,
    /// The script run in progress, if any, and its cause.
    pub running: Option<RunCause>,
    /// Whether the page is sending the app a file (an upload body is streaming).
    pub uploading: bool,
    /// Since when the browser has been disconnected, if it is.
    pub disconnected_since: Option<Instant>,
    /// Since when the page has been hidden (in the background), if its script said so.
    pub hidden_since: Option<Instant>,
    /// When the login the tab belongs to ends unless its person does something (people
    /// sign in, and the login has a limit).
    pub login_deadline: Option<Instant>,
}

/// The instant a tab session ends unless something changes, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub at: Instant,
    pub reason: EndReason,
}

/// Computes the tab's deadline. `None` means nothing would end it now (all limits off, or
/// only the idle limit is on and a person's run is in progress).
pub fn deadline(state: &TabState, policy: &TabPolicy) -> Option<Deadline> {
    // Candidates in priority order: on a tie the first one is reported.
    let lifetime = policy.max_lifetime.map(|limit| Deadline {
        at: state.opened_at + limit,
        reason: EndReason::MaxLifetime,
    });
    let closed = state.disconnected_since.map(|since| Deadline {
        at: since + policy.reconnect_grace,
        reason: EndReason::Closed,
    });
    // Busy is not idle: a run the person waits for, or an upload, holds the idle limit off,
    // but only up to `busy_timeout` after the last activity (a run nobody waits for, such as
    // a live loop, does not hold a tab forever).
    let suspended = !policy.end_while_running
        && (state.running.is_some_and(RunCause::is_awaited) || state.uploading);
    let idle = if suspended {
        policy.busy_timeout.map(|limit| Deadline {
            at: state.last_activity + limit,
            reason: EndReason::BusyIdle,
        })
    } else {
        policy.idle_timeout.map(|limit| Deadline {
            at: state.last_activity + limit,
            reason: EndReason::Idle,
        })
    };
    // A hidden tab's time counts from when it was hidden or last used, whichever is later.
    let hidden = state
        .hidden_since
        .zip(policy.hidden_timeout)
        .filter(|_| !suspended)
        .map(|(since, limit)| Deadline {
            at: since.max(state.last_activity) + limit,
            reason: EndReason::HiddenIdle,
        });
    // Signing out is not suspended by a run: it is about the person, not this tab.
    let login = state.login_deadline.map(|at| Deadline {
        at,
        reason: EndReason::LoginExpired,
    });
    [lifetime, closed, idle, hidden, login]
        .into_iter()
        .flatten()
        .fold(None, |best: Option<Deadline>, d| match best {
            Some(b) if b.at <= d.at => Some(b),
            _ => Some(d),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn policy() -> TabPolicy {
        TabPolicy::for_tests(60, 3600)
    }

    fn state(t0: Instant) -> TabState {
        TabState {
            opened_at: t0,
            last_activity: t0,
            running: None,
            uploading: false,
            disconnected_since: None,
            hidden_since: None,
            login_deadline: None,
        }
    }

    #[test]
    fn idle_deadline_counts_from_last_activity() {
        let t0 = Instant::now();
        let mut s = state(t0);
        s.last_activity = t0 + Duration::from_secs(30);
        let d = deadline(&s, &policy()).unwrap();
        assert_eq!(d.at, t0 + Duration::from_secs(90));
        assert_eq!(d.reason, EndReason::Idle);
    }

    #[test]
    fn max_lifetime_wins_when_earlier_than_idle() {
        let t0 = Instant::now();
        let mut s = state(t0);
        s.last_activity = t0 + Duration::from_secs(3590);
        let d = deadline(&s, &policy()).unwrap();
        assert_eq!(d.reason, EndReason::MaxLifetime);
        assert_eq!(d.at, t0 + Duration::from_secs(3600));
    }

    #[test]
    fn persons_run_suspends_idle_but_not_lifetime() {
        let t0 = Instant::now();
        let mut s = state(t0);
        s.running = Some(RunCause::Person);
        let d = deadline(&s, &policy()).unwrap();
        assert_eq!(d.reason, EndReason::MaxLifetime);
        s.running = Some(RunCause::Reconnect);
        assert_eq!(
            deadline(&s, &policy()).unwrap().reason,
            EndReason::MaxLifetime
        );
    }

    #[test]
    fn a_run_or_upload_holds_idle_off_only_until_the_busy_limit() {
        let t0 = Instant::now();
        let p = TabPolicy {
            busy_timeout: Some(Duration::from_secs(600)),
            ..policy()
        };
        let mut s = state(t0);
        s.last_activity = t0 + Duration::from_secs(10);
        s.running = Some(RunCause::Person);
        let d = deadline(&s, &p).unwrap();
        assert_eq!(d.reason, EndReason::BusyIdle);
        assert_eq!(d.at, t0 + Duration::from_secs(610));
        s.running = None;
        s.uploading = true;
        assert_eq!(deadline(&s, &p).unwrap().reason, EndReason::BusyIdle);
        // Nobody awaits a run nobody caused.
        s.uploading = false;
        s.running = Some(RunCause::Unattributed);
        assert_eq!(deadline(&s, &p).unwrap().reason, EndReason::Idle);
    }

    #[test]
    fn timer_run_does_not_suspend_idle() {
        let t0 = Instant::now();
        let mut s = state(t0);
        s.running = Some(RunCause::Timer);
        assert_eq!(deadline(&s, &policy()).unwrap().reason, EndReason::Idle);
    }

    #[test]
    fn end_while_running_keeps_idle_active_during_runs() {
        let t0 = Instant::now();
        let mut s = state(t0);
        s.running = Some(RunCause::Person);
        let p = TabPolicy {
            end_while_running: true,
            ..policy()
        };
        assert_eq!(deadline(&s, &p).unwrap().reason, EndReason::Idle);
    }

    #[test]
    fn disconnected_tab_ends_after_grace() {
        let t0 = Instant::now();
        let mut s = state(t0);
        s.disconnected_since = Some(t0 + Duration::from_secs(10));
        let d = deadline(&s, &policy()).unwrap();
        assert_eq!(d.reason, EndReason::Closed);
        assert_eq!(d.at, t0 + Duration::from_secs(25));
    }

    #[test]
    fn no_limits_means_no_deadline() {
        let t0 = Instant::now();
        let p = TabPolicy {
            idle_timeout: None,
            max_lifetime: None,
            ..policy()
        };
        assert_eq!(deadline(&state(t0), &p), None);
    }

    #[test]
    fn ties_report_the_lifetime_first() {
        let t0 = Instant::now();
        let p = TabPolicy {
            idle_timeout: Some(Duration::from_secs(60)),
            max_lifetime: Some(Duration::from_secs(60)),
            ..policy()
        };
        assert_eq!(
            deadline(&state(t0), &p).unwrap().reason,
            EndReason::MaxLifetime
        );
    }

    #[test]
    fn hidden_tab_ends_after_the_hidden_limit_counted_from_when_it_was_hidden() {
        let t0 = Instant::now();
        let p = TabPolicy {
            hidden_timeout: Some(Duration::from_secs(20)),
            ..policy()
        };
        let mut s = state(t0);
        s.hidden_since = Some(t0 + Duration::from_secs(5));
        let d = deadline(&s, &p).unwrap();
        assert_eq!(d.reason, EndReason::HiddenIdle);
        assert_eq!(d.at, t0 + Duration::from_secs(25));
        // Activity after it was hidden (it was not, after all) counts from the activity.
        s.last_activity = t0 + Duration::from_secs(10);
        assert_eq!(deadline(&s, &p).unwrap().at, t0 + Duration::from_secs(30));
        // A visible tab only has the idle limit.
        s.hidden_since = None;
        assert_eq!(deadline(&s, &p).unwrap().reason, EndReason::Idle);
    }

    #[test]
    fn hidden_limit_equal_to_idle_limit_reports_idle() {
        let t0 = Instant::now();
        let p = TabPolicy {
            hidden_timeout: Some(Duration::from_secs(60)),
            ..policy()
        };
        let mut s = state(t0);
        s.hidden_since = Some(t0);
        assert_eq!(deadline(&s, &p).unwrap().reason, EndReason::Idle);
    }

    #[test]
    fn persons_run_suspends_the_hidden_limit_too() {
        let t0 = Instant::now();
        let p = TabPolicy {
            hidden_timeout: Some(Duration::from_secs(5)),
            ..policy()
        };
        let mut s = state(t0);
        s.hidden_since = Some(t0);
        s.running = Some(RunCause::Person);
        assert_eq!(deadline(&s, &p).unwrap().reason, EndReason::MaxLifetime);
    }

    #[tokio::test(start_paused = true)]
    async fn a_login_ends_its_tabs_after_its_own_idle_time_or_lifetime() {
        use crate::store::{Identity, LoginLimits, LoginSession, WallClock};
        let t0 = Instant::now();
        let clock = WallClock::now();
        let p = TabPolicy {
            login_idle_timeout: Some(Duration::from_secs(30)),
            login_max_lifetime: Some(Duration::from_secs(100)),
            ..policy()
        };
        let limits = LoginLimits {
            idle_timeout: p.login_idle_timeout,
            max_lifetime: p.login_max_lifetime,
        };
        let identity = Identity {
            user: "alice".into(),
            name: None,
            email: None,
            groups: vec![],
        };
        let login = LoginSession::restore("id".into(), identity, clock.ms(t0), clock.ms(t0));
        let login_deadline = |last: Duration| {
            login.touch(clock.ms(t0 + last));
            login.deadline(&limits).map(|at| clock.instant(at))
        };
        let mut s = state(t0);
        s.login_deadline = login_deadline(Duration::from_secs(5));
        let d = deadline(&s, &p).unwrap();
        assert_eq!(d.reason, EndReason::LoginExpired);
        assert_eq!(d.at, t0 + Duration::from_secs(35));
        // Activity in another tab of the login moves it, up to the login's lifetime.
        s.login_deadline = login_deadline(Duration::from_secs(90));
        assert_eq!(deadline(&s, &p).unwrap().at, t0 + Duration::from_secs(60));
        s.last_activity = t0 + Duration::from_secs(90);
        assert_eq!(deadline(&s, &p).unwrap().at, t0 + Duration::from_secs(100));
        // A run does not hold a login open.
        s.running = Some(RunCause::Person);
        assert_eq!(deadline(&s, &p).unwrap().reason, EndReason::LoginExpired);
    }
}
