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

fn entry(resume: Option<&str>, client: Option<&str>) -> Entry {
    Entry {
        resume: resume.map(str::to_owned),
        client: client.map(str::to_owned),
    }
}

fn event(event: ReportEvent) -> Report {
    Report {
        event,
        ..Report::check()
    }
}

async fn ending_within(conn: &TabConnection, limit: Duration) -> Option<Ending> {
    tokio::time::timeout(limit, conn.ended()).await.ok()
}

#[tokio::test(start_paused = true)]
async fn idle_tab_ends_at_its_deadline() {
    let tracker = Tracker::start(policy(60));
    let conn = tracker.connect(&entry(None, None), None).unwrap();
    advance(Duration::from_secs(59)).await;
    settle().await;
    assert_eq!(tracker.len(), 1);
    let started = Instant::now();
    let ending = ending_within(&conn, Duration::from_secs(5)).await.unwrap();
    assert_eq!(ending.notice.reason, EndReason::Idle);
    assert!(ending.notify_browser);
    assert!(Instant::now() - started <= Duration::from_millis(1005));
    assert_eq!(tracker.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn activity_pushes_the_deadline_without_rearming() {
    let tracker = Tracker::start(policy(60));
    let conn = tracker.connect(&entry(None, None), None).unwrap();
    let t0 = Instant::now();
    advance(Duration::from_secs(50)).await;
    conn.signal(Signal::PersonMessage);
    let ending = ending_within(&conn, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(ending.notice.reason, EndReason::Idle);
    let lived = Instant::now() - t0;
    assert!(
        lived >= Duration::from_secs(110) && lived <= Duration::from_secs(111),
        "{lived:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn timer_reruns_do_not_keep_a_tab_alive() {
    let tracker = Tracker::start(policy(10));
    let conn = tracker.connect(&entry(None, None), None).unwrap();
    let t0 = Instant::now();
    let ending = loop {
        conn.signal(Signal::RunRequested {
            automatic: true,
            fragment: true,
        });
        conn.signal(Signal::Running(true));
        advance(Duration::from_millis(200)).await;
        conn.signal(Signal::Running(false));
        if let Some(e) = ending_within(&conn, Duration::from_millis(800)).await {
            break e;
        }
    };
    assert_eq!(ending.notice.reason, EndReason::Idle);
    assert!(Instant::now() - t0 <= Duration::from_secs(11));
}

#[tokio::test(start_paused = true)]
async fn persons_long_run_is_not_ended_and_idle_restarts_after_it() {
    let tracker = Tracker::start(policy(10));
    let conn = tracker.connect(&entry(None, None), None).unwrap();
    conn.signal(Signal::RunRequested {
        automatic: false,
        fragment: false,
    });
    conn.signal(Signal::Running(true));
    assert!(ending_within(&conn, Duration::from_secs(60))
        .await
        .is_none());
    conn.signal(Signal::Running(false));
    let finished = Instant::now();
    let ending = ending_within(&conn, Duration::from_secs(20)).await.unwrap();
    assert_eq!(ending.notice.reason, EndReason::Idle);
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
    let conn = tracker.connect(&entry(None, None), None).unwrap();
    conn.signal(Signal::RunRequested {
        automatic: false,
        fragment: false,
    });
    conn.signal(Signal::Running(true));
    let ending = ending_within(&conn, Duration::from_secs(31)).await.unwrap();
    assert_eq!(ending.notice.reason, EndReason::MaxLifetime);
}

#[tokio::test(start_paused = true)]
async fn closed_tab_ends_after_grace_and_cannot_be_resumed() {
    let tracker = Tracker::start(policy(600));
    let conn = tracker.connect(&entry(None, None), None).unwrap();
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
        Err(Refused::Ended(EndNotice::reason(EndReason::Closed)))
    );
    assert_eq!(
        tracker.connect(&entry(Some("abc"), None), None).err(),
        Some(Refused::Ended(EndNotice::reason(EndReason::Closed)))
    );
    // An app session this process never saw: a page from before a restart.
    assert_eq!(
        tracker.admit(Some("other"), None, None),
        Err(Refused::Ended(EndNotice::reason(
            EndReason::ServerRestarted
        )))
    );
    assert!(tracker.restarted_page(Some("other"), None));
    assert!(!tracker.restarted_page(Some("abc"), None), "ended here");
    assert!(!tracker.restarted_page(None, Some(TOKEN)), "a new page");
}

#[tokio::test(start_paused = true)]
async fn reconnect_within_grace_resumes_the_same_tab() {
    let tracker = Tracker::start(policy(600));
    let conn = tracker.connect(&entry(None, None), None).unwrap();
    let id = conn.tab_id();
    conn.signal(Signal::SessionId("abc".into()));
    conn.closed();
    advance(Duration::from_secs(10)).await;
    let again = tracker.connect(&entry(Some("abc"), None), None).unwrap();
    assert_eq!(again.tab_id(), id);
    advance(Duration::from_secs(30)).await;
    settle().await;
    assert_eq!(tracker.len(), 1);
    assert!(ending_within(&again, Duration::from_millis(10))
        .await
        .is_none());
}

const RERUN: Signal = Signal::RunRequested {
    automatic: false,
    fragment: false,
};

#[tokio::test(start_paused = true)]
async fn reconnect_rerun_is_not_activity_but_page_load_rerun_is() {
    let tracker = Tracker::start(policy(60));
    let first = tracker.connect(&entry(None, None), None).unwrap();
    let id = first.tab_id();
    first.signal(Signal::SessionId("s1".into()));
    advance(Duration::from_secs(30)).await;
    first.signal(RERUN);
    let d = tracker.deadline_of(id).unwrap();
    assert_eq!(
        d.at,
        Instant::now() + Duration::from_secs(60),
        "page load counts"
    );
    // The connection drops while that run is asked for: the page asks again by itself.
    first.closed();
    advance(Duration::from_secs(5)).await;
    let again = tracker.connect(&entry(Some("s1"), None), None).unwrap();
    again.signal(RERUN);
    let d2 = tracker.deadline_of(id).unwrap();
    assert_eq!(d2.at, d.at, "a reconnect's rerun is not activity");
    // The next one is a person's.
    advance(Duration::from_secs(1)).await;
    again.signal(RERUN);
    assert_eq!(
        tracker.deadline_of(id).unwrap().at,
        Instant::now() + Duration::from_secs(60)
    );
}

#[tokio::test(start_paused = true)]
async fn a_persons_first_click_after_a_reconnect_counts_when_the_page_reruns_nothing() {
    let tracker = Tracker::start(policy(30));
    let first = tracker.connect(&entry(None, None), None).unwrap();
    let id = first.tab_id();
    first.signal(Signal::SessionId("s1".into()));
    first.signal(RERUN);
    first.signal(Signal::Running(true));
    first.signal(Signal::Running(false));
    // A load balancer cuts the socket; no run was going, no fragment, no timer.
    advance(Duration::from_secs(10)).await;
    first.closed();
    advance(Duration::from_millis(400)).await;
    let again = tracker.connect(&entry(Some("s1"), None), None).unwrap();
    advance(Duration::from_millis(300)).await;
    again.signal(RERUN);
    assert_eq!(
        tracker.deadline_of(id).unwrap().at,
        Instant::now() + Duration::from_secs(30),
        "the click right after the reconnect counts"
    );
}

#[tokio::test(start_paused = true)]
async fn after_a_reconnect_a_page_with_timers_reruns_by_itself_first() {
    let tracker = Tracker::start(policy(30));
    let first = tracker.connect(&entry(None, None), None).unwrap();
    let id = first.tab_id();
    first.signal(Signal::SessionId("s1".into()));
    first.signal(RERUN);
    first.signal(Signal::TimerSet);
    first.signal(Signal::Running(true));
    first.signal(Signal::Running(false));
    let before = tracker.deadline_of(id).unwrap().at;
    first.closed();
    advance(Duration::from_millis(500)).await;
    let again = tracker.connect(&entry(Some("s1"), None), None).unwrap();
    again.signal(RERUN);
    assert_eq!(tracker.deadline_of(id).unwrap().at, before);
    // Its expectation lapses: a rerun long after the reconnect is a person's again.
    again.signal(Signal::Running(true));
    again.signal(Signal::Running(false));
    advance(Duration::from_secs(5)).await;
    again.signal(RERUN);
    assert_eq!(
        tracker.deadline_of(id).unwrap().at,
        Instant::now() + Duration::from_secs(30)
    );
}

#[tokio::test(start_paused = true)]
async fn takeover_tells_the_old_connection_to_close_quietly() {
    let tracker = Tracker::start(policy(600));
    let old = tracker.connect(&entry(None, None), None).unwrap();
    old.signal(Signal::SessionId("abc".into()));
    let new = tracker.connect(&entry(Some("abc"), None), None).unwrap();
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
    let a = tracker.connect(&entry(None, None), None).unwrap();
    let _b = tracker.connect(&entry(None, None), None).unwrap();
    assert_eq!(tracker.end_all(EndReason::Shutdown), 2);
    assert_eq!(a.ended().await.notice.reason, EndReason::Shutdown);
    assert!(tracker.is_empty());
}

#[tokio::test(start_paused = true)]
async fn many_tabs_end_on_time_from_one_queue() {
    let tracker = Tracker::start(policy(5));
    let conns: Vec<_> = (0..1000)
        .map(|_| tracker.connect(&entry(None, None), None).unwrap())
        .collect();
    advance(Duration::from_millis(4900)).await;
    settle().await;
    assert_eq!(tracker.len(), 1000);
    advance(Duration::from_millis(200)).await;
    settle().await;
    assert_eq!(tracker.len(), 0);
    for c in &conns {
        assert_eq!(c.ended().await.notice.reason, EndReason::Idle);
    }
}

fn release(path: &str) -> Release {
    Release {
        method: http::Method::DELETE,
        path: path.into(),
        headers: http::HeaderMap::new(),
    }
}

/// Hands the releases the tracker publishes to a channel.
struct Releases(mpsc::UnboundedSender<Vec<Release>>);

impl crate::lifecycle::Subscriber for Releases {
    fn on_event(&self, event: &crate::lifecycle::Event) {
        use crate::lifecycle::Event;
        match event {
            Event::TabEnded(end) if !end.releases.is_empty() => {
                let _ = self.0.send(end.releases.clone());
            }
            Event::LateRelease(release) => {
                let _ = self.0.send(vec![release.clone()]);
            }
            _ => {}
        }
    }
}

fn with_releases(policy: TabPolicy) -> (Tracker, mpsc::UnboundedReceiver<Vec<Release>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let events = crate::lifecycle::Publisher::new(vec![Arc::new(Releases(tx))]);
    let tracker = Tracker::new(policy, crate::store::Stores::memory(), events);
    (tracker, rx)
}

#[tokio::test(start_paused = true)]
async fn releases_of_an_ended_tab_are_handed_over_once() {
    let (tracker, mut rx) = with_releases(policy(600));
    let conn = tracker.connect(&entry(None, None), None).unwrap();
    conn.signal(Signal::SessionId("s1".into()));
    tracker.record_release("s1", release("/u/s1/a"), None);
    tracker.record_release("s1", release("/u/s1/b"), None);
    tracker.record_release("s1", release("/u/s1/a"), None);
    tracker.forget_release("s1", "/u/s1/b", None);
    tracker.record_release("unknown", release("/u/x/c"), None);
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
    assert_eq!(
        tracker.report(TOKEN, None, &Report::check()),
        TabStatus::Unknown
    );
    let conn = tracker.connect(&entry(None, Some(TOKEN)), None).unwrap();
    advance(Duration::from_secs(40)).await;
    assert_eq!(
        ends_in(tracker.report(TOKEN, None, &Report::check())),
        Duration::from_secs(20)
    );
    let status = tracker.report(TOKEN, None, &Report::input(Duration::ZERO));
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
        tracker.report(TOKEN, None, &Report::input(Duration::ZERO)),
        TabStatus::Ended(EndReason::Admin)
    );
    // The page's reconnect is refused with the reason, like a resumed app session would be
    // (and the page was sent away once already, by its connection).
    let sent_away_once = EndNotice {
        sent_away: 1,
        ..EndNotice::reason(EndReason::Admin)
    };
    assert_eq!(
        tracker.admit(None, Some(TOKEN), None),
        Err(Refused::Ended(sent_away_once.clone()))
    );
    assert_eq!(
        tracker.connect(&entry(None, Some(TOKEN)), None).err(),
        Some(Refused::Ended(sent_away_once))
    );
}

#[tokio::test(start_paused = true)]
async fn hidden_tab_ends_after_the_hidden_limit_and_visible_one_does_not() {
    let tracker = Tracker::start(hidden_policy(60, 10));
    let hidden = tracker.connect(&entry(None, Some(TOKEN)), None).unwrap();
    let visible = tracker
        .connect(&entry(None, Some("BBBBBBBBBBBBBBBBBBBBBB")), None)
        .unwrap();
    let t0 = Instant::now();
    let status = tracker.report(TOKEN, None, &event(ReportEvent::Hidden));
    assert_eq!(ends_in(status), Duration::from_secs(10));
    let ending = ending_within(&hidden, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(ending.notice.reason, EndReason::HiddenIdle);
    assert!(Instant::now() - t0 <= Duration::from_millis(10_005));
    settle().await;
    assert_eq!(tracker.len(), 1, "the visible tab is still open");
    drop(visible);
}

#[tokio::test(start_paused = true)]
async fn becoming_visible_is_not_activity_but_restores_the_idle_limit() {
    let tracker = Tracker::start(hidden_policy(60, 30));
    let _conn = tracker.connect(&entry(None, Some(TOKEN)), None).unwrap();
    advance(Duration::from_secs(20)).await;
    tracker.report(TOKEN, None, &event(ReportEvent::Hidden));
    advance(Duration::from_secs(25)).await;
    // Hidden 25s of 30: 5s left; when shown, the idle limit counts from the last activity.
    let status = tracker.report(TOKEN, None, &event(ReportEvent::Visible));
    assert_eq!(ends_in(status), Duration::from_secs(15));
}

#[tokio::test(start_paused = true)]
async fn reports_cannot_extend_a_tab_past_its_lifetime() {
    let p = TabPolicy {
        max_lifetime: Some(Duration::from_secs(100)),
        ..policy(60)
    };
    let tracker = Tracker::start(p);
    let conn = tracker.connect(&entry(None, Some(TOKEN)), None).unwrap();
    advance(Duration::from_secs(50)).await;
    let status = tracker.report(TOKEN, None, &Report::input(Duration::ZERO));
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
    assert_eq!(ending.notice.reason, EndReason::MaxLifetime);
}

#[tokio::test(start_paused = true)]
async fn a_reconnect_with_the_page_token_resumes_the_tab() {
    let tracker = Tracker::start(policy(60));
    let first = tracker.connect(&entry(None, Some(TOKEN)), None).unwrap();
    let id = first.tab_id();
    first.closed();
    let again = tracker.connect(&entry(None, Some(TOKEN)), None).unwrap();
    assert_eq!(again.tab_id(), id);
    assert_eq!(tracker.len(), 1);
}

fn login_policy(login_idle: u64) -> TabPolicy {
    TabPolicy {
        login_idle_timeout: Some(Duration::from_secs(login_idle)),
        ..policy(3600)
    }
}

fn identity(user: &str) -> crate::store::Identity {
    crate::store::Identity {
        user: user.into(),
        name: None,
        email: None,
        groups: vec![],
    }
}

/// A login of `user`, started now and kept in the tracker's store.
fn sign_in(tracker: &Tracker, user: &str) -> Arc<crate::store::LoginSession> {
    let stores = tracker.stores();
    let login = Arc::new(crate::store::LoginSession::new(
        identity(user),
        stores.clock.now_ms(),
    ));
    stores.logins.insert(login.clone());
    login
}

#[tokio::test(start_paused = true)]
async fn an_idle_login_ends_all_its_tabs_and_activity_in_one_keeps_both() {
    let tracker = Tracker::start(login_policy(30));
    let login = sign_in(&tracker, "alice");
    let a = tracker
        .connect(&entry(None, None), Some(login.clone()))
        .unwrap();
    let b = tracker
        .connect(&entry(None, None), Some(login.clone()))
        .unwrap();
    let t0 = Instant::now();
    // Activity in tab b only, for a minute: both stay, though a sees nothing.
    for _ in 0..6 {
        advance(Duration::from_secs(10)).await;
        b.signal(Signal::PersonMessage);
        settle().await;
        assert_eq!(tracker.len(), 2);
    }
    let ending = ending_within(&a, Duration::from_secs(60)).await.unwrap();
    assert_eq!(ending.notice.reason, EndReason::LoginExpired);
    let lived = Instant::now() - t0;
    assert!(
        lived >= Duration::from_secs(90) && lived <= Duration::from_secs(91),
        "{lived:?}"
    );
    let ending = ending_within(&b, Duration::from_secs(1)).await.unwrap();
    assert_eq!(ending.notice.reason, EndReason::LoginExpired);
    assert!(login.is_revoked(), "an expired login's cookie is worthless");
}

#[tokio::test(start_paused = true)]
async fn over_the_user_limit_the_oldest_tab_ends_or_the_new_one_is_refused() {
    let tracker = Tracker::start(TabPolicy {
        max_per_user: Some(2),
        ..login_policy(600)
    });
    let alice = sign_in(&tracker, "alice");
    let bob = sign_in(&tracker, "bob");
    let first = tracker
        .connect(&entry(None, None), Some(alice.clone()))
        .unwrap();
    let _second = tracker
        .connect(&entry(None, None), Some(alice.clone()))
        .unwrap();
    let _bobs = tracker
        .connect(&entry(None, None), Some(bob.clone()))
        .unwrap();
    let _third = tracker
        .connect(&entry(None, None), Some(alice.clone()))
        .unwrap();
    let ending = ending_within(&first, Duration::from_secs(1)).await.unwrap();
    assert_eq!(ending.notice.reason, EndReason::EvictedUserCap);
    assert_eq!(tracker.len(), 3);

    let refusing = Tracker::start(TabPolicy {
        max_per_user: Some(1),
        on_limit: OnLimit::Refuse,
        ..login_policy(600)
    });
    let _one = refusing
        .connect(&entry(None, Some(TOKEN)), Some(alice.clone()))
        .unwrap();
    assert_eq!(
        refusing.admit(None, None, Some(&alice)),
        Err(Refused::OverUserCap)
    );
    assert_eq!(
        refusing
            .connect(&entry(None, None), Some(alice.clone()))
            .err(),
        Some(Refused::OverUserCap)
    );
    // The same page reconnecting is not a new tab.
    assert_eq!(
        refusing.admit(None, Some(TOKEN), Some(&alice)),
        Ok(entry(None, Some(TOKEN)))
    );
    assert_eq!(refusing.admit(None, None, Some(&bob)), Ok(Entry::default()));
    assert_eq!(refusing.end_user("alice", EndReason::Logout), 1);
    assert!(refusing.is_empty());
}

#[tokio::test(start_paused = true)]
async fn over_the_server_limit_the_least_recently_active_tab_ends_not_a_busy_or_recent_one() {
    let tracker = Tracker::start(TabPolicy {
        max_total: Some(3),
        on_limit: OnLimit::EndLeastRecentlyActive,
        busy_timeout: Some(Duration::from_secs(3600)),
        ..policy(3600)
    });
    // Three tabs: the oldest busy (an upload) and untouched the longest, one idle for nine
    // minutes, one used just now.
    let busy = tracker.connect(&entry(None, None), None).unwrap();
    busy.signal(Signal::SessionId("busy".into()));
    let _upload = tracker.upload_started("busy", None).unwrap();
    advance(Duration::from_secs(60)).await;
    let idle = tracker.connect(&entry(None, None), None).unwrap();
    advance(Duration::from_secs(540)).await;
    let recent = tracker.connect(&entry(None, None), None).unwrap();
    advance(Duration::from_secs(5)).await;
    recent.signal(Signal::PersonMessage);
    let fourth = tracker.connect(&entry(None, None), None).unwrap();
    let ending = ending_within(&idle, Duration::from_secs(1)).await.unwrap();
    assert_eq!(ending.notice.reason, EndReason::EvictedCapacity);
    assert_eq!(tracker.len(), 3);
    // Next: the one used within the minute goes before the busy one...
    let _fifth = tracker.connect(&entry(None, None), None).unwrap();
    let ending = ending_within(&recent, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(ending.notice.reason, EndReason::EvictedCapacity);
    // ...and the fourth (its page loaded a moment ago, untouched since) is older than the
    // fifth, so it ends before the busy one too.
    let _sixth = tracker.connect(&entry(None, None), None).unwrap();
    let ending = ending_within(&fourth, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(ending.notice.reason, EndReason::EvictedCapacity);
    settle().await;
    assert!(
        tracker.view(busy.tab_id()).is_some(),
        "the busy tab is kept"
    );

    // A page that is gone makes room first, even when new tabs are otherwise refused.
    let refusing = Tracker::start(TabPolicy {
        max_total: Some(2),
        on_limit: OnLimit::Refuse,
        ..policy(600)
    });
    let staying = refusing.connect(&entry(None, None), None).unwrap();
    let left = refusing.connect(&entry(None, None), None).unwrap();
    let left_id = left.tab_id();
    left.closed();
    let _new = refusing.connect(&entry(None, None), None).unwrap();
    assert!(
        refusing.view(left_id).is_none(),
        "the page that left made room"
    );
    assert!(refusing.view(staying.tab_id()).is_some());
    // While the app's memory is over its high water mark, new tabs are refused.
    refusing.set_memory_full(true);
    assert_eq!(
        refusing.connect(&entry(None, None), None).err(),
        Some(Refused::ServerBusy)
    );
    refusing.set_memory_full(false);

    // Refusing: the fourth is turned away; a page coming back to its own tab is not.
    let refusing = Tracker::start(TabPolicy {
        max_total: Some(1),
        on_limit: OnLimit::Refuse,
        ..policy(600)
    });
    let _one = refusing.connect(&entry(None, Some(TOKEN)), None).unwrap();
    assert_eq!(
        refusing.connect(&entry(None, None), None).err(),
        Some(Refused::ServerBusy)
    );
    assert_eq!(
        refusing.admit(None, Some(TOKEN), None),
        Ok(entry(None, Some(TOKEN)))
    );
}

/// A tab whose page script has reported (the input rule judges it), opened at the returned
/// instant, whose page-load run has finished.
async fn scripted_tab(tracker: &Tracker, token: &str) -> (TabConnection, Instant) {
    let conn = tracker.connect(&entry(None, Some(token)), None).unwrap();
    let opened = Instant::now();
    conn.signal(RERUN);
    conn.signal(Signal::Running(true));
    conn.signal(Signal::Running(false));
    tracker.report(token, None, &Report::check());
    assert_eq!(tracker.rule_of(conn.tab_id()), Some(ActivityRule::Input));
    (conn, opened)
}

fn sends(ages_ms: &[u64]) -> Report {
    Report {
        human_sends: ages_ms
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect(),
        ..Report::check()
    }
}

#[tokio::test(start_paused = true)]
async fn under_the_input_rule_reruns_nobody_caused_are_not_activity_but_input_is() {
    let tracker = Tracker::start(policy(60));
    let (conn, opened) = scripted_tab(&tracker, TOKEN).await;
    let id = conn.tab_id();
    // A component on a timer: reruns every 2 s, never with a person's input.
    for _ in 0..10 {
        advance(Duration::from_secs(2)).await;
        conn.signal(RERUN);
        conn.signal(Signal::Running(true));
        conn.signal(Signal::Running(false));
        conn.signal(Signal::PersonMessage);
    }
    assert_eq!(
        tracker.deadline_of(id).unwrap().at,
        opened + Duration::from_secs(60)
    );
    // Input reported 3 s after it happened counts from when it happened.
    let status = tracker.report(TOKEN, None, &Report::input(Duration::from_secs(3)));
    assert_eq!(ends_in(status), Duration::from_secs(57));
    let input_at = Instant::now() - Duration::from_secs(3);
    let ending = ending_within(&conn, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(ending.notice.reason, EndReason::Idle);
    let late = Instant::now() - (input_at + Duration::from_secs(60));
    assert!(late <= Duration::from_millis(5), "{late:?}");
}

#[tokio::test(start_paused = true)]
async fn a_run_the_page_reports_as_a_persons_holds_the_idle_limit_off() {
    let tracker = Tracker::start(TabPolicy {
        busy_timeout: Some(Duration::from_secs(600)),
        ..policy(60)
    });
    let (conn, _) = scripted_tab(&tracker, TOKEN).await;
    let id = conn.tab_id();
    advance(Duration::from_secs(10)).await;
    // The click's message arrives first, its report a moment later.
    conn.signal(RERUN);
    conn.signal(Signal::Running(true));
    assert_eq!(tracker.deadline_of(id).unwrap().reason, EndReason::Idle);
    advance(Duration::from_millis(30)).await;
    tracker.report(TOKEN, None, &sends(&[40]));
    let busy = tracker.deadline_of(id).unwrap();
    assert_eq!(busy.reason, EndReason::BusyIdle, "the person waits for it");
    // Two minutes of computing, then the idle time counts from the result.
    advance(Duration::from_secs(120)).await;
    settle().await;
    assert_eq!(tracker.len(), 1);
    conn.signal(Signal::Running(false));
    assert_eq!(
        tracker.deadline_of(id).unwrap().at,
        Instant::now() + Duration::from_secs(60)
    );
}

#[tokio::test(start_paused = true)]
async fn a_report_that_comes_before_its_message_attributes_it() {
    let tracker = Tracker::start(TabPolicy {
        busy_timeout: Some(Duration::from_secs(600)),
        ..policy(60)
    });
    let (conn, _) = scripted_tab(&tracker, TOKEN).await;
    tracker.report(TOKEN, None, &sends(&[0]));
    advance(Duration::from_millis(20)).await;
    conn.signal(RERUN);
    conn.signal(Signal::Running(true));
    assert_eq!(
        tracker.deadline_of(conn.tab_id()).unwrap().reason,
        EndReason::BusyIdle
    );
    // One send, one message: the timer's rerun half a second later is not the person's.
    conn.signal(Signal::Running(false));
    advance(Duration::from_millis(500)).await;
    conn.signal(RERUN);
    conn.signal(Signal::Running(true));
    assert_eq!(
        tracker.deadline_of(conn.tab_id()).unwrap().reason,
        EndReason::Idle
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_nobody_waits_for_ends_after_the_busy_limit() {
    let tracker = Tracker::start(TabPolicy {
        busy_timeout: Some(Duration::from_secs(120)),
        ..policy(60)
    });
    let conn = tracker.connect(&entry(None, None), None).unwrap();
    let opened = Instant::now();
    // A page whose first run never finishes (a `while True` live loop).
    conn.signal(RERUN);
    conn.signal(Signal::Running(true));
    let ending = ending_within(&conn, Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(ending.notice.reason, EndReason::BusyIdle);
    let lived = Instant::now() - opened;
    assert!(
        lived >= Duration::from_secs(120) && lived <= Duration::from_millis(120_005),
        "{lived:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_upload_keeps_its_tab_busy_and_idle_time_counts_from_its_end() {
    let tracker = Tracker::start(TabPolicy {
        busy_timeout: Some(Duration::from_secs(600)),
        ..policy(20)
    });
    let conn = tracker.connect(&entry(None, None), None).unwrap();
    conn.signal(Signal::SessionId("s1".into()));
    let upload = tracker.upload_started("s1", None).expect("the tab is open");
    // Forty seconds of upload body, twice the idle limit.
    advance(Duration::from_secs(40)).await;
    settle().await;
    assert_eq!(tracker.len(), 1, "not ended mid-upload");
    drop(upload);
    let done = Instant::now();
    let ending = ending_within(&conn, Duration::from_secs(30)).await.unwrap();
    assert_eq!(ending.notice.reason, EndReason::Idle);
    assert!(Instant::now() - done >= Duration::from_secs(20));
    assert!(tracker.upload_started("s1", None).is_none());
}

#[tokio::test(start_paused = true)]
async fn an_upload_answered_after_its_tab_ended_is_released_at_once() {
    let (tracker, mut rx) = with_releases(policy(600));
    let conn = tracker.connect(&entry(None, None), None).unwrap();
    conn.signal(Signal::SessionId("s1".into()));
    let upload = tracker.upload_started("s1", None).unwrap();
    assert!(tracker.end(conn.tab_id(), EndReason::Logout));
    tracker.record_release("s1", release("/u/s1/late"), None);
    drop(upload);
    assert_eq!(rx.recv().await.unwrap(), vec![release("/u/s1/late")]);
    // An app session this tracker never had is not its business.
    tracker.record_release("never", release("/u/never/x"), None);
    assert!(rx.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn another_login_can_neither_report_on_nor_take_over_a_tab() {
    let tracker = Tracker::start(login_policy(600));
    let alice = sign_in(&tracker, "alice");
    let bob = sign_in(&tracker, "bob");
    let alices = tracker
        .connect(&entry(None, Some(TOKEN)), Some(alice.clone()))
        .unwrap();
    alices.signal(Signal::SessionId("s-alice".into()));
    let id = alices.tab_id();
    advance(Duration::from_secs(100)).await;
    let before = tracker.deadline_of(id).unwrap();
    for login in [None, Some(&bob)] {
        let status = tracker.report(TOKEN, login, &Report::input(Duration::ZERO));
        assert_eq!(status, TabStatus::Unknown);
    }
    assert_eq!(tracker.deadline_of(id).unwrap(), before, "unchanged");
    assert_eq!(tracker.rule_of(id), Some(ActivityRule::Messages));
    // Bob naming Alice's token and app session gets neither.
    assert_eq!(
        tracker.admit(Some("s-alice"), Some(TOKEN), Some(&bob)),
        Ok(Entry::default())
    );
    let bobs = tracker
        .connect(&entry(Some("s-alice"), Some(TOKEN)), Some(bob.clone()))
        .unwrap();
    assert_ne!(bobs.tab_id(), id);
    assert!(ending_within(&alices, Duration::from_millis(10))
        .await
        .is_none());
    // Alice's own report still works.
    let status = tracker.report(TOKEN, Some(&alice), &Report::input(Duration::ZERO));
    assert!(matches!(status, TabStatus::Open { .. }));
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_reports_is_not_more_activity() {
    let tracker = Tracker::start(policy(60));
    let (conn, _) = scripted_tab(&tracker, TOKEN).await;
    advance(Duration::from_secs(30)).await;
    for _ in 0..50 {
        tracker.report(TOKEN, None, &Report::input(Duration::from_secs(30)));
    }
    let status = tracker.report(TOKEN, None, &Report::input(Duration::ZERO));
    assert_eq!(
        ends_in(status),
        Duration::from_secs(30),
        "reports past the rate change nothing"
    );
    drop(conn);
}

#[tokio::test(start_paused = true)]
async fn another_logins_uploads_neither_keep_a_tab_busy_nor_touch_it() {
    let tracker = Tracker::start(TabPolicy {
        busy_timeout: Some(Duration::from_secs(600)),
        ..login_policy(600)
    });
    let alice = sign_in(&tracker, "alice");
    let bob = sign_in(&tracker, "bob");
    let conn = tracker
        .connect(&entry(None, None), Some(alice.clone()))
        .unwrap();
    conn.signal(Signal::SessionId("s-alice".into()));
    let id = conn.tab_id();
    advance(Duration::from_secs(10)).await;
    let before = tracker.deadline_of(id).unwrap();
    assert!(tracker.upload_started("s-alice", Some(&bob)).is_none());
    assert!(tracker.upload_started("s-alice", None).is_none());
    tracker.person_request("s-alice", Some(&bob));
    assert_eq!(tracker.deadline_of(id).unwrap(), before);
    // Alice's own upload is hers.
    let upload = tracker.upload_started("s-alice", Some(&alice)).unwrap();
    assert_eq!(tracker.deadline_of(id).unwrap().reason, EndReason::BusyIdle);
    drop(upload);
}

#[tokio::test(start_paused = true)]
async fn an_upload_nobody_started_does_not_hold_a_tab_under_the_input_rule() {
    let tracker = Tracker::start(TabPolicy {
        busy_timeout: Some(Duration::from_secs(600)),
        ..policy(60)
    });
    let (conn, _) = scripted_tab(&tracker, TOKEN).await;
    conn.signal(Signal::SessionId("s1".into()));
    let upload = tracker.upload_started("s1", None).unwrap();
    assert_eq!(
        tracker.deadline_of(conn.tab_id()).unwrap().reason,
        EndReason::Idle,
        "a script's upload is not awaited"
    );
    // A person's send reported for it makes it theirs.
    tracker.report(TOKEN, None, &sends(&[100]));
    assert_eq!(
        tracker.deadline_of(conn.tab_id()).unwrap().reason,
        EndReason::BusyIdle
    );
    drop(upload);
}

#[tokio::test(start_paused = true)]
async fn a_page_reruns_for_the_whole_page_replace_the_run_in_progress_and_its_cause() {
    let tracker = Tracker::start(TabPolicy {
        busy_timeout: Some(Duration::from_secs(600)),
        ..policy(60)
    });
    let (conn, opened) = scripted_tab(&tracker, TOKEN).await;
    let id = conn.tab_id();
    // A slow script: a person's click starts it...
    tracker.report(TOKEN, None, &sends(&[0]));
    conn.signal(RERUN);
    conn.signal(Signal::Running(true));
    assert_eq!(tracker.deadline_of(id).unwrap().reason, EndReason::BusyIdle);
    // ...and a component's timer asks for the page again while it runs: the app stops the
    // person's run and starts the timer's, which nobody awaits.
    advance(Duration::from_secs(2)).await;
    conn.signal(RERUN);
    assert_eq!(tracker.deadline_of(id).unwrap().reason, EndReason::Idle);
    // A fragment timer does not stop a run; a person's run keeps its cause.
    advance(Duration::from_millis(1500)).await;
    tracker.report(TOKEN, None, &sends(&[0]));
    conn.signal(RERUN);
    conn.signal(Signal::RunRequested {
        automatic: true,
        fragment: true,
    });
    assert_eq!(tracker.deadline_of(id).unwrap().reason, EndReason::BusyIdle);
    let _ = opened;
}

#[tokio::test(start_paused = true)]
async fn a_page_load_starts_its_tabs_idle_time_but_does_not_keep_the_login() {
    let tracker = Tracker::start(login_policy(30));
    let alice = sign_in(&tracker, "alice");
    let signed_in = Instant::now();
    // A page reloaded by a script every 10 s: a new tab each time.
    let mut ended = None;
    for _ in 0..6 {
        advance(Duration::from_secs(10)).await;
        let conn = tracker
            .connect(&entry(None, None), Some(alice.clone()))
            .unwrap();
        conn.signal(RERUN);
        conn.signal(Signal::Running(true));
        conn.signal(Signal::Running(false));
        settle().await;
        if alice.is_revoked() {
            ended = Some(Instant::now());
            break;
        }
    }
    let ended = ended.expect("the login ended");
    assert!(
        ended - signed_in <= Duration::from_secs(40),
        "{:?}",
        ended - signed_in
    );
}

/// Records every event the tracker publishes.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<crate::lifecycle::Event>>);

impl crate::lifecycle::Subscriber for Recorder {
    fn on_event(&self, event: &crate::lifecycle::Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

#[tokio::test(start_paused = true)]
async fn a_tabs_life_is_published_as_events() {
    use crate::lifecycle::{ActivityRule, Event, Publisher};
    let recorder = Arc::new(Recorder::default());
    let tracker = Tracker::new(
        TabPolicy {
            hidden_timeout: Some(Duration::from_secs(300)),
            ..login_policy(600)
        },
        crate::store::Stores::memory(),
        Publisher::new(vec![recorder.clone()]),
    );
    let alice = sign_in(&tracker, "alice");
    let conn = tracker
        .connect(&entry(None, Some(TOKEN)), Some(alice.clone()))
        .unwrap();
    let tab = conn.tab_id();
    conn.signal(Signal::SessionId("s1".into()));
    advance(Duration::from_secs(5)).await;
    tracker.report(TOKEN, Some(&alice), &Report::input(Duration::from_secs(1)));
    conn.signal(RERUN);
    conn.signal(Signal::Running(true));
    conn.signal(Signal::Running(false));
    tracker.report(TOKEN, Some(&alice), &event(ReportEvent::Warned));
    tracker.report(TOKEN, Some(&alice), &event(ReportEvent::KeptWorking));
    tracker.report(TOKEN, Some(&alice), &event(ReportEvent::Hidden));
    tracker.report(TOKEN, Some(&alice), &event(ReportEvent::Visible));
    conn.closed();
    advance(Duration::from_secs(2)).await;
    let again = tracker
        .connect(&entry(Some("s1"), Some(TOKEN)), Some(alice.clone()))
        .unwrap();
    assert!(tracker.end(again.tab_id(), EndReason::Admin));
    let events = recorder.0.lock().unwrap().clone();
    let opened = Event::TabOpened {
        tab,
        user: Some("alice".into()),
        app_session: None,
        resumed: false,
        script: true,
    };
    assert_eq!(events.first(), Some(&opened));
    for expected in [
        Event::Activity {
            tab,
            source: ActivityRule::Input,
        },
        Event::LoginTouched {
            user: "alice".into(),
        },
        Event::Warned { tab },
        Event::KeptWorking { tab },
        Event::Hidden { tab, hidden: true },
        Event::Hidden { tab, hidden: false },
        Event::Disconnected { tab },
        Event::TabReconnected {
            tab,
            away: Duration::from_secs(2),
        },
    ] {
        assert!(events.contains(&expected), "{expected:?} in {events:#?}");
    }
    let Some(Event::TabEnded(end)) = events.last() else {
        panic!("the last event is the end: {events:#?}");
    };
    assert_eq!(end.tab, tab);
    assert_eq!(end.reason, EndReason::Admin);
    assert_eq!(end.rule, ActivityRule::Input);
    assert_eq!(end.app_session.as_deref(), Some("s1"));
    assert_eq!(end.lifetime, Duration::from_secs(7));
    // The page load's first run, finished at 5 s, started the tab's idle time.
    assert_eq!(end.human_idle, Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn an_expired_login_is_published_once_with_its_tabs_ends() {
    use crate::lifecycle::{Event, Publisher};
    let recorder = Arc::new(Recorder::default());
    let tracker = Tracker::new(
        login_policy(30),
        crate::store::Stores::memory(),
        Publisher::new(vec![recorder.clone()]),
    );
    let alice = sign_in(&tracker, "alice");
    let a = tracker
        .connect(&entry(None, None), Some(alice.clone()))
        .unwrap();
    let _b = tracker
        .connect(&entry(None, None), Some(alice.clone()))
        .unwrap();
    let ending = ending_within(&a, Duration::from_secs(60)).await.unwrap();
    assert_eq!(ending.notice.reason, EndReason::LoginExpired);
    settle().await;
    let events = recorder.0.lock().unwrap().clone();
    let ended: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::LoginEnded { .. }))
        .collect();
    assert_eq!(
        ended,
        [&Event::LoginEnded {
            user: "alice".into(),
            reason: EndReason::LoginExpired
        }]
    );
    let tab_ends = events
        .iter()
        .filter(|e| matches!(e, Event::TabEnded(end) if end.reason == EndReason::LoginExpired))
        .count();
    assert_eq!(tab_ends, 2);
    assert!(tracker.stores().logins.get(alice.id()).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_page_that_keeps_coming_back_after_being_sent_away_is_told_in_place() {
    let tracker = Tracker::start(policy(60));
    let notice_of = |tracker: &Tracker, id: &str| match tracker.admit(Some(id), None, None) {
        Err(Refused::Ended(notice)) => notice,
        other => panic!("not ended: {other:?}"),
    };
    // Ended while connected: the connection sends the page away once.
    let live = tracker.connect(&entry(None, None), None).unwrap();
    live.signal(Signal::SessionId("live".into()));
    assert!(tracker.end(live.tab_id(), EndReason::Idle));
    let notice = notice_of(&tracker, "live");
    assert_eq!(notice.sent_away, 1);
    assert!(!notice.stays(), "a lost redirect gets another chance");
    tracker.sent_away(Some("live"), None, &notice);
    let notice = notice_of(&tracker, "live");
    assert!(
        notice.stays(),
        "sent away twice and back again: told in place"
    );
    // Ended while away: the first page to come back is sent away, not yet told in place.
    let away = tracker.connect(&entry(None, None), None).unwrap();
    away.signal(Signal::SessionId("away".into()));
    let id = away.tab_id();
    away.closed();
    assert!(tracker.end(id, EndReason::Idle));
    let notice = notice_of(&tracker, "away");
    assert_eq!(notice.sent_away, 0);
    tracker.sent_away(Some("away"), None, &notice);
    assert_eq!(notice_of(&tracker, "away").sent_away, 1);
    assert_eq!(notice_of(&tracker, "away").reason, EndReason::Idle);
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_visibility_reports_does_not_crowd_out_input() {
    let tracker = Tracker::start(hidden_policy(60, 600));
    let conn = tracker.connect(&entry(None, Some(TOKEN)), None).unwrap();
    let id = conn.tab_id();
    // A page switched back and forth many times in a second.
    for _ in 0..20 {
        tracker.report(TOKEN, None, &event(ReportEvent::Hidden));
        tracker.report(TOKEN, None, &event(ReportEvent::Visible));
    }
    advance(Duration::from_secs(30)).await;
    let before = tracker.deadline_of(id).unwrap().at;
    tracker.report(TOKEN, None, &Report::input(Duration::ZERO));
    assert_eq!(
        tracker.deadline_of(id).unwrap().at,
        before + Duration::from_secs(30),
        "the person's input still counts"
    );
    // Input reports have their own bound: a flood of them is answered but stops counting.
    let t = Instant::now();
    for i in 0..20u64 {
        advance(Duration::from_millis(10)).await;
        tracker.report(TOKEN, None, &Report::input(Duration::ZERO));
        if i == 19 {
            let counted = tracker.deadline_of(id).unwrap().at - Duration::from_secs(60);
            assert!(
                counted < t + Duration::from_millis(200),
                "{:?}",
                counted - t
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_shorter_idle_limit_ends_an_idle_tab_at_once_when_it_is_past_it() {
    let tracker = Tracker::start(policy(60));
    let conn = tracker.connect(&entry(None, None), None).unwrap();
    advance(Duration::from_secs(20)).await;
    settle().await;
    assert_eq!(tracker.len(), 1);
    let swapped = Instant::now();
    tracker.set_policy(policy(10));
    assert_eq!(tracker.policy().idle_timeout, Some(Duration::from_secs(10)));
    let ending = ending_within(&conn, Duration::from_secs(5)).await.unwrap();
    assert_eq!(ending.notice.reason, EndReason::Idle);
    assert!(Instant::now() - swapped <= Duration::from_millis(5));
    assert_eq!(tracker.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_new_idle_limit_moves_an_open_tabs_deadline_both_ways() {
    let tracker = Tracker::start(policy(60));
    let t0 = Instant::now();
    let conn = tracker.connect(&entry(None, None), None).unwrap();
    advance(Duration::from_secs(5)).await;
    // Shorter, not yet past: ends 10 s after its last activity, not 60 s.
    tracker.set_policy(policy(10));
    assert_eq!(
        tracker.deadline_of(conn.tab_id()).map(|d| d.at),
        Some(t0 + Duration::from_secs(10))
    );
    // Longer: the old deadline passes and the tab stays, until the new one.
    tracker.set_policy(policy(120));
    assert!(ending_within(&conn, Duration::from_secs(100))
        .await
        .is_none());
    let ending = ending_within(&conn, Duration::from_secs(20)).await.unwrap();
    assert_eq!(ending.notice.reason, EndReason::Idle);
    let lived = Instant::now() - t0;
    assert!(
        lived >= Duration::from_secs(120) && lived <= Duration::from_secs(121),
        "{lived:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lowered_max_total_applies_to_the_next_new_tab() {
    let tracker = Tracker::start(policy(600));
    let first = tracker.connect(&entry(None, None), None).unwrap();
    let _second = tracker.connect(&entry(None, None), None).unwrap();
    tracker.set_policy(TabPolicy {
        max_total: Some(2),
        on_limit: OnLimit::Refuse,
        ..policy(600)
    });
    // The open tabs stay; a third is refused.
    settle().await;
    assert_eq!(tracker.len(), 2);
    assert_eq!(
        tracker.connect(&entry(None, None), None).err(),
        Some(Refused::ServerBusy)
    );
    // Ending the oldest instead makes room by ending one.
    tracker.set_policy(TabPolicy {
        max_total: Some(2),
        on_limit: OnLimit::EndOldest,
        ..policy(600)
    });
    let _third = tracker.connect(&entry(None, None), None).unwrap();
    let ending = ending_within(&first, Duration::from_secs(1)).await.unwrap();
    assert_eq!(ending.notice.reason, EndReason::EvictedCapacity);
    assert_eq!(tracker.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_run_attributed_late_makes_the_tab_busy_then_idle_again() {
    use crate::lifecycle::{Event, Publisher};
    let recorder = Arc::new(Recorder::default());
    let tracker = Tracker::new(
        policy(60),
        crate::store::Stores::memory(),
        Publisher::new(vec![recorder.clone()]),
    );
    let (conn, _) = scripted_tab(&tracker, TOKEN).await;
    let tab = conn.tab_id();
    let busy = |busy| Event::Busy { tab, busy };
    let seen = |event: &Event| {
        recorder
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| *e == event)
            .count()
    };
    let before = seen(&busy(true));
    // The click's message starts the app's work at once; the page's report comes after.
    advance(Duration::from_secs(5)).await;
    conn.signal(RERUN);
    conn.signal(Signal::Running(true));
    assert_eq!(seen(&busy(true)), before, "nobody is known to wait yet");
    advance(Duration::from_millis(30)).await;
    tracker.report(TOKEN, None, &sends(&[40]));
    assert_eq!(seen(&busy(true)), before + 1, "the person waits for it");
    let idle = seen(&busy(false));
    conn.signal(Signal::Running(false));
    assert_eq!(seen(&busy(false)), idle + 1);
}

#[tokio::test(start_paused = true)]
async fn an_unclear_request_is_a_persons_only_when_the_page_reports_it() {
    const UNCLEAR: Signal = Signal::RunRequestedUnclear { fragment: true };
    let tracker = Tracker::start(TabPolicy {
        busy_timeout: Some(Duration::from_secs(600)),
        ..policy(60)
    });
    // Without the page script: never activity, however often.
    let plain = tracker.connect(&entry(None, None), None).unwrap();
    let opened = Instant::now();
    plain.signal(RERUN);
    plain.signal(Signal::Running(true));
    plain.signal(Signal::Running(false));
    for _ in 0..5 {
        advance(Duration::from_secs(5)).await;
        plain.signal(UNCLEAR);
        plain.signal(Signal::Running(true));
        plain.signal(Signal::Running(false));
    }
    assert_eq!(
        tracker.deadline_of(plain.tab_id()).unwrap().at,
        opened + Duration::from_secs(60)
    );
    // With it: the page reports the send, so it is a person's, and waited for.
    let (conn, _) = scripted_tab(&tracker, TOKEN).await;
    let id = conn.tab_id();
    advance(Duration::from_secs(10)).await;
    conn.signal(UNCLEAR);
    conn.signal(Signal::Running(true));
    tracker.report(TOKEN, None, &sends(&[20]));
    assert_eq!(
        tracker.deadline_of(id).unwrap().reason,
        EndReason::BusyIdle,
        "the person waits for it"
    );
}
