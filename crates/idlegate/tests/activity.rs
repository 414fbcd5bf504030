//! What counts as a person, one scenario per test, against a real Streamlit and (where a page
//! is involved) a real headless Chromium, with the page script on and, where that means
//! something, off.
//!
//! Each scenario asserts its verdict and that the tab ends within 1 s of its deadline: the
//! deadline the scenario itself implies (the last thing the person did, plus the limit), never
//! one read back from idlegate. When the tab ended is when its end event reached the test.
//! Test names with `browser` run one at a time.
//!
//! | scenario | verdict |
//! |---|---|
//! | [untouched tab, v1 component on a timer](browser_activity_component_timer_untouched_ends_on_time) | ends on time |
//! | [untouched tab, v2 component on a timer](browser_activity_component_v2_timer_untouched_ends_on_time) | ends on time |
//! | [untouched tab whose own script focuses, clicks and changes inputs on a timer](browser_activity_a_script_imitating_a_person_does_not_keep_a_tab) | ends on time |
//! | [lazy 200k-row table refreshing itself, sorted once](browser_activity_lazy_table_sorted_once_ends_on_time_after_the_sort) | ends on time after the sort |
//! | [non-human message types on a timer, no script](non_human_message_types_on_a_timer_end_on_time) | ends on time |
//! | [moving the mouse and scrolling a long report](browser_activity_reading_and_scrolling_a_long_report_is_kept) | kept |
//! | [typing in a `components.html` frame](browser_activity_typing_in_a_frame_is_kept) | kept |
//! | [clicking a button every few seconds](browser_activity_clicking_every_few_seconds_is_kept) | kept, ends on time after the last click |
//! | [clicking right after forced reconnects](browser_activity_clicks_right_after_forced_reconnects_are_kept) | kept |
//! | [a `while True` first run nobody watches](browser_activity_live_loop_ends_by_the_busy_bound) | ends by the busy bound |
//! | [a 40 MiB upload at 1 MiB/s, idle limit 20 s](a_slow_upload_is_not_ended_midway_and_its_file_is_released_at_the_end) | not ended mid-upload, released at the end |
//! | [the session socket at encoded paths](the_session_socket_at_encoded_paths_is_tracked_and_ends_on_time) | tracked and ended on time |
//! | [tab reports without the tab's login](tab_reports_need_the_login_that_opened_the_tab) | refused, deadline unchanged |

use std::future::Future;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use idlegate::config::{Config, ConfigBuilder};
use idlegate::lifecycle::Event;
use idlegate::tracker::{ActivityRule, EndReason, TabId};
use testkit::gateway::{Ended, TestGateway};
use testkit::netfault::CuttingRelay;
use testkit::proc::try_rss_bytes;
use testkit::upload::upload;
use testkit::{wait_until, Browser, StClient, StreamlitApp};
use tokio::time::Instant;

/// How long a page may take to load and render its first script run.
const LOAD: Duration = Duration::from_secs(30);
/// Poll interval for the page.
const POLL: Duration = Duration::from_millis(100);
/// Poll interval for the tracker's state (the tab's rule, its deadline).
const END_POLL: Duration = Duration::from_millis(20);
/// How early (measurement slack: an action's events happen just before the call returns)
/// and how late an end may come.
const EARLY: Duration = Duration::from_millis(400);
const LATE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    On,
    Off,
}

/// Gateway settings: `tabs` limits, no warning dialog (it would cover the page), and the
/// page script on or off.
fn config(script: Script, tabs: ConfigBuilder) -> ConfigBuilder {
    tabs.warn_before(None).inject(script == Script::On)
}

/// `tabs.idle_timeout` of `n` seconds.
fn idle_limit(n: u64) -> ConfigBuilder {
    Config::builder().idle_timeout(Some(Duration::from_secs(n)))
}

/// The XPath of a Streamlit button labelled `label`.
fn button(label: &str) -> String {
    format!("//button[.//p[text()='{label}']]")
}

/// The number after `prefix` (like `"clicks: "`) in a page text.
fn count(text: &str, prefix: &str) -> Option<u64> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix(prefix))
        .filter_map(|n| n.trim().parse().ok())
        .max()
}

/// Waits for the gateway's only tab and returns its id.
async fn only_tab(gw: &TestGateway) -> Result<TabId> {
    wait_until(LOAD, END_POLL, async || {
        let tabs = gw.tracker().open_tabs();
        ensure!(tabs.len() == 1, "{} open tabs", tabs.len());
        Ok(tabs[0])
    })
    .await
}

/// Waits until the page script has reported for the tab, so the input rule judges it.
async fn script_reports(gw: &TestGateway, id: TabId) -> Result<()> {
    wait_until(Duration::from_secs(10), END_POLL, async || {
        ensure!(
            gw.tracker().rule_of(id) == Some(ActivityRule::Input),
            "rule {:?}",
            gw.tracker().rule_of(id)
        );
        Ok(())
    })
    .await
}

/// Checks which rule judges the tab, as the row expects.
async fn judged_as(gw: &TestGateway, id: TabId, script: Script) -> Result<()> {
    match script {
        Script::On => script_reports(gw, id).await,
        Script::Off => {
            ensure!(gw.tracker().rule_of(id) == Some(ActivityRule::Messages));
            Ok(())
        }
    }
}

/// Waits for tab `id` to end (at most `limit`), checks it ended for `reason`, and returns
/// when its end reached the test.
async fn ended_at(
    gw: &TestGateway,
    id: TabId,
    reason: EndReason,
    limit: Duration,
) -> Result<Instant> {
    let Ended { end, at, .. } = gw.wait_for_end(id, limit).await?;
    ensure!(
        end.reason == reason,
        "tab {id} ended as {}, not {reason}",
        end.reason
    );
    Ok(at)
}

/// Fails unless `ended` is within [`LATE`] after `deadline` (and not before it).
fn on_time(ended: Instant, deadline: Instant) -> Result<()> {
    ensure!(
        ended + EARLY >= deadline,
        "ended {:?} before its deadline",
        deadline - ended
    );
    ensure!(
        ended <= deadline + LATE,
        "ended {:?} after its deadline",
        ended - deadline
    );
    Ok(())
}

/// Fails if tab `id` ends before `until` (or has ended already).
async fn open_until(gw: &TestGateway, id: TabId, until: Instant) -> Result<()> {
    gw.all_events()
        .none_until(
            until,
            |e| matches!(e, Event::TabEnded(end) if end.tab == id),
        )
        .await
        .context("the tab ended while a person was using it")
}

/// Runs a browser row; on failure adds what the page showed and what Streamlit printed.
async fn explain<T>(
    browser: &Browser,
    app: &StreamlitApp,
    body: impl Future<Output = Result<T>>,
) -> Result<T> {
    match body.await {
        Ok(value) => Ok(value),
        Err(e) => {
            let url = browser.current_url().await.unwrap_or_default();
            let text = browser.body_text().await.unwrap_or_default();
            Err(e.context(format!(
                "browser at {url}\n--- page text ---\n{text}\n--- Streamlit output ---\n{}",
                app.output()
            )))
        }
    }
}

/// A Streamlit test app behind a gateway with `config`, and a browser on its first page,
/// which shows `ready`. Returns the tab's id and when the page showed `ready`.
async fn page(
    app_file: &str,
    config: ConfigBuilder,
    ready: &str,
) -> Result<(StreamlitApp, TestGateway, Browser, TabId, Instant)> {
    let app = StreamlitApp::test_app(app_file, None).await?;
    let gw = TestGateway::start(&app.base_url(), config).await?;
    let browser = Browser::start().await?;
    let shown = explain(&browser, &app, async {
        browser.goto(&format!("{}/", gw.url())).await?;
        browser.wait_for_text(ready, LOAD).await?;
        Ok(Instant::now())
    })
    .await?;
    let id = only_tab(&gw).await?;
    Ok((app, gw, browser, id, shown))
}

/// An untouched page whose component sets its value every 2 s: the reruns it causes are
/// nobody's, so the tab ends its idle limit after the page loaded.
async fn component_timer_row(app_file: &str, prefix: &str) -> Result<()> {
    let idle = Duration::from_secs(7);
    let (app, gw, browser, id, loaded) = page(
        app_file,
        config(Script::On, idle_limit(7)),
        &format!("{prefix}0"),
    )
    .await?;
    explain(&browser, &app, async {
        judged_as(&gw, id, Script::On).await?;
        // The component keeps the app busy, every 2 s, with nobody at the page.
        let text = browser
            .wait_for_text(&format!("{prefix}2"), Duration::from_secs(10))
            .await?;
        ensure!(count(&text, prefix) >= Some(2), "{text}");
        let ended = ended_at(&gw, id, EndReason::Idle, Duration::from_secs(20)).await?;
        on_time(ended, loaded + idle)?;
        browser
            .wait_for_url("/_idlegate/ended?reason=idle", Duration::from_secs(5))
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn browser_activity_component_timer_untouched_ends_on_time() -> Result<()> {
    component_timer_row("component_timer.py", "component value: ").await
}

#[tokio::test]
async fn browser_activity_component_v2_timer_untouched_ends_on_time() -> Result<()> {
    component_timer_row("component_v2_timer.py", "v2 count: ").await
}

#[tokio::test]
async fn browser_activity_a_script_imitating_a_person_does_not_keep_a_tab() -> Result<()> {
    let idle = Duration::from_secs(7);
    let (app, gw, browser, id, loaded) = page(
        "scripted_input.py",
        config(Script::On, idle_limit(7)),
        "scripted input ready",
    )
    .await?;
    explain(&browser, &app, async {
        judged_as(&gw, id, Script::On).await?;
        // The script flips the app's checkbox (the app reruns) while nobody is there.
        browser
            .wait_for_text("auto: True", Duration::from_secs(10))
            .await?;
        let ended = ended_at(&gw, id, EndReason::Idle, Duration::from_secs(20)).await?;
        on_time(ended, loaded + idle)
    })
    .await
}

/// A 200k-row table that loads rows lazily and refreshes itself every 5 s; a person sorts it
/// once. After each refresh the page fetches the rows again in that order, by itself.
async fn lazy_table_row(script: Script) -> Result<()> {
    let idle = Duration::from_secs(12);
    let (app, gw, browser, id, _) = page(
        "lazy_table.py",
        config(script, idle_limit(12)),
        "rows: 200000",
    )
    .await?;
    explain(&browser, &app, async {
        judged_as(&gw, id, script).await?;
        // The person looks at the table for a second before sorting it: the scenario's input.
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Click the header of the second data column: the grid sorts by it.
        let grid = "//*[@data-testid='stDataFrame']";
        let size = browser
            .run_js(
                "const r = document.querySelector('[data-testid=\"stDataFrame\"]')\
                 .getBoundingClientRect(); return [r.width, r.height];",
                vec![],
            )
            .await?;
        let (width, height) = (
            size[0].as_f64().context("grid width")?,
            size[1].as_f64().context("grid height")?,
        );
        browser
            .click_at(grid, (-width / 2.0 + 210.0, -height / 2.0 + 17.0), LOAD)
            .await?;
        let sorted = Instant::now();
        // The table refreshes itself (and refetches its rows) twice before the end.
        let ended = ended_at(&gw, id, EndReason::Idle, Duration::from_secs(30)).await?;
        let text = browser.body_text().await.unwrap_or_default();
        on_time(ended, sorted + idle).with_context(|| format!("page: {text}"))?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn browser_activity_lazy_table_sorted_once_ends_on_time_after_the_sort() -> Result<()> {
    lazy_table_row(Script::On).await
}

#[tokio::test]
async fn browser_activity_lazy_table_sorted_once_ends_on_time_after_the_sort_without_the_script(
) -> Result<()> {
    lazy_table_row(Script::Off).await
}

#[tokio::test]
async fn non_human_message_types_on_a_timer_end_on_time() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = TestGateway::start(&app.base_url(), config(Script::Off, idle_limit(4))).await?;
    let mut tab = StClient::connect(&gw.url(), None).await?;
    tab.send_rerun(false).await?;
    tab.run_until_finished(LOAD).await?;
    let loaded = Instant::now();
    let id = only_tab(&gw).await?;
    // What a page or any client sends without a person: git info (the deploy button's),
    // the settings toggle, heartbeats, upload URLs, table rows in an unchanged order, a
    // fragment timer's rerun.
    let chunk = [
        0x9a, 0x01, 0x0c, 0x32, 0x0a, 0x0a, 0x03, b's', b'r', b'c', 0x10, 0xd0, 0x0f, 0x18, 0x64,
    ];
    let messages: [&[u8]; 6] = [
        &[0x60, 0x01],
        &[0x30, 0x00],
        &[0x88, 0x01, 0x01],
        &[0x82, 0x01, 0x00],
        &chunk,
        &[0x5a, 0x02, 0x30, 0x01],
    ];
    let mut sent = 0;
    let ended = loop {
        tab.send_raw(messages[sent % messages.len()].to_vec())
            .await?;
        sent += 1;
        // A message every 0.4 s (the wait for the end paces them): the scenario's input.
        if let Ok(ended) = ended_at(&gw, id, EndReason::Idle, Duration::from_millis(400)).await {
            break ended;
        }
        ensure!(loaded.elapsed() < Duration::from_secs(10), "never ended");
    };
    ensure!(sent >= 8, "only {sent} messages were sent");
    on_time(ended, loaded + Duration::from_secs(4))
}

#[tokio::test]
async fn browser_activity_reading_and_scrolling_a_long_report_is_kept() -> Result<()> {
    let idle = Duration::from_secs(6);
    let (app, gw, browser, id, _) = page(
        "long_report.py",
        config(Script::On, idle_limit(6)),
        "report ready",
    )
    .await?;
    explain(&browser, &app, async {
        judged_as(&gw, id, Script::On).await?;
        // Reading for twice the idle limit: the mouse moves now and then, the wheel scrolls.
        let until = Instant::now() + 2 * idle;
        let mut last = Instant::now();
        let mut round = 0.0;
        while Instant::now() < until {
            browser
                .move_mouse(
                    (200.0 + round, 300.0),
                    (4.0, 2.0),
                    8,
                    Duration::from_millis(400),
                )
                .await?;
            browser.wheel((400, 300), 240).await?;
            last = Instant::now();
            round += 10.0;
            open_until(&gw, id, last + Duration::from_millis(1200)).await?;
        }
        let scrolled = browser
            .run_js(
                "return document.querySelector('[data-testid=\"stMain\"]').scrollTop;",
                vec![],
            )
            .await?;
        ensure!(
            scrolled.as_f64().unwrap_or(0.0) > 1000.0,
            "the report did not scroll: {scrolled}"
        );
        let ended = ended_at(&gw, id, EndReason::Idle, Duration::from_secs(15)).await?;
        on_time(ended, last + idle)
    })
    .await
}

#[tokio::test]
async fn browser_activity_typing_in_a_frame_is_kept() -> Result<()> {
    let idle = Duration::from_secs(6);
    let (app, gw, browser, id, _) = page(
        "frame_text.py",
        config(Script::On, idle_limit(6)),
        "frame ready",
    )
    .await?;
    explain(&browser, &app, async {
        judged_as(&gw, id, Script::On).await?;
        let client = browser.client();
        let frame = wait_until(LOAD, POLL, async || {
            Ok(client
                .find(testkit::fantoccini::Locator::Css("iframe"))
                .await?)
        })
        .await?;
        frame.enter_frame().await?;
        let notes = wait_until(LOAD, POLL, async || {
            Ok(client
                .find(testkit::fantoccini::Locator::Css("#notes"))
                .await?)
        })
        .await?;
        let until = Instant::now() + 2 * idle;
        let mut last = Instant::now();
        while Instant::now() < until {
            notes.send_keys("note ").await?;
            last = Instant::now();
            open_until(&gw, id, last + Duration::from_millis(900)).await?;
        }
        let typed: String = notes.prop("value").await?.unwrap_or_default();
        client.enter_parent_frame().await?;
        ensure!(typed.starts_with("note note"), "typed {typed:?}");
        let ended = ended_at(&gw, id, EndReason::Idle, Duration::from_secs(15)).await?;
        on_time(ended, last + idle)
    })
    .await
}

async fn clicking_row(script: Script) -> Result<()> {
    let idle = Duration::from_secs(6);
    let (app, gw, browser, id, _) =
        page("counter.py", config(script, idle_limit(6)), "clicks: 0").await?;
    explain(&browser, &app, async {
        judged_as(&gw, id, script).await?;
        let mut last = Instant::now();
        for clicks in 1..=6 {
            browser
                .click(&button("Increment"), Duration::from_secs(10))
                .await?;
            last = Instant::now();
            browser
                .wait_for_text(&format!("clicks: {clicks}"), Duration::from_secs(10))
                .await?;
            open_until(&gw, id, last + Duration::from_millis(2500)).await?;
        }
        let ended = ended_at(&gw, id, EndReason::Idle, Duration::from_secs(15)).await?;
        on_time(ended, last + idle)?;
        browser
            .wait_for_url("/_idlegate/ended?reason=idle", Duration::from_secs(5))
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn browser_activity_clicking_every_few_seconds_is_kept() -> Result<()> {
    clicking_row(Script::On).await
}

#[tokio::test]
async fn browser_activity_clicking_every_few_seconds_is_kept_without_the_script() -> Result<()> {
    clicking_row(Script::Off).await
}

/// A load balancer cuts the page's connections every few seconds; the person clicks right
/// after each reconnect.
async fn reconnect_row(script: Script) -> Result<()> {
    let idle = Duration::from_secs(7);
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = TestGateway::start(&app.base_url(), config(script, idle_limit(7))).await?;
    let relay = CuttingRelay::start(gw.addr()).await?;
    let browser = Browser::start().await?;
    explain(&browser, &app, async {
        browser.goto(&format!("{}/", relay.url())).await?;
        browser.wait_for_text("clicks: 0", LOAD).await?;
        let id = only_tab(&gw).await?;
        judged_as(&gw, id, script).await?;
        let mut last = Instant::now();
        for round in 1..=4 {
            let accepted = relay.accepted();
            let mut events = gw.events();
            relay.cut();
            let cut = Instant::now();
            // The page reconnects on its own within a second; the person clicks as soon as
            // the button works again, well within 2 s of the cut.
            events
                .next_matching(
                    LOAD,
                    |e| matches!(e, Event::TabReconnected { tab, .. } if *tab == id),
                )
                .await
                .context("the page did not come back to its tab")?;
            ensure!(
                relay.accepted() > accepted,
                "no new connection through the relay"
            );
            // Half a second for the person to see the page work again: the scenario's input.
            tokio::time::sleep(Duration::from_millis(500)).await;
            browser
                .click(&button("Increment"), Duration::from_secs(5))
                .await?;
            last = Instant::now();
            ensure!(
                last - cut <= Duration::from_secs(2),
                "clicked {:?} after the cut",
                last - cut
            );
            browser
                .wait_for_text(&format!("clicks: {round}"), Duration::from_secs(10))
                .await?;
            open_until(&gw, id, cut + Duration::from_secs(5)).await?;
        }
        ensure!(
            gw.tracker().open_tabs() == vec![id],
            "the same tab through every reconnect"
        );
        let ended = ended_at(&gw, id, EndReason::Idle, Duration::from_secs(15)).await?;
        on_time(ended, last + idle)
    })
    .await
}

#[tokio::test]
async fn browser_activity_clicks_right_after_forced_reconnects_are_kept() -> Result<()> {
    reconnect_row(Script::On).await
}

#[tokio::test]
async fn browser_activity_clicks_right_after_forced_reconnects_are_kept_without_the_script(
) -> Result<()> {
    reconnect_row(Script::Off).await
}

/// A page whose first run never finishes (`while True`, a chart updated every second), with
/// nobody at it: it ends `tabs.busy_timeout` after it opened.
async fn live_loop_row(script: Script) -> Result<()> {
    let app = StreamlitApp::test_app("live_loop.py", None).await?;
    let gw = TestGateway::start(
        &app.base_url(),
        config(
            script,
            idle_limit(4).busy_timeout(Some(Duration::from_secs(10))),
        ),
    )
    .await?;
    let browser = Browser::start().await?;
    explain(&browser, &app, async {
        browser.goto(&format!("{}/", gw.url())).await?;
        let id = only_tab(&gw).await?;
        let opened = Instant::now();
        browser.wait_for_text("tick 2", LOAD).await?;
        judged_as(&gw, id, script).await?;
        let ended = ended_at(&gw, id, EndReason::BusyIdle, Duration::from_secs(20)).await?;
        on_time(ended, opened + Duration::from_secs(10))?;
        browser
            .wait_for_url("/_idlegate/ended?reason=busy_idle", Duration::from_secs(5))
            .await?;
        let text = browser.wait_for_text("Session ended", LOAD).await?;
        ensure!(
            text.contains("kept running for 10 seconds without anyone using this page"),
            "{text}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn browser_activity_live_loop_ends_by_the_busy_bound() -> Result<()> {
    live_loop_row(Script::On).await
}

#[tokio::test]
async fn browser_activity_live_loop_ends_by_the_busy_bound_without_the_script() -> Result<()> {
    live_loop_row(Script::Off).await
}

/// Reads what the app sends until `until` (answering its pings, as a browser does); fails if
/// the connection closes.
async fn pump(tab: &mut StClient, until: Instant) -> Result<()> {
    while Instant::now() < until {
        if let Ok(testkit::StEvent::Closed { code, reason }) =
            tab.next_event(until - Instant::now()).await
        {
            bail!("the app closed the connection ({code:?}, {reason})");
        }
    }
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

#[tokio::test]
async fn a_slow_upload_is_not_ended_midway_and_its_file_is_released_at_the_end() -> Result<()> {
    let app = StreamlitApp::test_app("upload.py", None).await?;
    let gw = TestGateway::start(&app.base_url(), config(Script::Off, idle_limit(20))).await?;
    let mut tab = StClient::connect(&gw.url(), None).await?;
    tab.send_rerun(false).await?;
    tab.run_until_finished(LOAD).await?;
    let session = tab.session_id().context("session id")?.to_owned();
    let id = only_tab(&gw).await?;
    let baseline = try_rss_bytes(app.pid())?;

    // 40 MiB at 1 MiB/s: twice the idle limit.
    let sending = tokio::spawn({
        let (url, session) = (gw.url(), session.clone());
        async move {
            upload(
                &url,
                "/_stcore/upload_file",
                &session,
                "file-1",
                40 << 20,
                Some(1 << 20),
            )
            .await
        }
    });
    // Busy all along: the deadline is the busy bound, not the idle limit. Meanwhile the
    // page answers the app's pings, as a browser does. The 25 s, past the idle limit, are the
    // scenario's input.
    pump(&mut tab, Instant::now() + Duration::from_secs(25)).await?;
    let deadline = gw.tracker().deadline_of(id).context("ended mid-upload")?;
    ensure!(deadline.reason == EndReason::BusyIdle, "{deadline:?}");
    while !sending.is_finished() {
        pump(&mut tab, Instant::now() + Duration::from_millis(200)).await?;
    }
    let uploaded = Instant::now();
    ensure!(sending.await?? == 204, "the app refused the upload");
    ensure!(gw.tracker().open_tabs() == vec![id], "not ended mid-upload");
    let holding = try_rss_bytes(app.pid())?;
    ensure!(
        holding >= baseline + (35 << 20),
        "the upload is held: {:.0} -> {:.0} MiB",
        mib(baseline),
        mib(holding)
    );
    // The idle time counts from the end of the upload.
    let ended = ended_at(&gw, id, EndReason::Idle, Duration::from_secs(30)).await?;
    on_time(ended, uploaded + Duration::from_secs(20))?;
    let redirect = tab.wait_for_auth_redirect(Duration::from_secs(5)).await?;
    ensure!(redirect.ends_with("reason=idle"), "{redirect}");
    tab.close().await.ok();
    // Released at the end: the app no longer holds the file.
    wait_until(
        Duration::from_secs(40),
        Duration::from_millis(250),
        async || {
            let rss = try_rss_bytes(app.pid())?;
            ensure!(
                rss < baseline + (10 << 20),
                "RSS still {:.0} MiB (baseline {:.0} MiB)",
                mib(rss),
                mib(baseline)
            );
            Ok(())
        },
    )
    .await
    .with_context(|| app.output())
}

#[tokio::test]
async fn the_session_socket_at_encoded_paths_is_tracked_and_ends_on_time() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = TestGateway::start(&app.base_url(), config(Script::Off, idle_limit(3))).await?;
    for path in [
        "/_stcore/%73tream",
        "/_stcore%2Fstream",
        "/%5Fstcore/stream",
        "/%5fstcore/%73%74%72%65%61%6d",
        "//_stcore/./stream",
        "/x/../_stcore/stream",
    ] {
        let upgrade = StClient::connect_at_path(&gw.url(), path).await?;
        let testkit::stclient::Upgrade::Accepted(mut tab) = upgrade else {
            bail!("{path}: refused; it reaches the app's session socket, so it must be tracked");
        };
        tab.send_rerun(false).await?;
        tab.run_until_finished(LOAD).await?;
        let loaded = Instant::now();
        let id = only_tab(&gw).await.with_context(|| path.to_owned())?;
        let ended = ended_at(&gw, id, EndReason::Idle, Duration::from_secs(10)).await?;
        on_time(ended, loaded + Duration::from_secs(3)).with_context(|| path.to_owned())?;
        let redirect = tab.wait_for_auth_redirect(Duration::from_secs(5)).await?;
        ensure!(redirect.ends_with("reason=idle"), "{path}: {redirect}");
    }
    // Sockets anywhere else never reach the app.
    for path in [
        "/_stcore/health",
        "/other/socket",
        "/_stcore/stream/x",
        "/%2e%2e/%2e",
    ] {
        match StClient::connect_at_path(&gw.url(), path).await? {
            testkit::stclient::Upgrade::Refused { status, .. } => {
                ensure!(status == 404, "{path}: {status}")
            }
            testkit::stclient::Upgrade::Accepted(_) => bail!("{path}: an untracked socket"),
        }
    }
    ensure!(gw.tracker().is_empty());

    // An upload at an encoded path is an upload: the tab is busy while it streams.
    let mut tab = StClient::connect(&gw.url(), None).await?;
    tab.send_rerun(false).await?;
    tab.run_until_finished(LOAD).await?;
    let session = tab.session_id().context("session id")?.to_owned();
    let id = only_tab(&gw).await?;
    let url = gw.url();
    let status = upload(
        &url,
        "/_stcore/upload%5Ffile",
        &session,
        "file-1",
        4 << 20,
        Some(1 << 20),
    );
    // While the upload streams, the deadline becomes the busy bound (before, it is the
    // idle limit; the upload takes 4 s, longer than that limit).
    let watch = async {
        loop {
            let deadline = gw.tracker().deadline_of(id).context("ended mid-upload")?;
            if deadline.reason == EndReason::BusyIdle {
                return anyhow::Ok(());
            }
            // Looks at the tracker every 20 ms; the upload's end bounds the wait.
            tokio::time::sleep(END_POLL).await;
        }
    };
    tokio::pin!(status);
    tokio::select! {
        watched = watch => {
            watched?;
            ensure!(status.await? == 204);
        }
        status = &mut status => bail!("the upload ({:?}) ended before it made the tab busy", status?),
    }
    Ok(())
}

/// Signs `user` in with the password form and returns the login cookie (`name=value`).
async fn signed_in(gw: &TestGateway, user: &str, password: &str) -> Result<String> {
    let form = format!(
        "username={user}&password={}&return=%2F",
        password.replace(' ', "+")
    );
    let request = http::Request::post(format!("{}/_idlegate/login", gw.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "same-origin")
        .body(http_body_util::Full::new(bytes::Bytes::from(form)))?;
    let response = testkit::http::send(request).await?;
    ensure!(response.status == 303, "sign-in: {}", response.status);
    response
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()
                .filter(|c| c.starts_with("__Host-idlegate-login="))
        })
        .map(str::to_owned)
        .context("no login cookie")
}

async fn report(gw: &TestGateway, token: &str, cookie: Option<&str>) -> Result<u16> {
    let mut request = http::Request::post(format!("{}/_idlegate/tab", gw.url()))
        .header("content-type", "application/json")
        .header("sec-fetch-site", "same-origin");
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let body = format!(r#"{{"tab":"{token}","event":"activity","inputAgeMs":0}}"#);
    let response =
        testkit::http::send(request.body(http_body_util::Full::new(bytes::Bytes::from(body)))?)
            .await?;
    Ok(response.status.as_u16())
}

#[tokio::test]
async fn tab_reports_need_the_login_that_opened_the_tab() -> Result<()> {
    const PASSWORD: &str = "correct horse battery staple";
    let dir = tempfile::tempdir()?;
    let users = dir.path().join("users");
    let hash = idlegate::auth::password::hash(PASSWORD).map_err(anyhow::Error::msg)?;
    std::fs::write(&users, format!("alice:{hash}\nbob:{hash}\n"))?;
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = TestGateway::start(&app.base_url(), idle_limit(60).users_file(&users)).await?;
    let alice = signed_in(&gw, "alice", PASSWORD).await?;
    let bob = signed_in(&gw, "bob", PASSWORD).await?;
    let token = "alicesPageToken_0123456";
    let mut tab =
        StClient::connect_as_page_adding(&gw.url(), token, &[("cookie", alice.as_str())]).await?;
    tab.send_rerun(false).await?;
    tab.run_until_finished(LOAD).await?;
    let id = only_tab(&gw).await?;
    // The app says the run is over just after its last message: read the deadline once
    // idlegate has seen that.
    gw.wait_for_event(LOAD, |e| {
        *e == Event::Busy {
            tab: id,
            busy: false,
        }
    })
    .await?;
    let before = gw.tracker().deadline_of(id).context("open")?;
    // Two seconds pass before the reports, so any report that counted would move the
    // deadline visibly: the scenario's input.
    tokio::time::sleep(Duration::from_secs(2)).await;

    ensure!(report(&gw, token, None).await? == 403, "no login");
    ensure!(report(&gw, token, Some(&bob)).await? == 404, "bob's login");
    ensure!(
        gw.tracker().deadline_of(id) == Some(before),
        "the deadline moved"
    );
    ensure!(gw.tracker().rule_of(id) == Some(ActivityRule::Messages));

    // Bob opening the session socket with Alice's token gets a tab of his own.
    let mut bobs =
        StClient::connect_as_page_adding(&gw.url(), token, &[("cookie", bob.as_str())]).await?;
    bobs.send_rerun(false).await?;
    bobs.run_until_finished(LOAD).await?;
    ensure!(gw.tracker().len() == 2, "{} tabs", gw.tracker().len());
    ensure!(
        gw.tracker().deadline_of(id) == Some(before),
        "alice's tab changed"
    );

    ensure!(
        report(&gw, token, Some(&alice)).await? == 200,
        "alice's own"
    );
    ensure!(gw.tracker().deadline_of(id).context("open")?.at > before.at);
    Ok(())
}
