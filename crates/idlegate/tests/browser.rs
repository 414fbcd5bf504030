//! End-to-end tests in a real headless Chromium: an unmodified Streamlit app (from the
//! project's virtualenv) behind an in-process idlegate, driven through WebDriver exactly as
//! a person would use it.
//!
//! Every test name contains `browser`, so nextest runs them one at a time (see
//! `.config/nextest.toml`). Start-up waits are generous because Chromium and Streamlit are
//! slow to start on a busy machine; only the idle-timing assertions are tight.

use std::future::Future;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use idlegate::config::Config;
use idlegate::lifecycle::Event;
use idlegate::tracker::{EndReason, TabId};
use testkit::gateway::TestGateway;
use testkit::venv::workspace_root;
use testkit::{wait_until, Browser, StreamlitApp};
use tokio::time::Instant;

/// How long a page may take to load and render its first script run.
const LOAD: Duration = Duration::from_secs(30);
/// How long one widget interaction may take to show its result.
const RENDER: Duration = Duration::from_secs(15);
/// Poll interval for everything that watches the page.
const POLL: Duration = Duration::from_millis(100);
/// How long after its tab ended (the end's event) a page may take to show the ended page:
/// one WebSocket message, then a page load.
const REDIRECT: Duration = Duration::from_secs(2);

/// The path of idlegate's "session ended" page.
const ENDED_PATH: &str = "/_idlegate/ended";

/// The XPath of a Streamlit button labelled `label`.
fn button(label: &str) -> String {
    format!("//button[.//p[text()='{label}']]")
}

async fn streamlit(app: &str) -> Result<StreamlitApp> {
    StreamlitApp::test_app(app, None).await
}

async fn gateway(app: &StreamlitApp, idle_timeout: Duration) -> Result<TestGateway> {
    TestGateway::start(
        &app.base_url(),
        Config::builder().idle_timeout(Some(idle_timeout)),
    )
    .await
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// When tab `id`'s page-load run finished, as its event reached the test: an untouched
/// tab's idle time counts from then.
async fn page_load_finished(gw: &TestGateway, id: TabId) -> Result<Instant> {
    let finished = gw
        .wait_for_event(LOAD, |e| {
            *e == Event::Busy {
                tab: id,
                busy: false,
            }
        })
        .await?;
    Ok(finished.at)
}

/// Runs a test body; if it fails, adds what the browser showed and what Streamlit printed.
async fn explain<T>(
    browser: &Browser,
    app: &StreamlitApp,
    body: impl Future<Output = Result<T>>,
) -> Result<T> {
    match body.await {
        Ok(value) => Ok(value),
        Err(e) => {
            let url = browser
                .current_url()
                .await
                .unwrap_or_else(|e| format!("<unknown: {e:#}>"));
            let text = browser
                .body_text()
                .await
                .unwrap_or_else(|e| format!("<unknown: {e:#}>"));
            Err(e.context(format!(
                "browser at {url}\n--- page text ---\n{text}\n--- Streamlit output ---\n{}",
                app.output()
            )))
        }
    }
}

/// Waits for the tab to show the ended page for an idle timeout, at most [`REDIRECT`] after
/// `ended` (when the tab's end reached the test), and checks its content. Returns the page
/// text.
async fn lands_on_idle_ended_page(
    browser: &Browser,
    ended: Instant,
    since: Instant,
    limit_text: &str,
) -> Result<String> {
    let url = browser
        .wait_for_url(
            &format!("{ENDED_PATH}?reason=idle"),
            (ended + REDIRECT).saturating_duration_since(Instant::now()),
        )
        .await
        .with_context(|| {
            format!(
                "the idle tab was not sent to the ended page within {REDIRECT:?} of its end \
                 ({:.1?} after its last activity)",
                since.elapsed()
            )
        })?;
    let after = since.elapsed();
    let text = browser.wait_for_text("Session ended", RENDER).await?;
    ensure!(
        text.contains(&format!(
            "Your session ended after {limit_text} without activity."
        )),
        "ended page ({url}, reached {after:.1?} after the last activity) does not name the \
         limit {limit_text:?}:\n{text}"
    );
    Ok(text)
}

/// Reads the number after `prefix` (like `"clicks: "`) in a page text.
fn count(text: &str, prefix: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.trim().strip_prefix(prefix))
        .and_then(|n| n.trim().parse().ok())
}

#[tokio::test]
async fn browser_multipage_app_works_through_idlegate() -> Result<()> {
    let app = streamlit("multipage/app.py").await?;
    let gw = gateway(&app, secs(60)).await?;
    let browser = Browser::start().await?;
    let base = gw.url();
    explain(&browser, &app, async {
        browser.goto(&format!("{base}/")).await?;
        browser.wait_for_text("Multipage home", LOAD).await?;

        // To page 2 through the sidebar navigation.
        browser
            .click(
                "//*[@data-testid='stSidebarNav']//a[contains(@href, 'Second')]",
                LOAD,
            )
            .await?;
        let url = browser.wait_for_url("/Second", RENDER).await?;
        ensure!(url.starts_with(&base), "left the gateway: {url}");
        browser.wait_for_text("Second page", RENDER).await?;

        // A widget on page 2 works through idlegate.
        browser
            .type_into(
                "//*[@data-testid='stTextInput']//input",
                "Ada Lovelace\u{E007}",
                RENDER,
            )
            .await?;
        browser.wait_for_text("Hello, Ada Lovelace", RENDER).await?;

        // Back to page 1 through the sidebar.
        browser
            .click("(//*[@data-testid='stSidebarNav']//a)[1]", RENDER)
            .await?;
        wait_until(RENDER, POLL, async || {
            let url = browser.current_url().await?;
            ensure!(!url.contains("/Second"), "still at {url}");
            let text = browser.body_text().await?;
            ensure!(
                text.contains("Multipage home") && !text.contains("Second page"),
                "page 1 not shown yet:\n{text}"
            );
            Ok(())
        })
        .await?;

        // A deep link to page 2, loaded directly through idlegate.
        browser.goto(&format!("{base}/Second")).await?;
        browser.wait_for_text("Second page", LOAD).await?;
        let url = browser.current_url().await?;
        ensure!(url.ends_with("/Second"), "deep link ended up at {url}");
        ensure!(
            !gw.tracker().is_empty(),
            "the page's session is not tracked by idlegate"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn browser_widget_interaction_counts_and_an_idle_tab_lands_on_the_ended_page() -> Result<()> {
    let app = streamlit("counter.py").await?;
    let gw = gateway(&app, secs(5)).await?;
    let browser = Browser::start().await?;
    let base = gw.url();
    explain(&browser, &app, async {
        browser.goto(&format!("{base}/")).await?;
        browser.wait_for_text("clicks: 0", LOAD).await?;
        let id = gw.wait_for_tab(1, LOAD).await?;

        browser.click(&button("Increment"), RENDER).await?;
        browser.wait_for_text("clicks: 1", RENDER).await?;
        browser.click(&button("Increment"), RENDER).await?;
        // The idle time counts from the end of the click's run, which is after this.
        let last_click = Instant::now();
        let text = browser.wait_for_text("clicks: 2", RENDER).await?;
        ensure!(
            count(&text, "runs: ") == Some(3),
            "expected 3 runs (load and two clicks):\n{text}"
        );

        // Untouched from here on: ended on time for the deadline the last click's run set,
        // that deadline no later than 2 s past the limit after the click, and never before
        // the limit after the click minus 1 s.
        let ended = gw.wait_for_end(id, secs(20)).await?;
        ensure!(ended.end.reason == EndReason::Idle, "{:?}", ended.end);
        ended.on_time()?;
        ended.by(last_click + secs(7))?;
        ensure!(
            ended.at >= last_click + secs(4),
            "the tab ended {:.1?} after its last click, too early",
            ended.at - last_click
        );
        let text = lands_on_idle_ended_page(&browser, ended.at, last_click, "5 seconds").await?;
        let ended_after = last_click.elapsed();
        ensure!(
            text.contains("Start a new session"),
            "no restart link:\n{text}"
        );
        ensure!(
            gw.tracker().is_empty(),
            "{} tab session(s) still tracked after the tab ended",
            gw.tracker().len()
        );
        eprintln!("idle tab reached the ended page {ended_after:.1?} after the last click");

        let dir = workspace_root().join("docs/screenshots");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        browser.screenshot_png(dir.join("ended.png")).await?;

        // "Start a new session" leads back to the app with a fresh session.
        let restart = "//a[@id='idlegate-restart']";
        browser.focus(restart, RENDER).await?;
        let link = browser.client().active_element().await?;
        let href = link.attr("href").await?.unwrap_or_default();
        ensure!(href == "/", "restart link goes to {href:?}");
        ensure!(
            link.text().await? == "Start a new session",
            "the focused element is not the restart link"
        );
        link.click().await.context("clicking Start a new session")?;
        wait_until(LOAD, POLL, async || {
            let url = browser.current_url().await?;
            ensure!(!url.contains(ENDED_PATH), "still on {url}");
            let text = browser.body_text().await?;
            ensure!(
                count(&text, "runs: ") == Some(1) && count(&text, "clicks: ") == Some(0),
                "no fresh session yet (want runs: 1, clicks: 0):\n{text}"
            );
            Ok(())
        })
        .await?;
        ensure!(
            gw.tracker().len() == 1,
            "expected 1 tracked tab session, found {}",
            gw.tracker().len()
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn browser_auto_refreshing_fragment_does_not_keep_an_untouched_tab_alive() -> Result<()> {
    let app = streamlit("fragment.py").await?;
    let gw = gateway(&app, secs(5)).await?;
    let browser = Browser::start().await?;
    let base = gw.url();
    explain(&browser, &app, async {
        browser.goto(&format!("{base}/")).await?;
        // The page-load run ends after the document has loaded: the idle time counts from a
        // moment later than this.
        let loaded = Instant::now();
        let id = gw.wait_for_tab(1, LOAD).await?;
        let text = browser.wait_for_text("ticks: ", LOAD).await?;
        let first = count(&text, "ticks: ").context("no tick count")?;

        // The fragment's timer runs through idlegate.
        let ticks = wait_until(RENDER, POLL, async || {
            let text = browser.body_text().await?;
            let now = count(&text, "ticks: ").context("no tick count")?;
            ensure!(now >= first + 2, "ticks went from {first} only to {now}");
            Ok(now)
        })
        .await?;
        eprintln!(
            "ticks went from {first} to {ticks} within {:.1?} of load",
            loaded.elapsed()
        );

        // The page-load run's end set the deadline; the fragment's runs did not move it.
        let load_run = page_load_finished(&gw, id).await?;
        let ended = gw.wait_for_end(id, secs(20)).await?;
        ensure!(ended.end.reason == EndReason::Idle, "{:?}", ended.end);
        ended.on_time()?;
        ended.by(load_run + secs(5))?;
        ensure!(
            ended.at >= loaded + secs(4),
            "the tab ended {:.1?} after load, too early",
            ended.at - loaded
        );
        lands_on_idle_ended_page(&browser, ended.at, loaded, "5 seconds").await?;
        eprintln!(
            "the untouched tab reached the ended page {:.1?} after load",
            loaded.elapsed()
        );
        ensure!(
            gw.tracker().is_empty(),
            "{} tab session(s) still tracked after the tab ended",
            gw.tracker().len()
        );
        Ok(())
    })
    .await
}

/// Makes the current page record, in the tab's `sessionStorage` (which survives navigation
/// within the origin), whether the browser later shows it again from its back/forward cache
/// instead of loading it anew.
async fn watch_for_page_cache_restore(browser: &Browser) -> Result<()> {
    browser
        .client()
        .execute(
            "sessionStorage.removeItem('restored-from-page-cache');\
             window.addEventListener('pageshow', (e) => {\
               if (e.persisted) { sessionStorage.setItem('restored-from-page-cache', '1'); }\
             });",
            vec![],
        )
        .await
        .context("installing a pageshow listener")?;
    Ok(())
}

/// Whether a page watched by [`watch_for_page_cache_restore`] came back from the page cache.
async fn was_restored_from_page_cache(browser: &Browser) -> Result<bool> {
    let flag = browser
        .client()
        .execute(
            "return sessionStorage.getItem('restored-from-page-cache');",
            vec![],
        )
        .await?;
    Ok(flag == "1")
}

/// What the tab settled on after going back to an app page whose session had ended.
#[derive(Debug, PartialEq)]
enum AfterBack {
    /// idlegate's ended page.
    Ended,
    /// The app, with a fresh, live session.
    FreshSession,
}

/// Lets an idle counter tab end, goes back to the app page, and waits (briefly: a page stuck
/// on CONNECTING fails here) until the tab shows either the ended page again or the app
/// with a fresh session. Returns that, and whether the page came from the page cache.
async fn end_and_go_back(browser: &Browser, gw: &TestGateway) -> Result<(AfterBack, bool)> {
    browser.goto(&format!("{}/", gw.url())).await?;
    let loaded = Instant::now();
    let id = gw.wait_for_tab(1, LOAD).await?;
    browser.wait_for_text("runs: 1", LOAD).await?;
    watch_for_page_cache_restore(browser).await?;
    let ended = gw.wait_for_end(id, secs(20)).await?;
    ensure!(ended.end.reason == EndReason::Idle, "{:?}", ended.end);
    ended.on_time()?;
    ended.by(page_load_finished(gw, id).await? + secs(3))?;
    lands_on_idle_ended_page(browser, ended.at, loaded, "3 seconds").await?;
    ensure!(gw.tracker().is_empty(), "the ended tab is still tracked");

    browser.client().back().await.context("navigating back")?;
    let back = Instant::now();
    let outcome = wait_until(Duration::from_secs(10), POLL, async || {
        let url = browser.current_url().await?;
        let text = browser.body_text().await?;
        if url.contains(ENDED_PATH) {
            ensure!(
                text.contains("Session ended"),
                "ended page not rendered yet"
            );
            return Ok(AfterBack::Ended);
        }
        ensure!(
            !text.contains("CONNECTING")
                && count(&text, "runs: ") == Some(1)
                && count(&text, "clicks: ") == Some(0)
                && gw.tracker().len() == 1,
            "neither the ended page nor a fresh session ({} tracked) at {url}:\n{text}",
            gw.tracker().len()
        );
        Ok(AfterBack::FreshSession)
    })
    .await
    .context("the page went back to a dead session and stayed there")?;
    let restored = was_restored_from_page_cache(browser).await?;
    eprintln!(
        "after going back: {outcome:?} within {:.1?} (page {} the page cache)",
        back.elapsed(),
        if restored {
            "restored from"
        } else {
            "not from"
        }
    );
    Ok((outcome, restored))
}

#[tokio::test]
async fn browser_never_spins_on_connecting_after_its_session_ended() -> Result<()> {
    let app = streamlit("counter.py").await?;
    let gw = gateway(&app, secs(3)).await?;
    // Chromium as people run it: going back may show the old page from the back/forward
    // cache, whose Streamlit reconnects with the ended session's id.
    let browser = Browser::start().await?;
    explain(&browser, &app, async {
        let (outcome, restored) = end_and_go_back(&browser, &gw).await?;
        if restored {
            // The old page asked to resume its ended session: idlegate sent it to the ended
            // page again and did not open a new session for it.
            ensure!(
                outcome == AfterBack::Ended,
                "the restored page was not sent to the ended page: {outcome:?}"
            );
            let url = browser.current_url().await?;
            // The page script adds where the page was (`&return=…`) when it gets there first.
            let reason = url
                .split_once(&format!("{ENDED_PATH}?"))
                .map(|(_, query)| query.split('&').next().unwrap_or_default());
            ensure!(
                reason == Some("reason=idle"),
                "ended page for the wrong reason: {url}"
            );
            ensure!(
                gw.tracker().is_empty(),
                "a session was opened for the dead page"
            );
        } else {
            // The page was loaded anew, so it started a fresh session.
            ensure!(
                outcome == AfterBack::FreshSession,
                "a newly loaded page was sent to the ended page"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn browser_back_to_an_ended_app_page_without_page_cache_starts_a_fresh_session() -> Result<()>
{
    let app = streamlit("counter.py").await?;
    let gw = gateway(&app, secs(3)).await?;
    let browser = Browser::start_with_args(&["--disable-features=BackForwardCache"]).await?;
    explain(&browser, &app, async {
        let (outcome, restored) = end_and_go_back(&browser, &gw).await?;
        ensure!(
            !restored,
            "the page came from the page cache, which is disabled"
        );
        ensure!(
            outcome == AfterBack::FreshSession,
            "going back did not load a fresh session: {outcome:?}"
        );

        // The fresh session is live: a click works.
        browser.click(&button("Increment"), RENDER).await?;
        let text = browser.wait_for_text("clicks: 1", RENDER).await?;
        ensure!(
            count(&text, "runs: ") == Some(2),
            "unexpected run count:\n{text}"
        );
        Ok(())
    })
    .await
}
