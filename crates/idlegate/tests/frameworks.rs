//! Shiny for Python behind idlegate, end to end: the example app (`examples/shiny/app.py`)
//! from its own virtualenv (`scripts/python-env.sh shiny`), an in-process idlegate, and a
//! real headless Chromium. Every test name contains `browser`, so nextest runs them one at a
//! time (`.config/nextest.toml`).

use std::future::Future;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use idlegate::config::{AppKind, Config, ConfigBuilder};
use idlegate::lifecycle::Event;
use idlegate::tracker::{EndReason, TabId};
use testkit::gateway::{GatewayProcess, TestGateway};
use testkit::{wait_until, Browser, PyApp};
use tokio::time::Instant;

const LOAD: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);
/// How long after its tab ended a page may take to show the ended page.
const REDIRECT: Duration = Duration::from_secs(2);
const EXAMPLE: &str = "examples/shiny/app.py";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The example app behind a gateway with `config` (Shiny's kind set), and a browser.
async fn example_behind(config: ConfigBuilder) -> Result<(PyApp, TestGateway, Browser)> {
    let app = PyApp::shiny(EXAMPLE).await?;
    let gw = TestGateway::start(&app.base_url(), config.app_kind(AppKind::Shiny)).await?;
    let browser = Browser::start().await?;
    Ok((app, gw, browser))
}

/// Runs a test body; if it fails, adds what the browser showed and what the app printed.
async fn explain<T>(
    browser: &Browser,
    app: &PyApp,
    body: impl Future<Output = Result<T>>,
) -> Result<T> {
    match body.await {
        Ok(value) => Ok(value),
        Err(e) => {
            let url = browser.current_url().await.unwrap_or_default();
            let text = browser.body_text().await.unwrap_or_default();
            Err(e.context(format!(
                "browser at {url}\n--- page text ---\n{text}\n--- app output ---\n{}",
                app.output()
            )))
        }
    }
}

/// Opens the example in the browser's current tab and waits for its first run.
async fn open_example(browser: &Browser, gw: &TestGateway, n: usize) -> Result<TabId> {
    browser.goto(&format!("{}/", gw.url())).await?;
    browser.wait_for_text("clicks: 0", LOAD).await?;
    gw.wait_for_tab(n, LOAD).await
}

async fn lands_on_ended_page(browser: &Browser, reason: &str, ended: Instant) -> Result<String> {
    let url = browser
        .wait_for_url(
            &format!("/_idlegate/ended?reason={reason}"),
            (ended + REDIRECT).saturating_duration_since(Instant::now()),
        )
        .await
        .with_context(|| format!("the ended page was not shown within {REDIRECT:?} of the end"))?;
    browser.wait_for_text("Session ended", LOAD).await?;
    Ok(url)
}

/// The server clock the page shows, which the app's timer moves every second.
async fn clock(browser: &Browser) -> Result<String> {
    let text = browser.body_text().await?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Server clock: ").map(str::to_owned))
        .context("no server clock on the page")
}

#[tokio::test]
async fn browser_shiny_an_untouched_tab_with_a_timer_ends_on_time_and_shows_why() -> Result<()> {
    for inject in [true, false] {
        let (app, gw, browser) =
            example_behind(Config::builder().idle_timeout(Some(secs(6))).inject(inject)).await?;
        explain(&browser, &app, async {
            let id = open_example(&browser, &gw, 1).await?;
            // The app's timer keeps changing the page: not a person.
            let first = clock(&browser).await?;
            wait_until(LOAD, POLL, async || {
                ensure!(clock(&browser).await? != first, "the clock did not move");
                Ok(())
            })
            .await?;
            let ended = gw.wait_for_end(id, secs(15)).await?;
            ensure!(ended.end.reason == EndReason::Idle, "{:?}", ended.end);
            ended.on_time()?;
            // With the page script or without it (the app's own `javascript` message).
            let url = lands_on_ended_page(&browser, "idle", ended.at).await?;
            let text = browser.body_text().await?;
            ensure!(text.contains("6 seconds without activity"), "{url}: {text}");
            Ok(())
        })
        .await
        .with_context(|| format!("with inject = {inject}"))?;
        browser.close().await?;
    }
    Ok(())
}

#[tokio::test]
async fn browser_shiny_a_person_clicking_keeps_the_tab_with_or_without_the_script() -> Result<()> {
    for inject in [true, false] {
        let (app, gw, browser) =
            example_behind(Config::builder().idle_timeout(Some(secs(6))).inject(inject)).await?;
        explain(&browser, &app, async {
            let id = open_example(&browser, &gw, 1).await?;
            let started = Instant::now();
            let mut clicks = 0;
            let mut last = started;
            while started.elapsed() < secs(14) {
                browser.click("//button[@id='add']", LOAD).await?;
                last = Instant::now();
                clicks += 1;
                browser
                    .wait_for_text(&format!("clicks: {clicks}"), LOAD)
                    .await?;
                // A click every 2 s: the person's pace, the scenario's input.
                tokio::time::sleep(secs(2)).await;
            }
            ensure!(
                gw.tracker().len() == 1,
                "the tab ended while a person clicked"
            );
            let ended = gw.wait_for_end(id, secs(15)).await?;
            ended.on_time()?;
            ended.by(last + secs(6) + secs(1))?;
            Ok(())
        })
        .await
        .with_context(|| format!("with inject = {inject}"))?;
        browser.close().await?;
    }
    Ok(())
}

#[tokio::test]
async fn browser_shiny_a_long_computation_is_not_ended_while_it_runs() -> Result<()> {
    let (app, gw, browser) = example_behind(Config::builder().idle_timeout(Some(secs(4)))).await?;
    explain(&browser, &app, async {
        let id = open_example(&browser, &gw, 1).await?;
        let field = "//input[@id='seconds']";
        browser.click(field, LOAD).await?;
        browser
            .type_into(field, "\u{E009}a\u{E000}\u{E017}10", LOAD)
            .await?;
        // The person reads what they typed before clicking (the field's value reaches the
        // app on its own, a quarter second after the last key).
        tokio::time::sleep(secs(1)).await;
        let mut busy = gw.events();
        browser.click("//button[@id='compute']", LOAD).await?;
        let started = busy
            .next_matching(LOAD, |e| {
                *e == Event::Busy {
                    tab: id,
                    busy: true,
                }
            })
            .await?;
        // Ten seconds of work, over twice the idle limit: the tab stays.
        browser
            .wait_for_text("computed: 1 (took 10 s)", secs(30))
            .await?;
        ensure!(
            started.at.elapsed() >= secs(9),
            "the computation did not run for its ten seconds"
        );
        ensure!(
            gw.tracker().len() == 1,
            "the tab ended while the app computed"
        );
        let ended = gw.wait_for_end(id, secs(15)).await?;
        ended.on_time()?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn browser_shiny_the_warning_appears_and_keep_working_extends() -> Result<()> {
    let (app, gw, browser) = example_behind(
        Config::builder()
            .idle_timeout(Some(secs(24)))
            .warn_before(Some(secs(20))),
    )
    .await?;
    explain(&browser, &app, async {
        let id = open_example(&browser, &gw, 1).await?;
        let before = gw.tracker().deadline_of(id).context("no deadline")?.at;
        let keep = "const host = document.querySelector('[data-idlegate=\"warning\"]');\
            const button = host && host.shadowRoot &&\
              host.shadowRoot.querySelector('[data-idlegate-keep-working]');\
            if (!button || !button.offsetParent) { return false; }\
            button.click(); return true;";
        let mut activity = gw.events();
        wait_until(secs(15), Duration::from_millis(50), async || {
            if browser.run_js(keep, vec![]).await? == serde_json::Value::Bool(true) {
                return Ok(());
            }
            bail!("no warning yet")
        })
        .await?;
        let kept = activity
            .next_matching(
                LOAD,
                |e| matches!(e, Event::Activity { tab, .. } if *tab == id),
            )
            .await?;
        let after = gw.tracker().deadline_of(id).context("no deadline")?.at;
        ensure!(
            after + secs(1) >= kept.at + secs(24) && after > before + secs(2),
            "Keep working did not extend the tab by the idle limit"
        );
        let ended = gw.wait_for_end(id, secs(40)).await?;
        ended.on_time()?;
        lands_on_ended_page(&browser, "idle", ended.at).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn browser_shiny_sign_in_names_the_person_and_sign_out_ends_both_tabs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let hash = idlegate::auth::password::hash("open sesame").map_err(anyhow::Error::msg)?;
    let users = dir.path().join("users");
    std::fs::write(&users, format!("alice:{hash}\n"))?;
    let (app, gw, browser) = example_behind(
        Config::builder()
            .users_file(&users)
            .login_idle_timeout(secs(60))
            .cookie_secure(false),
    )
    .await?;
    explain(&browser, &app, async {
        browser.goto(&format!("{}/", gw.url())).await?;
        browser
            .wait_for_url("/_idlegate/login?return=%2F", LOAD)
            .await?;
        browser
            .type_into("//input[@id='username']", "alice", LOAD)
            .await?;
        browser
            .type_into("//input[@id='password']", "open sesame\u{E007}", LOAD)
            .await?;
        // The app reads who signed in from the credentials idlegate sets.
        browser.wait_for_text("Signed in as: alice", LOAD).await?;
        let first = gw.wait_for_tab(1, LOAD).await?;
        browser.open_tab_in_front().await?;
        let second = open_example(&browser, &gw, 2).await?;
        browser
            .goto(&format!("{}/_idlegate/logout", gw.url()))
            .await?;
        browser.click("//form//button", LOAD).await?;
        let signed_out = Instant::now();
        for tab in [first, second] {
            let ended = gw.wait_for_end(tab, secs(10)).await?;
            ensure!(ended.end.reason == EndReason::Logout, "{:?}", ended.end);
            ensure!(ended.at <= signed_out + secs(3), "tab {tab} ended late");
        }
        Ok(())
    })
    .await
}

/// In launcher mode, as people run it: `idlegate -- shiny run app.py`, the kind told by the
/// command. Four tabs each hold the example's 10 MiB; once they end, the app's process gives
/// it back (Shiny ends a session when its socket closes, and idlegate has the process
/// collect the session's reference cycles).
#[tokio::test]
async fn browser_shiny_launcher_mode_ended_sessions_give_their_memory_back() -> Result<()> {
    const TABS: usize = 4;
    const HELD: u64 = 10 << 20;
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_idlegate"));
    let shiny = testkit::pyapp::kind_venv("shiny").join("bin/shiny");
    let example = testkit::venv::repo_path(EXAMPLE);
    let gw = GatewayProcess::start(
        bin,
        &[
            "--idle-timeout",
            "15s",
            "--",
            shiny.to_str().context("venv path")?,
            "run",
            example.to_str().context("app path")?,
        ],
    )
    .await?;
    let pid = *testkit::proc::children_of(gw.pid())
        .first()
        .context("idlegate has no child process")?;
    let browser = Browser::start().await?;
    let result = async {
        let baseline = testkit::proc::try_rss_bytes(pid)?;
        for n in 0..TABS {
            if n > 0 {
                browser.open_tab_in_front().await?;
            }
            browser.goto(&format!("{}/", gw.url())).await?;
            browser.wait_for_text("this tab holds 10 MiB", LOAD).await?;
        }
        let peak = testkit::proc::try_rss_bytes(pid)?;
        ensure!(
            peak >= baseline + TABS as u64 * HELD * 9 / 10,
            "{TABS} tabs did not grow the app by their data: {baseline} -> {peak} bytes"
        );
        browser
            .wait_for_url("/_idlegate/ended?reason=idle", secs(30))
            .await?;
        let ended = Instant::now();
        let after = wait_until(secs(30), POLL, async || {
            let now = testkit::proc::try_rss_bytes(pid)?;
            ensure!(
                now + TABS as u64 * HELD * 9 / 10 <= peak,
                "the app still holds {now} bytes (peak {peak}, baseline {baseline})"
            );
            Ok(now)
        })
        .await?;
        println!(
            "shiny memory: baseline {} MiB, {TABS} tabs {} MiB, {} MiB {:.1} s after the last end",
            baseline >> 20,
            peak >> 20,
            after >> 20,
            ended.elapsed().as_secs_f64()
        );
        Ok(())
    }
    .await;
    result.with_context(|| gw.output())
}
