//! Frameworks other than Streamlit behind idlegate, end to end: each one's example app
//! (`examples/<kind>/app.py`) from its own virtualenv (`scripts/python-env.sh <kind>`), an
//! in-process idlegate, and a real headless Chromium; the same scenarios for each. Every test
//! name contains `browser`, so nextest runs them one at a time (`.config/nextest.toml`).

use std::future::Future;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use idlegate::config::{AppKind, Config, ConfigBuilder};
use idlegate::lifecycle::Event;
use idlegate::tracker::{EndReason, TabId};
use serde_json::Value;
use testkit::gateway::{GatewayProcess, TestGateway};
use testkit::{wait_until, Browser, PyApp};
use tokio::time::Instant;

const LOAD: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);
/// How long after its tab ended a page may take to show the ended page.
const REDIRECT: Duration = Duration::from_secs(2);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Text in the page, shadow roots included (Panel draws its components in them).
const DEEP_TEXT: &str = "function text(node) {\
      let out = '';\
      for (const child of node.childNodes) {\
        if (child.nodeType === 3) { out += child.textContent; }\
        else if (child.nodeType === 1 && !['SCRIPT', 'STYLE'].includes(child.tagName)) {\
          const shown = getComputedStyle(child).display;\
          const gap = shown.startsWith('inline') || shown === 'contents' ? '' : '\\n';\
          if (child.shadowRoot) { out += gap + text(child.shadowRoot); }\
          out += gap + text(child) + gap;\
        }\
      }\
      return out;\
    }\
    return text(document.body);";

/// The centre of the first element matching `arguments[0]` (a CSS selector) whose text is
/// `arguments[1]` (any text when null), shadow roots included; null when there is none.
const DEEP_FIND: &str = "function* all(root) {\
      for (const el of root.querySelectorAll('*')) {\
        yield el;\
        if (el.shadowRoot) { yield* all(el.shadowRoot); }\
      }\
    }\
    for (const el of all(document)) {\
      if (!el.matches(arguments[0])) { continue; }\
      if (arguments[1] !== null && el.textContent.trim() !== arguments[1]) { continue; }\
      const r = el.getBoundingClientRect();\
      if (r.width === 0 || r.height === 0) { continue; }\
      return [r.left + r.width / 2, r.top + r.height / 2];\
    }\
    return null;";

/// A framework and its example app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framework {
    Shiny,
    Panel,
    Gradio,
}

impl Framework {
    fn kind(self) -> AppKind {
        match self {
            Self::Shiny => AppKind::Shiny,
            Self::Panel => AppKind::Panel,
            Self::Gradio => AppKind::Gradio,
        }
    }

    fn example(self) -> &'static str {
        match self {
            Self::Shiny => "examples/shiny/app.py",
            Self::Panel => "examples/panel/app.py",
            Self::Gradio => "examples/gradio/app.py",
        }
    }

    /// The example's page, under the gateway at `base`.
    fn page(self, base: &str) -> String {
        match self {
            Self::Shiny | Self::Gradio => format!("{base}/"),
            Self::Panel => format!("{base}/app"),
        }
    }

    async fn start(self) -> Result<PyApp> {
        match self {
            Self::Shiny => PyApp::shiny(self.example()).await,
            Self::Panel => PyApp::panel(self.example()).await,
            Self::Gradio => PyApp::gradio(self.example()).await,
        }
    }

    /// The launcher's options and command that serve the example in launcher mode, as
    /// people write them: the framework's program and subcommand, or `--app-kind` and
    /// `python app.py`.
    fn launcher_command(self) -> Result<Vec<String>> {
        let (venv, program, sub) = match self {
            Self::Shiny => ("shiny", "shiny", Some("run")),
            Self::Panel => ("panel", "panel", Some("serve")),
            Self::Gradio => ("gradio", "python", None),
        };
        let program = testkit::pyapp::kind_venv(venv).join("bin").join(program);
        let example = testkit::venv::repo_path(self.example());
        let mut command = match self {
            Self::Gradio => vec!["--app-kind".to_owned(), "gradio".to_owned()],
            _ => Vec::new(),
        };
        command.push("--".to_owned());
        command.push(program.to_str().context("venv path")?.to_owned());
        command.extend(sub.map(str::to_owned));
        command.push(example.to_str().context("app path")?.to_owned());
        Ok(command)
    }

    /// Whether the framework can send the page to the ended page without the page script.
    fn navigates_without_script(self) -> bool {
        self == Self::Shiny
    }
}

/// The page's text, shadow roots included.
async fn page_text(browser: &Browser) -> Result<String> {
    let text = browser.run_js(DEEP_TEXT, vec![]).await?;
    Ok(text.as_str().unwrap_or_default().to_owned())
}

async fn wait_for_text(browser: &Browser, needle: &str, limit: Duration) -> Result<String> {
    wait_until(limit, POLL, async || {
        let text = page_text(browser).await?;
        ensure!(text.contains(needle), "no {needle:?} in the page:\n{text}");
        Ok(text)
    })
    .await
}

/// Clicks the element matching `selector` with `label` as its text (a real click).
async fn click(browser: &Browser, selector: &str, label: Option<&str>) -> Result<()> {
    let at = wait_until(LOAD, POLL, async || {
        let found = browser
            .run_js(DEEP_FIND, vec![Value::from(selector), Value::from(label)])
            .await?;
        match found.as_array().map(Vec::as_slice) {
            Some([x, y]) => Ok((x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0))),
            _ => bail!("no {selector} {label:?} in the page"),
        }
    })
    .await?;
    browser.click_point(at).await
}

async fn click_button(browser: &Browser, label: &str) -> Result<()> {
    click(browser, "button", Some(label)).await
}

/// The example app behind a gateway with `config`, and a browser.
async fn example_behind(
    framework: Framework,
    config: ConfigBuilder,
) -> Result<(PyApp, TestGateway, Browser)> {
    let app = framework.start().await?;
    let gw = TestGateway::start(&app.base_url(), config.app_kind(framework.kind())).await?;
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
            let text = page_text(browser).await.unwrap_or_default();
            Err(e.context(format!(
                "browser at {url}\n--- page text ---\n{text}\n--- app output ---\n{}",
                app.output()
            )))
        }
    }
}

/// Opens the example in the browser's current tab and waits for its first run.
async fn open_example(
    framework: Framework,
    browser: &Browser,
    gw: &TestGateway,
    n: usize,
) -> Result<TabId> {
    browser.goto(&framework.page(&gw.url())).await?;
    wait_for_text(browser, "clicks: 0", LOAD).await?;
    // The page is drawn whole (what it shows after its first run moves nothing else).
    wait_for_text(browser, "this tab holds 10 MiB", LOAD).await?;
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
    let text = page_text(browser).await?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Server clock: ").map(str::to_owned))
        .context("no server clock on the page")
}

/// An untouched tab whose app changes it every second (a timer) ends on time, with the
/// page script and without it; the page shows why (without the script, where the framework
/// can navigate the page).
async fn untouched_tab_ends_on_time(framework: Framework) -> Result<()> {
    for inject in [true, false] {
        let config = Config::builder().idle_timeout(Some(secs(6))).inject(inject);
        let (app, gw, browser) = example_behind(framework, config).await?;
        explain(&browser, &app, async {
            let id = open_example(framework, &browser, &gw, 1).await?;
            let first = clock(&browser).await?;
            wait_until(LOAD, POLL, async || {
                ensure!(clock(&browser).await? != first, "the clock did not move");
                Ok(())
            })
            .await?;
            let ended = gw.wait_for_end(id, secs(15)).await?;
            ensure!(ended.end.reason == EndReason::Idle, "{:?}", ended.end);
            ended.on_time()?;
            if inject || framework.navigates_without_script() {
                let url = lands_on_ended_page(&browser, "idle", ended.at).await?;
                let text = browser.body_text().await?;
                ensure!(text.contains("6 seconds without activity"), "{url}: {text}");
            }
            Ok(())
        })
        .await
        .with_context(|| format!("with inject = {inject}"))?;
        browser.close().await?;
    }
    Ok(())
}

/// A person clicking every two seconds keeps the tab past its idle limit, with the page
/// script and without it; left alone, it ends the limit after the last click.
async fn clicking_keeps_the_tab(framework: Framework) -> Result<()> {
    for inject in [true, false] {
        let config = Config::builder().idle_timeout(Some(secs(6))).inject(inject);
        let (app, gw, browser) = example_behind(framework, config).await?;
        explain(&browser, &app, async {
            let id = open_example(framework, &browser, &gw, 1).await?;
            let started = Instant::now();
            let mut clicks = 0;
            let mut last = started;
            while started.elapsed() < secs(14) {
                click_button(&browser, "Add one").await?;
                last = Instant::now();
                clicks += 1;
                wait_for_text(&browser, &format!("clicks: {clicks}"), LOAD).await?;
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

/// A computation a person started, longer than the idle limit, is not ended while it runs.
async fn long_computation_is_not_ended(framework: Framework) -> Result<()> {
    let config = Config::builder().idle_timeout(Some(secs(4)));
    let (app, gw, browser) = example_behind(framework, config).await?;
    explain(&browser, &app, async {
        let id = open_example(framework, &browser, &gw, 1).await?;
        click(&browser, "input", None).await?;
        browser
            .type_keys("\u{E009}a\u{E000}\u{E017}10\u{E004}")
            .await?;
        // The person reads what they typed before clicking (the field's value reaches the
        // app on its own).
        tokio::time::sleep(secs(1)).await;
        let mut busy = gw.events();
        click_button(&browser, "Compute").await?;
        let started = busy
            .next_matching(LOAD, |e| {
                *e == Event::Busy {
                    tab: id,
                    busy: true,
                }
            })
            .await?;
        // Ten seconds of work, over twice the idle limit: the tab stays.
        wait_for_text(&browser, "computed: 1 (took 10 s)", secs(30)).await?;
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

/// The warning shows before the end, and "Keep working" extends the tab by its idle limit.
async fn warning_and_keep_working(framework: Framework) -> Result<()> {
    let config = Config::builder()
        .idle_timeout(Some(secs(24)))
        .warn_before(Some(secs(20)));
    let (app, gw, browser) = example_behind(framework, config).await?;
    explain(&browser, &app, async {
        let id = open_example(framework, &browser, &gw, 1).await?;
        let before = gw.tracker().deadline_of(id).context("no deadline")?.at;
        let keep = "const host = document.querySelector('[data-idlegate=\"warning\"]');\
            const button = host && host.shadowRoot &&\
              host.shadowRoot.querySelector('[data-idlegate-keep-working]');\
            if (!button || !button.offsetParent) { return false; }\
            button.click(); return true;";
        let mut activity = gw.events();
        wait_until(secs(15), Duration::from_millis(50), async || {
            if browser.run_js(keep, vec![]).await? == Value::Bool(true) {
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

/// With sign-in, the app is told who signed in, and signing out ends both of the person's
/// tabs at once.
async fn sign_in_and_out(framework: Framework) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let hash = idlegate::auth::password::hash("open sesame").map_err(anyhow::Error::msg)?;
    let users = dir.path().join("users");
    std::fs::write(&users, format!("alice:{hash}\n"))?;
    let config = Config::builder()
        .users_file(&users)
        .login_idle_timeout(secs(60))
        .cookie_secure(false);
    let (app, gw, browser) = example_behind(framework, config).await?;
    explain(&browser, &app, async {
        browser.goto(&framework.page(&gw.url())).await?;
        browser
            .wait_for_url("/_idlegate/login?return=", LOAD)
            .await?;
        browser
            .type_into("//input[@id='username']", "alice", LOAD)
            .await?;
        browser
            .type_into("//input[@id='password']", "open sesame\u{E007}", LOAD)
            .await?;
        // The app reads who signed in from what idlegate sets.
        wait_for_text(&browser, "Signed in as: alice", LOAD).await?;
        let first = gw.wait_for_tab(1, LOAD).await?;
        browser.open_tab_in_front().await?;
        let second = open_example(framework, &browser, &gw, 2).await?;
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

/// With the server's tab limit at one and new tabs refused, a second tab of the app is sent
/// to the page that says the server is busy, and the first goes on.
async fn second_tab_over_the_limit_is_refused(framework: Framework) -> Result<()> {
    use idlegate::config::OnLimit;
    let config = Config::builder()
        .idle_timeout(Some(secs(60)))
        .max_total(1)
        .on_limit(OnLimit::Refuse);
    let (app, gw, browser) = example_behind(framework, config).await?;
    explain(&browser, &app, async {
        let first = open_example(framework, &browser, &gw, 1).await?;
        browser.open_tab_in_front().await?;
        browser.goto(&framework.page(&gw.url())).await?;
        browser.wait_for_url("/_idlegate/busy", secs(20)).await?;
        ensure!(gw.tracker().len() == 1, "{} tabs", gw.tracker().len());
        ensure!(
            gw.tracker().open_tabs() == [first],
            "the first tab did not go on"
        );
        Ok(())
    })
    .await
}

/// In launcher mode, as people run it (`idlegate -- <framework's command> app.py`, the kind
/// told by the command): four tabs each hold the example's 10 MiB, and once they end the
/// app's process gives it back within `within` of the last end. Prints the figures.
async fn memory_given_back(framework: Framework, idle: &str, within: Duration) -> Result<()> {
    const TABS: usize = 4;
    const HELD: u64 = 10 << 20;
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_idlegate"));
    let command = framework.launcher_command()?;
    let mut args = vec!["--idle-timeout", idle];
    args.extend(command.iter().map(String::as_str));
    let gw = GatewayProcess::start(bin, &args).await?;
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
            browser.goto(&framework.page(&gw.url())).await?;
            wait_for_text(&browser, "this tab holds 10 MiB", LOAD).await?;
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
        let after = wait_until(within, POLL, async || {
            let now = testkit::proc::try_rss_bytes(pid)?;
            ensure!(
                now + TABS as u64 * HELD * 9 / 10 <= peak,
                "the app still holds {now} bytes (peak {peak}, baseline {baseline})"
            );
            Ok(now)
        })
        .await?;
        println!(
            "{framework:?} memory: baseline {} MiB, {TABS} tabs {} MiB, {} MiB {:.1} s after \
             the last end",
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

#[tokio::test]
async fn browser_shiny_an_untouched_tab_with_a_timer_ends_on_time_and_shows_why() -> Result<()> {
    untouched_tab_ends_on_time(Framework::Shiny).await
}

#[tokio::test]
async fn browser_shiny_a_person_clicking_keeps_the_tab_with_or_without_the_script() -> Result<()> {
    clicking_keeps_the_tab(Framework::Shiny).await
}

#[tokio::test]
async fn browser_shiny_a_long_computation_is_not_ended_while_it_runs() -> Result<()> {
    long_computation_is_not_ended(Framework::Shiny).await
}

#[tokio::test]
async fn browser_shiny_the_warning_appears_and_keep_working_extends() -> Result<()> {
    warning_and_keep_working(Framework::Shiny).await
}

#[tokio::test]
async fn browser_shiny_sign_in_names_the_person_and_sign_out_ends_both_tabs() -> Result<()> {
    sign_in_and_out(Framework::Shiny).await
}

#[tokio::test]
async fn browser_shiny_launcher_mode_ended_sessions_give_their_memory_back() -> Result<()> {
    // Shiny ends a session when its socket closes; idlegate has the process collect it.
    memory_given_back(Framework::Shiny, "15s", secs(30)).await
}

#[tokio::test]
async fn browser_panel_an_untouched_tab_with_a_timer_ends_on_time() -> Result<()> {
    untouched_tab_ends_on_time(Framework::Panel).await
}

#[tokio::test]
async fn browser_panel_a_person_clicking_keeps_the_tab_with_or_without_the_script() -> Result<()> {
    clicking_keeps_the_tab(Framework::Panel).await
}

#[tokio::test]
async fn browser_panel_a_long_computation_is_not_ended_while_it_runs() -> Result<()> {
    long_computation_is_not_ended(Framework::Panel).await
}

#[tokio::test]
async fn browser_panel_the_warning_appears_and_keep_working_extends() -> Result<()> {
    warning_and_keep_working(Framework::Panel).await
}

#[tokio::test]
async fn browser_panel_sign_in_names_the_person_and_sign_out_ends_both_tabs() -> Result<()> {
    sign_in_and_out(Framework::Panel).await
}

#[tokio::test]
async fn browser_panel_launcher_mode_ended_sessions_give_their_memory_back() -> Result<()> {
    // The server discards an unused session after app.disconnected_session_ttl (20 s) at its
    // next check (2 s in launcher mode); idlegate then has the process collect it.
    memory_given_back(Framework::Panel, "15s", secs(40)).await
}

#[tokio::test]
async fn browser_gradio_an_untouched_tab_with_a_timer_ends_on_time() -> Result<()> {
    untouched_tab_ends_on_time(Framework::Gradio).await
}

#[tokio::test]
async fn browser_gradio_a_person_clicking_keeps_the_tab_with_or_without_the_script() -> Result<()> {
    clicking_keeps_the_tab(Framework::Gradio).await
}

#[tokio::test]
async fn browser_gradio_a_long_computation_is_not_ended_while_it_runs() -> Result<()> {
    long_computation_is_not_ended(Framework::Gradio).await
}

#[tokio::test]
async fn browser_gradio_the_warning_appears_and_keep_working_extends() -> Result<()> {
    warning_and_keep_working(Framework::Gradio).await
}

#[tokio::test]
async fn browser_gradio_sign_in_names_the_person_and_sign_out_ends_both_tabs() -> Result<()> {
    sign_in_and_out(Framework::Gradio).await
}

#[tokio::test]
async fn browser_gradio_launcher_mode_ended_sessions_give_their_memory_back() -> Result<()> {
    // Gradio keeps a closed session's gr.State for an hour; in launcher mode idlegate has it
    // delete the state of each tab it ends at once.
    memory_given_back(Framework::Gradio, "15s", secs(30)).await
}

/// Without the page script, a Gradio page learns that its tab ended from its next request:
/// it says the connection was lost, reloads, and the reload shows the ended page and why.
#[tokio::test]
async fn browser_gradio_without_the_script_the_next_click_shows_the_ended_page() -> Result<()> {
    let config = Config::builder().idle_timeout(Some(secs(4))).inject(false);
    let (app, gw, browser) = example_behind(Framework::Gradio, config).await?;
    explain(&browser, &app, async {
        let id = open_example(Framework::Gradio, &browser, &gw, 1).await?;
        let ended = gw.wait_for_end(id, secs(15)).await?;
        ensure!(ended.end.reason == EndReason::Idle, "{:?}", ended.end);
        click_button(&browser, "Add one").await?;
        browser
            .wait_for_url("/_idlegate/ended?reason=idle", secs(15))
            .await?;
        let text = browser.wait_for_text("Session ended", LOAD).await?;
        ensure!(text.contains("4 seconds without activity"), "{text}");
        ensure!(
            gw.tracker().is_empty(),
            "the reload opened a new tab instead"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn browser_shiny_a_second_tab_over_the_server_limit_is_refused() -> Result<()> {
    second_tab_over_the_limit_is_refused(Framework::Shiny).await
}

#[tokio::test]
async fn browser_panel_a_second_tab_over_the_server_limit_is_refused() -> Result<()> {
    second_tab_over_the_limit_is_refused(Framework::Panel).await
}

#[tokio::test]
async fn browser_gradio_a_second_tab_over_the_server_limit_is_refused() -> Result<()> {
    second_tab_over_the_limit_is_refused(Framework::Gradio).await
}

/// A Panel player playing in a loop changes its value in the page by itself, every 200 ms:
/// not a person, even without the page script.
#[tokio::test]
async fn browser_panel_a_playing_player_does_not_keep_an_untouched_tab() -> Result<()> {
    let app = PyApp::panel("tests/apps/panel/player.py").await?;
    let config = Config::builder()
        .idle_timeout(Some(secs(6)))
        .inject(false)
        .app_kind(AppKind::Panel);
    let gw = TestGateway::start(&app.base_url(), config).await?;
    let browser = Browser::start().await?;
    explain(&browser, &app, async {
        browser.goto(&format!("{}/player", gw.url())).await?;
        let id = gw.wait_for_tab(1, LOAD).await?;
        // The frames reach the server (its callback shows them) while nobody touches the page.
        wait_for_text(&browser, "frame: 5", LOAD).await?;
        let ended = gw.wait_for_end(id, secs(15)).await?;
        ensure!(ended.end.reason == EndReason::Idle, "{:?}", ended.end);
        ended.on_time()?;
        Ok(())
    })
    .await
}

/// A Shiny app that changes its own inputs every second (a slider it updates, an input it
/// redraws with a new default, a modal it shows again): the page sends every value back,
/// and none of it is a person, even without the page script.
#[tokio::test]
async fn browser_shiny_inputs_the_app_changes_by_itself_do_not_keep_an_untouched_tab() -> Result<()>
{
    for inject in [false, true] {
        let app = PyApp::shiny("tests/apps/shiny/echoes.py").await?;
        let config = Config::builder()
            .idle_timeout(Some(secs(8)))
            .inject(inject)
            .app_kind(AppKind::Shiny);
        let gw = TestGateway::start(&app.base_url(), config).await?;
        let browser = Browser::start().await?;
        explain(&browser, &app, async {
            browser.goto(&format!("{}/", gw.url())).await?;
            let id = gw.wait_for_tab(1, LOAD).await?;
            // The app's own changes reach the app back from the page.
            let first = wait_for_text(&browser, "slider: ", LOAD).await?;
            wait_until(LOAD, POLL, async || {
                let now = page_text(&browser).await?;
                ensure!(now != first, "the app did not change its inputs");
                Ok(())
            })
            .await?;
            let ended = gw.wait_for_end(id, secs(20)).await?;
            ensure!(ended.end.reason == EndReason::Idle, "{:?}", ended.end);
            ended.on_time()?;
            Ok(())
        })
        .await
        .with_context(|| format!("with inject = {inject}"))?;
        browser.close().await?;
    }
    Ok(())
}

/// A session socket upgrade to a launcher-mode gateway, as a page at `origin` would open it,
/// offering `protocols`.
async fn upgrade(
    gw: &GatewayProcess,
    path: &str,
    origin: &str,
    protocols: &str,
) -> Result<testkit::http::Response> {
    use http_body_util::Full;
    let request = hyper::Request::builder()
        .uri(format!("{}{path}", gw.url()))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("origin", origin)
        .header("sec-websocket-protocol", protocols)
        .body(Full::new(bytes::Bytes::new()))?;
    testkit::http::send(request).await
}

/// In launcher mode Panel is told to accept any origin and sign its sessions: idlegate
/// refuses sockets other sites' pages open, and tokens the server did not sign (a page
/// could otherwise make up its session and the request headers in it).
#[tokio::test]
async fn panel_launcher_mode_refuses_other_sites_and_made_up_tokens() -> Result<()> {
    use base64::Engine as _;
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_idlegate"));
    let command = Framework::Panel.launcher_command()?;
    let args: Vec<&str> = command.iter().map(String::as_str).collect();
    let gw = GatewayProcess::start(bin, &args).await?;
    let page = testkit::http::get(&format!("{}/app", gw.url())).await?;
    let text = page.text();
    let token = text
        .split("\"token\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no token in the page")?
        .to_owned();
    let ours = gw.url();
    let refused = upgrade(
        &gw,
        "/app/ws",
        "http://evil.example",
        &format!("bokeh, {token}"),
    )
    .await?;
    ensure!(
        refused.status == 403,
        "another site's page: {}",
        refused.status
    );
    ensure!(refused.text().contains("Origin"), "{}", refused.text());
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        r#"{"session_id":"made-up","session_expiry":9999999999,"headers":{"X-Forwarded-User":"alice"}}"#,
    );
    let made_up = upgrade(
        &gw,
        "/app/ws",
        &ours,
        &format!("bokeh, {payload}.c2lnbmF0dXJl"),
    )
    .await?;
    ensure!(made_up.status == 403, "a made-up token: {}", made_up.status);
    // The page's own token, from the page's own site, opens its session.
    let own = upgrade(&gw, "/app/ws", &ours, &format!("bokeh, {token}")).await?;
    ensure!(
        own.status == 101,
        "the page's own token: {} {}",
        own.status,
        own.text()
    );
    Ok(())
}
