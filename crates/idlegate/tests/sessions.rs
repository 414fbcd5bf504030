//! Tab-session behaviour through idlegate, against a real Streamlit, with protocol-level
//! clients that speak to the app's WebSocket exactly like the browser does.

use std::time::Duration;

use anyhow::{ensure, Result};
use idlegate::config::{Config, ConfigBuilder};
use idlegate::lifecycle::Event;
use idlegate::tracker::EndReason;
use testkit::gateway::{Events, TestGateway};
use testkit::stproto::RerunRequest;
use testkit::{StClient, StEvent, StreamlitApp};
use tokio::time::Instant;

const RUN: Duration = Duration::from_secs(20);
/// How long a test waits for a tab's end before it fails (not a timing assertion: those
/// compare the end with the tracker's deadline).
const END: Duration = Duration::from_secs(15);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

async fn streamlit(app: &str) -> StreamlitApp {
    StreamlitApp::test_app(app, None)
        .await
        .expect("streamlit starts")
}

async fn gateway(app: &StreamlitApp, config: ConfigBuilder) -> TestGateway {
    TestGateway::start(&app.base_url(), config)
        .await
        .expect("gateway starts")
}

/// Opens a tab session and waits for its first run, as a page load does. Returns the client
/// and when idlegate saw the run end (the app says so just after its last message, so the
/// client sees the end first): the tab's idle time counts from then.
async fn open_tab(gw: &TestGateway) -> Result<(StClient, Instant)> {
    let mut events = gw.events();
    let mut client = StClient::connect(&gw.url(), None).await?;
    client.send_rerun(false).await?;
    client.run_until_finished(RUN).await?;
    let done = run_ended(&mut events).await?;
    Ok((client, done))
}

/// When idlegate next saw a run a person waits for end, after `events`' position.
async fn run_ended(events: &mut Events) -> Result<Instant> {
    let done = events
        .next_matching(RUN, |e| matches!(e, Event::Busy { busy: false, .. }))
        .await?;
    Ok(done.at)
}

/// Reads what the app sends for `window`. Returns the events and the redirect URL, if the tab
/// was sent away; fails if the connection closes without a redirect.
async fn watch(tab: &mut StClient, window: Duration) -> Result<(Vec<StEvent>, Option<String>)> {
    let deadline = Instant::now() + window;
    let mut events = Vec::new();
    while let Ok(event) = tab
        .next_event(deadline.saturating_duration_since(Instant::now()))
        .await
    {
        match event {
            StEvent::AuthRedirect { url } => return Ok((events, Some(url))),
            StEvent::Closed { code, reason } => {
                anyhow::bail!("closed ({code:?}, {reason}) without a redirect")
            }
            other => events.push(other),
        }
    }
    Ok((events, None))
}

fn count(outcome_markdown: &[&str], prefix: &str) -> Option<u64> {
    outcome_markdown
        .iter()
        .find_map(|m| m.strip_prefix(prefix))
        .and_then(|n| n.trim().parse().ok())
}

#[tokio::test]
async fn idle_tab_is_ended_after_idle_timeout_and_sent_to_the_ended_page() -> Result<()> {
    let app = streamlit("counter.py").await;
    let gw = gateway(&app, Config::builder().idle_timeout(Some(secs(3)))).await;
    let (mut tab, idle_since) = open_tab(&gw).await?;
    assert_eq!(gw.tracker().len(), 1);
    let id = gw.only_tab()?;

    let ended = gw.wait_for_end(id, END).await?;
    assert_eq!(ended.end.reason, EndReason::Idle);
    // On time for the tracker's deadline, and that deadline no later than the run's end
    // (seen here as `idle_since`) plus the limit.
    ended.on_time()?;
    ended.by(idle_since + secs(3))?;
    let after = ended.at - idle_since;
    assert!(
        after >= Duration::from_millis(2900),
        "ended too early: {after:?}"
    );
    let url = tab.wait_for_auth_redirect(secs(5)).await?;
    assert_eq!(url, "/_idlegate/ended?reason=idle");
    assert_eq!(gw.tracker().len(), 0);

    let page = testkit::http::get(&format!("{}{url}", gw.url())).await?;
    assert_eq!(page.status, 200);
    assert!(
        page.text()
            .contains("ended after 3 seconds without activity"),
        "{}",
        page.text()
    );
    Ok(())
}

#[tokio::test]
async fn fragment_timer_reruns_do_not_keep_an_untouched_tab_alive() -> Result<()> {
    let app = streamlit("fragment.py").await;
    let gw = gateway(&app, Config::builder().idle_timeout(Some(secs(4)))).await;
    let mut events = gw.events();
    let mut tab = StClient::connect(&gw.url(), None).await?;
    tab.send_rerun(false).await?;
    let first = tab.run_until_finished(RUN).await?;
    let idle_since = run_ended(&mut events).await?;
    let id = gw.only_tab()?;
    // Read when the tab is left alone: the fragment's timer runs must not move it.
    let deadline = gw.deadline(id)?;
    let fragment_id = first
        .events
        .iter()
        .find_map(|e| match e {
            StEvent::AutoRerun { fragment_id, .. } => Some(fragment_id.clone()),
            _ => None,
        })
        .expect("the app asks for a fragment timer");

    // Behave like the page's timer: an automatic fragment rerun every second (the one-second
    // reads below are the timer's period, an input of the scenario).
    let mut ticks = 0;
    let url = loop {
        tab.send_fragment_auto_rerun(&fragment_id).await?;
        let (events, redirected) = watch(&mut tab, Duration::from_secs(1)).await?;
        ticks += events
            .iter()
            .filter(|e| matches!(e, StEvent::ScriptFinished(_)))
            .count();
        if let Some(url) = redirected {
            break url;
        }
        assert!(
            idle_since.elapsed() < Duration::from_secs(8),
            "tab was never ended"
        );
    };
    assert!(
        ticks >= 2,
        "the fragment kept running ({ticks} fragment runs)"
    );
    assert_eq!(url, "/_idlegate/ended?reason=idle");
    let ended = gw.wait_for_end(id, END).await?;
    ended.on_time_for(deadline)?;
    ensure!(deadline.at <= idle_since + secs(4), "{deadline:?}");
    let after = ended.at - idle_since;
    assert!(after >= Duration::from_millis(3900), "{after:?}");
    Ok(())
}

#[tokio::test]
async fn a_person_changing_a_widget_keeps_the_tab_alive() -> Result<()> {
    let app = streamlit("counter.py").await;
    let gw = gateway(&app, Config::builder().idle_timeout(Some(secs(3)))).await;
    let (mut tab, _) = open_tab(&gw).await?;
    let id = gw.only_tab()?;
    let start = Instant::now();
    let mut quiet = start;
    while start.elapsed() < Duration::from_secs(8) {
        // The person changes a widget every 1.5 s, half the idle limit: the scenario's input.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut events = gw.events();
        tab.send_rerun(false).await?;
        let run = tab.run_until_finished(RUN).await?;
        quiet = run_ended(&mut events).await?;
        ensure!(!run
            .events
            .iter()
            .any(|e| matches!(e, StEvent::AuthRedirect { .. })));
    }
    assert_eq!(gw.tracker().len(), 1, "an active tab must stay");
    // Once the person stops, the tab ends on time.
    let ended = gw.wait_for_end(id, END).await?;
    ended.on_time()?;
    ended.by(quiet + secs(3))?;
    tab.wait_for_auth_redirect(secs(5)).await?;
    Ok(())
}

#[tokio::test]
async fn heartbeats_and_stopped_connections_are_not_activity() -> Result<()> {
    let app = streamlit("counter.py").await;
    let gw = gateway(&app, Config::builder().idle_timeout(Some(secs(3)))).await;
    let (mut tab, idle_since) = open_tab(&gw).await?;
    let id = gw.only_tab()?;
    // Read before the heartbeats: they must not move it.
    let deadline = gw.deadline(id)?;
    ensure!(deadline.at <= idle_since + secs(3), "{deadline:?}");
    for _ in 0..4 {
        tab.send_heartbeat().await?;
        // A heartbeat every half second, as a page sends them: the scenario's input.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    gw.wait_for_end(id, END).await?.on_time_for(deadline)?;
    tab.wait_for_auth_redirect(secs(5)).await?;
    Ok(())
}

#[tokio::test]
async fn a_script_running_longer_than_the_idle_timeout_is_not_ended_while_it_runs() -> Result<()> {
    let app = streamlit("sleepy.py").await;
    let gw = gateway(&app, Config::builder().idle_timeout(Some(secs(2)))).await;
    let (mut tab, _) = open_tab(&gw).await?;
    let id = gw.only_tab()?;
    let mut events = gw.events();
    tab.send_rerun_request(&RerunRequest {
        query_string: "sleep=6".into(),
        ..RerunRequest::default()
    })
    .await?;
    let run = tab.run_until_finished(Duration::from_secs(30)).await?;
    assert!(run.markdown().contains(&"slept: 6"), "{:?}", run.markdown());
    assert!(
        !run.events
            .iter()
            .any(|e| matches!(e, StEvent::AuthRedirect { .. })),
        "ended while running"
    );
    // The idle time counts from the end of the run.
    let finished = run_ended(&mut events).await?;
    let ended = gw.wait_for_end(id, END).await?;
    assert_eq!(ended.end.reason, EndReason::Idle);
    ended.on_time()?;
    ended.by(finished + secs(2))?;
    let after = ended.at - finished;
    assert!(after >= Duration::from_millis(1800), "{after:?}");
    tab.wait_for_auth_redirect(secs(5)).await?;
    Ok(())
}

#[tokio::test]
async fn max_lifetime_ends_even_an_active_tab() -> Result<()> {
    let app = streamlit("counter.py").await;
    let gw = gateway(
        &app,
        Config::builder()
            .idle_timeout(Some(secs(3600)))
            .max_lifetime(Some(secs(4))),
    )
    .await;
    let (mut tab, _) = open_tab(&gw).await?;
    let id = gw.only_tab()?;
    // Read before the person's activity: it must not move a lifetime's end.
    let deadline = gw.deadline(id)?;
    assert_eq!(deadline.reason, EndReason::MaxLifetime);
    // Keep interacting, never idle for more than about a second (the one-second reads
    // below pace the person: the scenario's input).
    let start = Instant::now();
    let url = loop {
        ensure!(
            start.elapsed() < Duration::from_secs(15),
            "the tab was never ended"
        );
        tab.send_rerun(false).await?;
        let (_, redirected) = watch(&mut tab, Duration::from_secs(1)).await?;
        if let Some(url) = redirected {
            break url;
        }
    };
    assert_eq!(url, "/_idlegate/ended?reason=max_lifetime");
    ensure!(deadline.at <= start + secs(4), "{deadline:?}");
    gw.wait_for_end(id, END).await?.on_time_for(deadline)?;
    Ok(())
}

#[tokio::test]
async fn a_reconnect_carrying_an_ended_session_id_is_not_resumed() -> Result<()> {
    let app = streamlit("counter.py").await;
    let gw = gateway(&app, Config::builder().idle_timeout(Some(secs(2)))).await;
    let (mut tab, _) = open_tab(&gw).await?;
    let id = tab.session_id().expect("session id").to_owned();
    tab.wait_for_auth_redirect(Duration::from_secs(10)).await?;

    // The page (say, with its redirect lost) reconnects with its old session id.
    let mut again = StClient::connect(&gw.url(), Some(&id)).await?;
    let url = again.wait_for_auth_redirect(Duration::from_secs(5)).await?;
    assert_eq!(url, "/_idlegate/ended?reason=idle");
    assert_eq!(gw.tracker().len(), 0, "no tab session was opened for it");
    Ok(())
}

#[tokio::test]
async fn a_short_disconnect_resumes_the_same_app_session_with_its_state() -> Result<()> {
    let app = streamlit("counter.py").await;
    let gw = gateway(
        &app,
        Config::builder()
            .idle_timeout(Some(secs(60)))
            .reconnect_grace(secs(10)),
    )
    .await;
    let (mut tab, _) = open_tab(&gw).await?;
    let tab_id = gw.only_tab()?;
    let id = tab.session_id().expect("session id").to_owned();
    tab.close().await?;
    gw.wait_for_event(END, |e| *e == Event::Disconnected { tab: tab_id })
        .await?;
    // The page stays away for 2 s (well within the 10 s grace): the scenario's input.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut again = StClient::connect(&gw.url(), Some(&id)).await?;
    again.send_rerun(false).await?;
    let run = again.run_until_finished(RUN).await?;
    assert_eq!(again.session_id(), Some(id.as_str()), "same app session");
    assert_eq!(
        count(&run.markdown(), "runs: "),
        Some(2),
        "{:?}",
        run.markdown()
    );
    assert_eq!(gw.tracker().len(), 1, "still one tab session");
    let back = gw
        .wait_for_event(
            END,
            |e| matches!(e, Event::TabReconnected { tab, .. } if *tab == tab_id),
        )
        .await?;
    let Event::TabReconnected { away, .. } = back.event else {
        unreachable!()
    };
    assert!(away >= secs(2), "away only {away:?}");
    Ok(())
}

#[tokio::test]
async fn a_tab_that_does_not_come_back_ends_as_closed() -> Result<()> {
    let app = streamlit("counter.py").await;
    let gw = gateway(
        &app,
        Config::builder()
            .idle_timeout(Some(secs(60)))
            .reconnect_grace(secs(2)),
    )
    .await;
    let (mut tab, _) = open_tab(&gw).await?;
    let tab_id = gw.only_tab()?;
    let id = tab.session_id().expect("session id").to_owned();
    tab.close().await?;
    let ended = gw.wait_for_end(tab_id, END).await?;
    assert_eq!(ended.end.reason, EndReason::Closed);
    ended.on_time()?;
    assert!(gw.tracker().is_empty(), "tab still open");
    let mut late = StClient::connect(&gw.url(), Some(&id)).await?;
    assert_eq!(
        late.wait_for_auth_redirect(Duration::from_secs(5)).await?,
        "/_idlegate/ended?reason=closed"
    );
    Ok(())
}

#[tokio::test]
async fn shutdown_sends_every_tab_to_the_ended_page() -> Result<()> {
    let app = streamlit("counter.py").await;
    let gw = gateway(&app, Config::builder().idle_timeout(Some(secs(3600)))).await;
    let (mut a, _) = open_tab(&gw).await?;
    let (mut b, _) = open_tab(&gw).await?;
    let stopping = tokio::spawn(gw.stop(idlegate::tracker::EndReason::Shutdown));
    assert_eq!(
        a.wait_for_auth_redirect(Duration::from_secs(5)).await?,
        "/_idlegate/ended?reason=shutdown"
    );
    assert_eq!(
        b.wait_for_auth_redirect(Duration::from_secs(5)).await?,
        "/_idlegate/ended?reason=shutdown"
    );
    stopping.await?;
    Ok(())
}

#[tokio::test]
async fn malformed_app_messages_close_only_that_connection() -> Result<()> {
    let app = streamlit("counter.py").await;
    let gw = gateway(&app, Config::builder().idle_timeout(Some(secs(60)))).await;
    let (mut good, _) = open_tab(&gw).await?;
    let (mut bad, _) = open_tab(&gw).await?;
    bad.send_raw(vec![0xff, 0xff, 0xff, 0xff, 0xff]).await?;
    bad.wait_for_close(Duration::from_secs(5)).await?;
    good.send_rerun(false).await?;
    let run = good.run_until_finished(RUN).await?;
    assert_eq!(count(&run.markdown(), "runs: "), Some(2));
    Ok(())
}
