//! The page script in a real headless Chromium, in front of a real Streamlit: the warning
//! before a tab ends, input that only the page sees, hidden tabs, and pages without the
//! script. Test names contain `browser`, so nextest runs them one at a time.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use idlegate::config::{Config, ConfigBuilder, OidcProvider, SignIn};
use idlegate::lifecycle::Event;
use idlegate::tracker::{EndReason, TabId};
use serde_json::Value;
use testkit::gateway::{TestGateway, ON_TIME};
use testkit::venv::workspace_root;
use testkit::{wait_until, Browser, StreamlitApp};
use tokio::time::Instant;

/// How long a page may take to load and render its first script run.
const LOAD: Duration = Duration::from_secs(30);
/// Poll interval for everything that watches the page.
const POLL: Duration = Duration::from_millis(100);
const ENDED_PATH: &str = "/_idlegate/ended";
/// How long after its tab ended (the end's event) a page may take to show the ended page:
/// one WebSocket message, then a page load.
const REDIRECT: Duration = Duration::from_secs(2);

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

/// Waits for the browser to show the ended page for `reason`, at most [`REDIRECT`] after
/// `ended` (when the tab's end reached the test).
async fn lands_on_ended_page(browser: &Browser, reason: &str, ended: Instant) -> Result<String> {
    browser
        .wait_for_url(
            &format!("{ENDED_PATH}?reason={reason}"),
            (ended + REDIRECT).saturating_duration_since(Instant::now()),
        )
        .await
        .with_context(|| format!("the ended page was not shown within {REDIRECT:?} of the end"))
}

/// Reads the warning's state from its shadow root: `null` while there is none.
const WARNING: &str = "const host = document.querySelector('[data-idlegate=\"warning\"]');\
    if (!host || !host.shadowRoot) { return null; }\
    const root = host.shadowRoot;\
    const dialog = root.querySelector('[data-idlegate-dialog]');\
    if (!dialog) { return null; }\
    const label = root.getElementById(dialog.getAttribute('aria-labelledby') || '');\
    const focused = root.activeElement;\
    return {\
      open: dialog.open,\
      role: dialog.getAttribute('role'),\
      modal: dialog.getAttribute('aria-modal'),\
      title: label ? label.textContent : null,\
      text: dialog.textContent,\
      countdown: (root.querySelector('[data-idlegate-countdown]') || {}).textContent || null,\
      focusedButton: !!(focused && focused.hasAttribute('data-idlegate-keep-working')),\
    };";

async fn warning(browser: &Browser) -> Result<Option<Value>> {
    let state = browser.run_js(WARNING, vec![]).await?;
    Ok(Some(state).filter(|s| !s.is_null()))
}

async fn warning_open(browser: &Browser) -> Result<bool> {
    Ok(warning(browser).await?.is_some_and(|w| w["open"] == true))
}

/// Waits until the warning is open and returns its state.
async fn wait_for_warning(browser: &Browser, timeout: Duration) -> Result<Value> {
    wait_until(timeout, Duration::from_millis(50), async || {
        let state = warning(browser).await?;
        match state {
            Some(w) if w["open"] == true => Ok(w),
            other => bail!("no open warning yet: {other:?}"),
        }
    })
    .await
}

/// `m:ss` → seconds.
fn seconds(countdown: &Value) -> Result<u64> {
    let text = countdown.as_str().context("no countdown")?;
    let (m, s) = text
        .split_once(':')
        .with_context(|| format!("countdown {text:?}"))?;
    ensure!(s.len() == 2, "countdown {text:?} is not m:ss");
    Ok(m.parse::<u64>()? * 60 + s.parse::<u64>()?)
}

/// Counts the page script's activity reports from now on, in `window.__activityReports`.
const COUNT_REPORTS: &str = "window.__activityReports = 0;\
    const original = window.fetch;\
    window.fetch = function (url, init) {\
      if (String(url).includes('/_idlegate/tab') && init && init.method === 'POST' &&\
          String(init.body).includes('activity')) { window.__activityReports++; }\
      return original.apply(this, arguments);\
    };";

/// The server's deadline of the only open tab.
fn only_deadline(gw: &TestGateway) -> Result<Instant> {
    let tabs = gw.tracker().open_tabs();
    ensure!(
        tabs.len() == 1,
        "expected one open tab, found {}",
        tabs.len()
    );
    let deadline = gw
        .tracker()
        .deadline_of(tabs[0])
        .context("the tab has no deadline")?;
    Ok(deadline.at)
}

fn near(actual: Duration, expected: Duration, slack: Duration) -> bool {
    actual + slack >= expected && actual <= expected + slack
}

async fn explain<T>(
    browser: &Browser,
    app: &StreamlitApp,
    body: impl std::future::Future<Output = Result<T>>,
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

/// The counter app behind a gateway with `config`, and a browser.
async fn counter_behind(config: ConfigBuilder) -> Result<(StreamlitApp, TestGateway, Browser)> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = TestGateway::start(&app.base_url(), config).await?;
    let browser = Browser::start().await?;
    Ok((app, gw, browser))
}

#[tokio::test]
async fn browser_warning_counts_down_to_the_deadline_and_keep_working_extends_it() -> Result<()> {
    let token = "metrics-token-0123456789-abcdefghijkl";
    let (app, gw, browser) = counter_behind(
        Config::builder()
            .idle_timeout(Some(secs(30)))
            .warn_before(Some(secs(20)))
            .admin(
                std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                &format!("metrics:{token}"),
            ),
    )
    .await?;
    explain(&browser, &app, async {
        browser.goto(&format!("{}/", gw.url())).await?;
        browser.wait_for_text("clicks: 0", LOAD).await?;
        let id = gw.wait_for_tab(1, LOAD).await?;
        ensure!(
            warning(&browser).await?.is_none(),
            "the warning must not be in the page before it is needed"
        );

        let shown = wait_for_warning(&browser, Duration::from_secs(25)).await?;
        let shown_at = Instant::now();
        let deadline = only_deadline(&gw)?;
        let lead = deadline.saturating_duration_since(shown_at);
        ensure!(
            near(lead, Duration::from_secs(20), Duration::from_secs(1)),
            "the warning appeared {lead:?} before the deadline, not 20s"
        );
        ensure!(
            shown["role"] == "alertdialog" && shown["modal"] == "true",
            "{shown}"
        );
        ensure!(shown["title"] == "Are you still there?", "{shown}");
        ensure!(
            shown["focusedButton"] == true,
            "focus is not on the button: {shown}"
        );
        let first = seconds(&shown["countdown"])?;
        // Whole seconds, rounded up, read just after the warning opened: 20 s ahead within the
        // lead's 1 s slack above.
        ensure!((18..=21).contains(&first), "countdown starts at {first}s");
        browser
            .screenshot_png(workspace_root().join("docs/screenshots/warning.png"))
            .await?;
        // Two seconds and a bit pass with the warning open: the scenario's input. The
        // countdown must have followed the time that really passed.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let later = seconds(&wait_for_warning(&browser, POLL * 10).await?["countdown"])?;
        // At most 3 s off the count, or as many whole seconds as really passed if more did.
        let passed = shown_at.elapsed();
        let most = 3.max(passed.as_secs() + u64::from(passed.subsec_nanos() > 0));
        ensure!(
            later + 2 <= first && later + most >= first,
            "the countdown went from {first}s to {later}s in {passed:?}"
        );

        // "Keep working" with the keyboard: the focus is on the button.
        let mut events = gw.events();
        browser.type_keys("\u{E007}").await?;
        // The page reports the key as the person's input.
        let kept = events
            .next_matching(
                LOAD,
                |e| matches!(e, Event::Activity { tab, .. } if *tab == id),
            )
            .await?;
        wait_until(LOAD, POLL, async || {
            ensure!(!warning_open(&browser).await?, "the warning is still open");
            Ok(())
        })
        .await?;
        // The metrics counted the warning the page showed and the person's answer.
        wait_until(LOAD, POLL, async || {
            let metrics = gw.metrics_text(token).await?;
            for counter in [
                "idlegate_warnings_shown_total 1",
                "idlegate_warnings_kept_working_total 1",
            ] {
                ensure!(
                    metrics.lines().any(|l| l == counter),
                    "no {counter:?}: {metrics}"
                );
            }
            Ok(())
        })
        .await?;
        let extended = only_deadline(&gw)?;
        ensure!(
            near(
                extended.saturating_duration_since(kept.at),
                Duration::from_secs(30),
                Duration::from_secs(1)
            ),
            "Keep working did not extend the session by the idle limit"
        );

        // Left alone again: warned again 20s ahead, then the ended page at the deadline.
        wait_for_warning(&browser, Duration::from_secs(15)).await?;
        let second_lead = only_deadline(&gw)?.saturating_duration_since(Instant::now());
        ensure!(
            near(second_lead, Duration::from_secs(20), Duration::from_secs(1)),
            "the second warning came {second_lead:?} ahead"
        );
        let ended = gw.wait_for_end(id, secs(25)).await?;
        ended.on_time()?;
        // Nothing but the person moved the deadline after Keep working (give or take the
        // second the checks above allow).
        ended.by(extended + secs(1))?;
        let url = lands_on_ended_page(&browser, "idle", ended.at).await?;
        ensure!(url.contains("reason=idle"), "{url}");
        let text = browser.wait_for_text("Session ended", LOAD).await?;
        ensure!(text.contains("30 seconds without activity"), "{text}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn browser_typing_without_submitting_keeps_the_tab_alive() -> Result<()> {
    let app = StreamlitApp::test_app("notes.py", None).await?;
    let gw = TestGateway::start(
        &app.base_url(),
        Config::builder().idle_timeout(Some(secs(6))),
    )
    .await?;
    let browser = Browser::start().await?;
    explain(&browser, &app, async {
        browser.goto(&format!("{}/", gw.url())).await?;
        browser.wait_for_text("saved characters: 0", LOAD).await?;
        let id = gw.wait_for_tab(1, LOAD).await?;
        browser
            .focus("//*[@data-testid='stTextArea']//textarea", LOAD)
            .await?;
        browser.run_js(COUNT_REPORTS, vec![]).await?;
        // Twelve seconds of typing, twice the idle limit, without submitting.
        let started = Instant::now();
        let mut last_key = started;
        let mut keys = 0;
        while started.elapsed() < Duration::from_secs(12) {
            browser.type_keys("a").await?;
            keys += 1;
            last_key = Instant::now();
            let url = browser.current_url().await?;
            ensure!(
                !url.contains(ENDED_PATH),
                "the tab ended {:.1?} into typing: {url}",
                started.elapsed()
            );
            // A key every 0.8 s: the person's typing pace, the scenario's input.
            tokio::time::sleep(Duration::from_millis(800)).await;
        }
        let text = browser.body_text().await?;
        ensure!(
            text.contains("saved characters: 0"),
            "the text was submitted, so the test proves nothing:\n{text}"
        );
        // Throttled: with a 6s idle limit the script reports at most every 1.5s (a quarter),
        // so about 8 reports for 15 keys over 12s, never one per key.
        let reports = browser
            .run_js("return window.__activityReports;", vec![])
            .await?
            .as_u64()
            .context("no report count")?;
        ensure!(
            (5..=10).contains(&reports) && reports < keys,
            "{reports} activity reports for {keys} keys in 12s"
        );
        let ended = gw.wait_for_end(id, secs(15)).await?;
        ensure!(ended.end.reason == EndReason::Idle, "{:?}", ended.end);
        ended.on_time()?;
        // The last key's report dates the input by its age, so the deadline is the idle
        // limit after the key (give or take the report's transit).
        ended.by(last_key + secs(6) + ON_TIME)?;
        let after = ended.at - last_key;
        ensure!(
            after >= Duration::from_secs(5),
            "ended {after:?} after the last key, expected about 6s"
        );
        lands_on_ended_page(&browser, "idle", ended.at).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn browser_hidden_tab_ends_after_the_hidden_limit_while_the_visible_one_lives() -> Result<()>
{
    let (app, gw, browser) = counter_behind(
        Config::builder()
            .idle_timeout(Some(secs(30)))
            .hidden_timeout(Some(secs(5))),
    )
    .await?;
    explain(&browser, &app, async {
        let client = browser.client();
        browser.goto(&format!("{}/", gw.url())).await?;
        browser.wait_for_text("clicks: 0", LOAD).await?;
        let first = gw.wait_for_tab(1, LOAD).await?;
        // A second tab in front: the first one is hidden from now on.
        let (background, _front) = browser.open_tab_in_front().await?;
        let hidden_at = Instant::now();
        let hidden = gw
            .wait_for_event(LOAD, |e| {
                *e == Event::Hidden {
                    tab: first,
                    hidden: true,
                }
            })
            .await?;
        let deadline = gw.deadline(first)?;
        ensure!(deadline.reason == EndReason::HiddenIdle, "{deadline:?}");
        ensure!(deadline.at <= hidden.at + secs(5), "{deadline:?}");
        browser.goto(&format!("{}/", gw.url())).await?;
        browser.wait_for_text("clicks: 0", LOAD).await?;

        // The person works in the front tab; the background tab ends on its own.
        let mut clicks = 0;
        while hidden_at.elapsed() < Duration::from_secs(12) {
            browser
                .click("//button[.//p[text()='Increment']]", LOAD)
                .await?;
            clicks += 1;
            browser
                .wait_for_text(&format!("clicks: {clicks}"), LOAD)
                .await?;
            // A click every 0.7 s or so: the person's pace, the scenario's input.
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        let ended = gw
            .wait_for_end(first, Duration::ZERO)
            .await
            .context("the hidden tab did not end")?;
        ended.on_time_for(deadline)?;
        let after = ended.at - hidden_at;
        ensure!(
            after >= Duration::from_secs(4),
            "the hidden tab ended {after:?} after it was hidden, expected about 5s"
        );
        let url = browser.current_url().await?;
        ensure!(
            !url.contains(ENDED_PATH),
            "the visible, used tab ended: {url}"
        );
        ensure!(
            gw.tracker().len() == 1,
            "the visible tab must still be open"
        );

        // Back to the first tab: it shows why it ended.
        client.switch_to_window(background).await?;
        browser
            .wait_for_url(&format!("{ENDED_PATH}?reason=hidden_idle"), LOAD)
            .await?;
        let text = browser.wait_for_text("Session ended", LOAD).await?;
        ensure!(text.contains("stayed in the background"), "{text}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn browser_tab_shown_again_near_its_deadline_warns_at_once() -> Result<()> {
    let (app, gw, browser) = counter_behind(
        Config::builder()
            .idle_timeout(Some(secs(30)))
            .warn_before(Some(secs(20)))
            .hidden_timeout(None),
    )
    .await?;
    explain(&browser, &app, async {
        let client = browser.client();
        browser.goto(&format!("{}/", gw.url())).await?;
        browser.wait_for_text("clicks: 0", LOAD).await?;
        let (first, _other) = browser.open_tab_in_front().await?;
        // While hidden the warning time passes (it is due 10s after the page's run): the
        // page stays in the background for 13 s, the scenario's input.
        tokio::time::sleep(Duration::from_secs(13)).await;
        client.switch_to_window(first).await?;
        let shown_at = Instant::now();
        let state = wait_for_warning(&browser, Duration::from_secs(2)).await?;
        let left = seconds(&state["countdown"])?;
        ensure!(left <= 18, "countdown {left}s");
        ensure!(
            shown_at.elapsed() <= Duration::from_millis(1500),
            "the warning took {:?} to appear",
            shown_at.elapsed()
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn browser_without_the_script_idle_tabs_still_end_on_time() -> Result<()> {
    let (app, gw, browser) =
        counter_behind(Config::builder().idle_timeout(Some(secs(5))).inject(false)).await?;
    explain(&browser, &app, async {
        browser.goto(&format!("{}/", gw.url())).await?;
        browser.wait_for_text("clicks: 0", LOAD).await?;
        let loaded = Instant::now();
        let id = gw.wait_for_tab(1, LOAD).await?;
        let scripts = browser
            .run_js(
                "return Array.from(document.scripts).map(s => s.src).join(' ');",
                vec![],
            )
            .await?;
        ensure!(
            !scripts.as_str().unwrap_or_default().contains("_idlegate"),
            "the script is in the page: {scripts}"
        );
        let ended = gw.wait_for_end(id, secs(15)).await?;
        ensure!(ended.end.reason == EndReason::Idle, "{:?}", ended.end);
        ended.on_time()?;
        ended.by(page_load_finished(&gw, id).await? + secs(5))?;
        let after = ended.at - loaded;
        ensure!(
            after >= Duration::from_millis(4500),
            "ended {after:?} after the page's run, expected about 5s"
        );
        lands_on_ended_page(&browser, "idle", ended.at).await?;
        browser.wait_for_text("Session ended", LOAD).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn browser_signed_in_tabs_share_a_sliding_login_and_are_signed_out_together() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let hash = idlegate::auth::password::hash("open sesame").map_err(anyhow::Error::msg)?;
    let users = dir.path().join("users");
    std::fs::write(&users, format!("alice:{hash}\n"))?;
    let (app, gw, browser) = counter_behind(
        Config::builder()
            .warn_before(Some(secs(20)))
            .users_file(&users)
            .login_idle_timeout(secs(25))
            .cookie_secure(false),
    )
    .await?;
    explain(&browser, &app, async {
        let client = browser.client();
        // Not signed in: the app's page sends the person to the sign-in form, and back.
        browser.goto(&format!("{}/", gw.url())).await?;
        browser
            .wait_for_url("/_idlegate/login?return=%2F", LOAD)
            .await?;
        browser
            .type_into("//input[@id='username']", "alice", LOAD)
            .await?;
        browser
            .screenshot_png(workspace_root().join("docs/screenshots/sign-in.png"))
            .await?;
        browser
            .type_into("//input[@id='password']", "open sesame\u{E007}", LOAD)
            .await?;
        browser.wait_for_text("clicks: 0", LOAD).await?;
        // A second tab of the same login; the person works there only.
        let (first, _second) = browser.open_tab_in_front().await?;
        browser.goto(&format!("{}/", gw.url())).await?;
        browser.wait_for_text("clicks: 0", LOAD).await?;
        let (quiet_tab, busy_tab) = (
            gw.wait_for_tab(1, LOAD).await?,
            gw.wait_for_tab(2, LOAD).await?,
        );
        let started = Instant::now();
        let mut clicks = 0;
        let mut clicking = started;
        while started.elapsed() < Duration::from_secs(12) {
            clicking = Instant::now();
            browser
                .click("//button[.//p[text()='Increment']]", LOAD)
                .await?;
            clicks += 1;
            browser
                .wait_for_text(&format!("clicks: {clicks}"), LOAD)
                .await?;
            // A click every 2 s or so: the person's pace, the scenario's input.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        ensure!(
            gw.tracker().len() == 2,
            "a tab ended while its login was in use"
        );
        let last_click = Instant::now();
        let mut ends = gw.events();

        // Left alone: the warning names the sign-out, then both tabs end.
        let warned = wait_for_warning(&browser, Duration::from_secs(15)).await?;
        let text = warned["text"].as_str().unwrap_or_default();
        ensure!(text.contains("You will be signed out in"), "{warned}");
        let ended = gw.wait_for_end(busy_tab, secs(30)).await?;
        ensure!(
            ended.end.reason == EndReason::LoginExpired,
            "{:?}",
            ended.end
        );
        ended.on_time()?;
        ended.by(last_click + secs(25))?;
        // Never before the login's limit after the last click began (its input cannot be
        // earlier than that).
        let after = ended.at - clicking;
        ensure!(
            after >= Duration::from_secs(25),
            "signed out {after:?} after the last click, expected about 25s"
        );
        // The quiet tab ends with the login, at the same moment.
        let other = ends
            .next_matching(
                secs(5),
                |e| matches!(e, Event::TabEnded(end) if end.tab == quiet_tab),
            )
            .await?;
        let Event::TabEnded(other_end) = &other.event else {
            unreachable!()
        };
        ensure!(other_end.reason == EndReason::LoginExpired, "{other_end:?}");
        ensure!(
            other.at <= ended.at + ON_TIME,
            "the other tab ended {:?} after the first",
            other.at - ended.at
        );
        lands_on_ended_page(&browser, "login_expired", ended.at).await?;
        let text = browser.wait_for_text("Session ended", LOAD).await?;
        ensure!(
            text.contains("signed out after a period of inactivity"),
            "{text}"
        );
        client.switch_to_window(first).await?;
        browser
            .wait_for_url(&format!("{ENDED_PATH}?reason=login_expired"), LOAD)
            .await?;
        // Starting again asks to sign in again.
        browser.click("//a[@id='idlegate-restart']", LOAD).await?;
        browser.wait_for_url("/_idlegate/login", LOAD).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn browser_signs_in_with_a_real_openid_provider_and_returns_to_the_page() -> Result<()> {
    use idlegate::config::login::Reauthenticate;
    use testkit::idp::{Idp, CLIENT_ID, CLIENT_SECRET};
    let app = StreamlitApp::start(
        &testkit::venv::repo_path("tests/apps/whoami.py"),
        testkit::StreamlitOptions {
            disconnected_session_ttl_secs: Some(20),
            extra_args: vec![
                "--server.trustedUserHeaders".into(),
                r#"{"X-Forwarded-User":"name"}"#.into(),
            ],
            ..testkit::StreamlitOptions::default()
        },
    )
    .await?;
    let idp_port = Idp::reserve_port();
    let gw = TestGateway::start(
        &app.base_url(),
        Config::builder()
            .login(SignIn::Oidc(OidcProvider {
                issuer: format!("http://127.0.0.1:{idp_port}"),
                client_id: CLIENT_ID.to_owned(),
                client_secret: Some(CLIENT_SECRET.to_owned()),
                redirect_url: None,
                reauthenticate: Reauthenticate::AfterSignOut,
            }))
            .oidc_scopes(["openid", "email", "profile", "groups"])
            .cookie_secure(false),
    )
    .await?;
    let idp = Idp::start(idp_port, &format!("{}/_idlegate/oidc/callback", gw.url())).await?;
    let browser = Browser::start().await?;
    let outcome = explain(&browser, &app, async {
        browser.goto(&format!("{}/?report=7", gw.url())).await?;
        // At the provider: its sign-in form, then its consent page.
        browser
            .type_into("//input[@name='login']", "alice", LOAD)
            .await?;
        browser
            .type_into("//input[@name='password']", "anything\u{E007}", LOAD)
            .await?;
        browser.click("//button[@type='submit']", LOAD).await?;
        // Back at the page first asked for, signed in.
        let text = browser.wait_for_text("st.user name: alice", LOAD).await?;
        ensure!(text.contains("header groups: analysts"), "{text}");
        let url = browser.current_url().await?;
        ensure!(
            url == format!("{}/?report=7", gw.url()),
            "did not return to the original page: {url}"
        );
        ensure!(gw.tracker().len() == 1, "the signed-in tab is not tracked");
        let id = gw.only_tab()?;
        // Signing out through the page an app links to: the tab ends, and the person is
        // not sent straight back to the provider (which would sign them in again).
        browser
            .goto(&format!("{}/_idlegate/logout", gw.url()))
            .await?;
        browser
            .click("//button[@id='idlegate-sign-out']", LOAD)
            .await?;
        browser
            .wait_for_url("/_idlegate/login?signed_out=1", LOAD)
            .await?;
        browser.wait_for_text("You are signed out.", LOAD).await?;
        let ended = gw
            .wait_for_end(id, LOAD)
            .await
            .context("the tab outlived the sign-out")?;
        ensure!(ended.end.reason == EndReason::Logout, "{:?}", ended.end);
        ensure!(gw.tracker().is_empty(), "the tab outlived the sign-out");
        Ok(())
    })
    .await;
    outcome.with_context(|| format!("OpenID provider output:\n{}", idp.output()))
}
