use std::time::Duration;

use tokio::time::{advance, Instant};

use super::*;
use crate::config::OnLimit;

fn policy(idle: u64) -> TabPolicy {
    TabPolicy::for_tests(idle, 3600)
}

/// Lets the reaper task run after the clock moved.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

async fn ending_within(conn: &TabConnection, limit: Duration) -> Option<Ending> {
    tokio::time::timeout(limit, conn.ended()).await.ok()
}

#[tokio::test(start_paused = true)]
async fn idle_tab_ends_at_its_deadline() {
    let tracker = Tracker::start(policy(60));
    let conn = tracker.connect(None, None, None).unwrap();
    advance(Duration::from_secs(59)).await;
    settle().await;
    assert_eq!(tracker.len(), 1);
    let started = Instant::now();
    let ending = ending_within(&conn, Duration::from_secs(5)).await.unwrap();
    assert_eq!(ending.reason, EndReason::Idle);
    assert!(ending.notify_browser);
    assert!(Instant::now() - started <= Duration::from_millis(1005));
    assert_eq!(tracker.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn activity_pushes_the_deadline_without_rearming() {
    let tracker = Tracker::start(policy(60));
    let conn = tracker.connect(None, None, None).unwrap();
    let t0 = Instant::now();
    advance(Duration::from_secs(50)).await;
    conn.signal(Signal::Activity);
    let ending = ending_within(&conn, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(ending.reason, EndReason::Idle);
    let lived = Instant::now() - t0;
    assert!(
        lived >= Duration::from_secs(110) && lived <= Duration::from_secs(111),
        "{lived:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn timer_reruns_do_not_keep_a_tab_alive() {
    let tracker = Tracker::start(policy(10));
    let conn = tracker.connect(None, None, None).unwrap();
    let t0 = Instant::now();
    let ending = loop {
        conn.signal(Signal::RunRequested(RunCause::Timer));
        conn.signal(Signal::Running(true));
        advance(Duration::from_millis(200)).await;
        conn.signal(Signal::Running(false));
        if let Some(e) = ending_within(&conn, Duration::from_millis(800)).await {
            break e;
        }
    };
    assert_eq!(ending.reason, EndReason::Idle);
    assert!(Instant::now() - t0 <= Duration::from_secs(11));
}

#[tokio::test(start_paused = true)]
async fn persons_long_run_is_not_ended_and_idle_restarts_after_it() {
    let tracker = Tracker::start(policy(10));
    let conn = tracker.connect(None, None, None).unwrap();
    conn.signal(Signal::RunRequested(RunCause::Person));
    conn.signal(Signal::Running(true));
    assert!(ending_within(&conn, Duration::from_secs(60))
        .await
        .is_none());
    conn.signal(Signal::Running(false));
    let finished = Instant::now();
    let ending = ending_within(&conn, Duration::from_secs(20)).await.unwrap();
    assert_eq!(ending.reason, EndReason::Idle);
    let after = Instant::now() - finished;
    assert!(
        after >= Duration::from_secs(10) && after <= Duration::from_secs(11),
        "{after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_applies_even_while_running() {
    let mut p = policy(10);
    p.max_lifetime = Some(Duration::from_secs(30));
    let tracker = Tracker::start(p);
    let conn = tracker.connect(None, None, None).unwrap();
    conn.signal(Signal::RunRequested(RunCause::Person));
    conn.signal(Signal::Running(true));
    let ending = ending_within(&conn, Duration::from_secs(31)).await.unwrap();
    assert_eq!(ending.reason, EndReason::MaxLifetime);
}

#[tokio::test(start_paused = true)]
async fn closed_tab_ends_after_grace_and_cannot_be_resumed() {
    let tracker = Tracker::start(policy(600));
    let conn = tracker.connect(None, None, None).unwrap();
    conn.signal(Signal::SessionId("abc".into()));
    conn.closed();
    advance(Duration::from_secs(14)).await;
    settle().await;
    assert_eq!(tracker.len(), 1);
    advance(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(tracker.len(), 0);
    assert_eq!(
        tracker.admit(Some("abc"), None, None),
        Admission::Ended(EndReason::Closed)
    );
    assert_eq!(
        tracker.connect(Some("abc"), None, None).err(),
        Some(Refused::Ended(EndReason::Closed))
    );
    assert_eq!(tracker.admit(Some("other"), None, None), Admission::Allowed);
}

#[tokio::test(start_paused = true)]
async fn reconnect_within_grace_resumes_the_same_tab() {
    let tracker = Tracker::start(policy(600));
    let conn = tracker.connect(None, None, None).unwrap();
    let id = conn.tab_id();
    conn.signal(Signal::SessionId("abc".into()));
    conn.closed();
    advance(Duration::from_secs(10)).await;
    let again = tracker.connect(Some("abc"), None, None).unwrap();
    assert_eq!(again.tab_id(), id);
    advance(Duration::from_secs(30)).await;
    settle().await;
    assert_eq!(tracker.len(), 1);
    assert!(ending_within(&again, Duration::from_millis(10))
        .await
        .is_none());
}

#[tokio::test(start_paused = true)]
async fn reconnect_rerun_is_not_activity_but_page_load_rerun_is() {
    let tracker = Tracker::start(policy(60));
    let first = tracker.connect(None, None, None).unwrap();
    let id = first.tab_id();
    first.signal(Signal::SessionId("s1".into()));
    advance(Duration::from_secs(30)).await;
    first.signal(Signal::RunRequested(RunCause::Reconnect));
    let d = tracker.deadline_of(id).unwrap();
    assert_eq!(
        d.at,
        Instant::now() + Duration::from_secs(60),
        "page load counts"
    );
    first.closed();
    let again = tracker.connect(Some("s1"), None, None).unwrap();
    advance(Duration::from_secs(20)).await;
    again.signal(Signal::RunRequested(RunCause::Reconnect));
    let d2 = tracker.deadline_of(id).unwrap();
    assert_eq!(d2.at, d.at, "a reconnect's rerun is not activity");
}

#[tokio::test(start_paused = true)]
async fn takeover_tells_the_old_connection_to_close_quietly() {
    let tracker = Tracker::start(policy(600));
    let old = tracker.connect(None, None, None).unwrap();
    old.signal(Signal::SessionId("abc".into()));
    let new = tracker.connect(Some("abc"), None, None).unwrap();
    let ending = ending_within(&old, Duration::from_millis(10))
        .await
        .unwrap();
    assert!(!ending.notify_browser);
    drop(old);
    settle().await;
    // The old connection closing must not mark the tab as disconnected.
    advance(Duration::from_secs(60)).await;
    settle().await;
    assert_eq!(tracker.len(), 1);
    drop(new);
}

#[tokio::test(start_paused = true)]
async fn end_all_ends_every_tab() {
    let tracker = Tracker::start(policy(600));
    let a = tracker.connect(None, None, None).unwrap();
    let _b = tracker.connect(None, None, None).unwrap();
    assert_eq!(tracker.end_all(EndReason::Shutdown), 2);
    assert_eq!(a.ended().await.reason, EndReason::Shutdown);
    assert!(tracker.is_empty());
}

#[tokio::test(start_paused = true)]
async fn many_tabs_end_on_time_from_one_queue() {
    let tracker = Tracker::start(policy(5));
    let conns: Vec<_> = (0..1000)
        .map(|_| tracker.connect(None, None, None).unwrap())
        .collect();
    advance(Duration::from_millis(4900)).await;
    settle().await;
    assert_eq!(tracker.len(), 1000);
    advance(Duration::from_millis(200)).await;
    settle().await;
    assert_eq!(tracker.len(), 0);
    for c in &conns {
        assert_eq!(c.ended().await.reason, EndReason::Idle);
    }
}

fn release(path: &str) -> Release {
    Release {
        method: http::Method::DELETE,
        path: path.into(),
        headers: http::HeaderMap::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn releases_of_an_ended_tab_are_handed_over_once() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let tracker = Tracker::with_releases(policy(600), Some(tx));
    let conn = tracker.connect(None, None, None).unwrap();
    conn.signal(Signal::SessionId("s1".into()));
    tracker.record_release("s1", release("/u/s1/a"));
    tracker.record_release("s1", release("/u/s1/b"));
    tracker.record_release("s1", release("/u/s1/a"));
    tracker.forget_release("s1", "/u/s1/b");
    tracker.record_release("unknown", release("/u/x/c"));
    assert!(tracker.end(conn.tab_id(), EndReason::Idle));
    assert_eq!(rx.recv().await.unwrap(), vec![release("/u/s1/a")]);
    assert!(!tracker.end(conn.tab_id(), EndReason::Idle));
    assert!(rx.try_recv().is_err());
}

fn hidden_policy(idle: u64, hidden: u64) -> TabPolicy {
    TabPolicy {
        hidden_timeout: Some(Duration::from_secs(hidden)),
        ..policy(idle)
    }
}

const TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAA";

fn ends_in(status: TabStatus) -> Duration {
    match status {
        TabStatus::Open {
            ends_in: Some(d), ..
        } => d,
        other => panic!("not open with a deadline: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn page_reports_reach_the_tab_of_its_token() {
    let tracker = Tracker::start(policy(60));
    assert_eq!(tracker.report(TOKEN, TabReport::Check), TabStatus::Unknown);
    let conn = tracker.connect(None, Some(TOKEN), None).unwrap();
    advance(Duration::from_secs(40)).await;
    assert_eq!(
        ends_in(tracker.report(TOKEN, TabReport::Check)),
        Duration::from_secs(20)
    );
    let status = tracker.report(TOKEN, TabReport::Activity);
    assert_eq!(ends_in(status), Duration::from_secs(60));
    assert!(matches!(
        status,
        TabStatus::Open {
            reason: Some(EndReason::Idle),
            extendable: true,
            hidden: false,
            ..
        }
    ));
    tracker.end(conn.tab_id(), EndReason::Admin);
    assert_eq!(
        tracker.report(TOKEN, TabReport::Activity),
        TabStatus::Ended(EndReason::Admin)
    );
    // The page's reconnect is refused with the reason, like a resumed app session would be.
    assert_eq!(
        tracker.admit(None, Some(TOKEN), None),
        Admission::Ended(EndReason::Admin)
    );
    assert_eq!(
        tracker.connect(None, Some(TOKEN), None).err(),
        Some(Refused::Ended(EndReason::Admin))
    );
}

#[tokio::test(start_paused = true)]
async fn hidden_tab_ends_after_the_hidden_limit_and_visible_one_does_not() {
    let tracker = Tracker::start(hidden_policy(60, 10));
    let hidden = tracker.connect(None, Some(TOKEN), None).unwrap();
    let visible = tracker
        .connect(None, Some("BBBBBBBBBBBBBBBBBBBBBB"), None)
        .unwrap();
    let t0 = Instant::now();
    let status = tracker.report(TOKEN, TabReport::Hidden);
    assert_eq!(ends_in(status), Duration::from_secs(10));
    let ending = ending_within(&hidden, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(ending.reason, EndReason::HiddenIdle);
    assert!(Instant::now() - t0 <= Duration::from_millis(10_005));
    settle().await;
    assert_eq!(tracker.len(), 1, "the visible tab is still open");
    drop(visible);
}

#[tokio::test(start_paused = true)]
async fn becoming_visible_is_not_activity_but_restores_the_idle_limit() {
    let tracker = Tracker::start(hidden_policy(60, 30));
    let _conn = tracker.connect(None, Some(TOKEN), None).unwrap();
    advance(Duration::from_secs(20)).await;
    tracker.report(TOKEN, TabReport::Hidden);
    advance(Duration::from_secs(25)).await;
    // Hidden 25s of 30: 5s left; when shown, the idle limit counts from the last activity.
    let status = tracker.report(TOKEN, TabReport::Visible);
    assert_eq!(ends_in(status), Duration::from_secs(15));
}

#[tokio::test(start_paused = true)]
async fn reports_cannot_extend_a_tab_past_its_lifetime() {
    let p = TabPolicy {
        max_lifetime: Some(Duration::from_secs(100)),
        ..policy(60)
    };
    let tracker = Tracker::start(p);
    let conn = tracker.connect(None, Some(TOKEN), None).unwrap();
    advance(Duration::from_secs(50)).await;
    let status = tracker.report(TOKEN, TabReport::Activity);
    assert!(matches!(
        status,
        TabStatus::Open {
            reason: Some(EndReason::MaxLifetime),
            extendable: false,
            ..
        }
    ));
    assert_eq!(ends_in(status), Duration::from_secs(50));
    let ending = ending_within(&conn, Duration::from_secs(60)).await.unwrap();
    assert_eq!(ending.reason, EndReason::MaxLifetime);
}

#[tokio::test(start_paused = true)]
async fn a_reconnect_with_the_page_token_resumes_the_tab() {
    let tracker = Tracker::start(policy(60));
    let first = tracker.connect(None, Some(TOKEN), None).unwrap();
    let id = first.tab_id();
    first.closed();
    let again = tracker.connect(None, Some(TOKEN), None).unwrap();
    assert_eq!(again.tab_id(), id);
    assert_eq!(tracker.len(), 1);
}

fn login_policy(login_idle: u64) -> TabPolicy {
    TabPolicy {
        login_idle_timeout: Some(Duration::from_secs(login_idle)),
        ..policy(3600)
    }
}

fn identity(user: &str) -> crate::auth::Identity {
    crate::auth::Identity {
        user: user.into(),
        email: None,
        groups: vec![],
    }
}

#[tokio::test(start_paused = true)]
async fn an_idle_login_ends_all_its_tabs_and_activity_in_one_keeps_both() {
    let store = crate::auth::LoginStore::default();
    let tracker = Tracker::start(login_policy(30));
    let login = store.create(identity("alice"));
    let a = tracker.connect(None, None, Some(login.clone())).unwrap();
    let b = tracker.connect(None, None, Some(login.clone())).unwrap();
    let t0 = Instant::now();
    // Activity in tab b only, for a minute: both stay, though a sees nothing.
    for _ in 0..6 {
        advance(Duration::from_secs(10)).await;
        b.signal(Signal::Activity);
        settle().await;
        assert_eq!(tracker.len(), 2);
    }
    let ending = ending_within(&a, Duration::from_secs(60)).await.unwrap();
    assert_eq!(ending.reason, EndReason::LoginExpired);
    let lived = Instant::now() - t0;
    assert!(
        lived >= Duration::from_secs(90) && lived <= Duration::from_secs(91),
        "{lived:?}"
    );
    let ending = ending_within(&b, Duration::from_secs(1)).await.unwrap();
    assert_eq!(ending.reason, EndReason::LoginExpired);
    assert!(login.is_revoked(), "an expired login's cookie is worthless");
}

#[tokio::test(start_paused = true)]
async fn over_the_user_limit_the_oldest_tab_ends_or_the_new_one_is_refused() {
    let store = crate::auth::LoginStore::default();
    let tracker = Tracker::start(TabPolicy {
        max_per_user: Some(2),
        ..login_policy(600)
    });
    let alice = store.create(identity("alice"));
    let bob = store.create(identity("bob"));
    let first = tracker.connect(None, None, Some(alice.clone())).unwrap();
    let _second = tracker.connect(None, None, Some(alice.clone())).unwrap();
    let _bobs = tracker.connect(None, None, Some(bob.clone())).unwrap();
    let _third = tracker.connect(None, None, Some(alice.clone())).unwrap();
    let ending = ending_within(&first, Duration::from_secs(1)).await.unwrap();
    assert_eq!(ending.reason, EndReason::EvictedUserCap);
    assert_eq!(tracker.len(), 3);

    let refusing = Tracker::start(TabPolicy {
        max_per_user: Some(1),
        on_limit: OnLimit::Refuse,
        ..login_policy(600)
    });
    let _one = refusing
        .connect(None, Some(TOKEN), Some(alice.clone()))
        .unwrap();
    assert_eq!(
        refusing.admit(None, None, Some(&alice)),
        Admission::OverUserCap
    );
    assert_eq!(
        refusing.connect(None, None, Some(alice.clone())).err(),
        Some(Refused::OverUserCap)
    );
    // The same page reconnecting is not a new tab.
    assert_eq!(
        refusing.admit(None, Some(TOKEN), Some(&alice)),
        Admission::Allowed
    );
    assert_eq!(refusing.admit(None, None, Some(&bob)), Admission::Allowed);
    assert_eq!(refusing.end_user("alice", EndReason::Logout), 1);
    assert!(refusing.is_empty());
}
