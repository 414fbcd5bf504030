//! The server's capacity against a real Streamlit: `tabs.max_total` with `tabs.on_limit`
//! ending the least recently active tab or refusing the new one ("the server is busy").

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use idlegate::config::{Config, ConfigBuilder, OnLimit};
use idlegate::lifecycle::Event;
use testkit::gateway::TestGateway;
use testkit::{StClient, StreamlitApp};

/// How long a run of the test app may take.
const RUN: Duration = Duration::from_secs(20);
/// How long a test waits for a tab to be sent away before it fails.
const SENT_AWAY: Duration = Duration::from_secs(10);

async fn gateway(app: &StreamlitApp, config: ConfigBuilder) -> Result<TestGateway> {
    TestGateway::start(&app.base_url(), config).await
}

/// Opens a tab session and waits for its first run, as a page load does.
async fn open_tab(gw: &TestGateway) -> Result<StClient> {
    let mut client = StClient::connect(&gw.url(), None).await?;
    client.send_rerun(false).await?;
    client.run_until_finished(RUN).await?;
    Ok(client)
}

#[tokio::test]
async fn over_max_total_the_least_recently_active_tab_ends_to_make_room() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = gateway(
        &app,
        Config::builder()
            .max_total(2)
            .on_limit(OnLimit::EndLeastRecentlyActive),
    )
    .await?;
    let mut first = open_tab(&gw).await?;
    let mut second = open_tab(&gw).await?;
    // A person uses the first tab again: the second is now the one left alone longest,
    // although it is the newer one.
    first.send_rerun(false).await?;
    first.run_until_finished(RUN).await?;
    let _third = open_tab(&gw).await?;
    let url = second.wait_for_auth_redirect(SENT_AWAY).await?;
    ensure!(url.ends_with("reason=evicted_capacity"), "{url}");
    ensure!(gw.tracker().len() == 2, "{} tabs open", gw.tracker().len());
    // The first tab still works.
    first.send_rerun(false).await?;
    first.run_until_finished(RUN).await?;
    let page = testkit::http::get(&format!("{}{url}", gw.url())).await?;
    ensure!(
        page.text().contains("to make room on a busy server"),
        "{}",
        page.text()
    );
    Ok(())
}

#[tokio::test]
async fn over_max_total_a_refused_tab_lands_on_the_busy_page_with_retry_after() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = gateway(
        &app,
        Config::builder().max_total(1).on_limit(OnLimit::Refuse),
    )
    .await?;
    let mut events = gw.events();
    let mut open = open_tab(&gw).await?;
    let mut refused = StClient::connect(&gw.url(), None).await?;
    let url = refused.wait_for_auth_redirect(SENT_AWAY).await?;
    ensure!(url == "/_idlegate/busy", "{url}");
    events
        .next_matching(SENT_AWAY, |e| {
            matches!(e, Event::TabRefused { limit: "max_total" })
        })
        .await
        .context("the refusal is told to subscribers")?;
    let page = testkit::http::get(&format!("{}{url}", gw.url())).await?;
    ensure!(page.status == 503, "{}", page.status);
    ensure!(
        page.header("retry-after") == Some("30"),
        "{:?}",
        page.headers
    );
    ensure!(
        page.text().contains("The server is busy"),
        "{}",
        page.text()
    );
    ensure!(page.text().contains("href=\"/\""), "{}", page.text());
    // The open tab is untouched, and once it is gone a new tab gets in.
    open.send_rerun(false).await?;
    open.run_until_finished(RUN).await?;
    open.close().await?;
    let tab = gw.only_tab()?;
    ensure!(
        gw.tracker().end(tab, idlegate::tracker::EndReason::Admin),
        "the open tab ends"
    );
    let _next = open_tab(&gw).await?;
    Ok(())
}

const MIB: u64 = 1 << 20;
/// What each session of `tests/apps/memory.py` holds.
const SESSION: u64 = 50 * MIB;

/// Opens a tab of the memory app and waits for its page-load run (its 50 MiB is held then).
async fn open_heavy_tab(url: &str) -> Result<StClient> {
    let mut tab = StClient::connect(url, None).await?;
    tab.send_rerun(false).await?;
    tab.run_until_finished(Duration::from_secs(60)).await?;
    Ok(tab)
}

/// The memory app's command after `--`.
fn memory_app() -> Result<Vec<String>> {
    let streamlit = testkit::venv::streamlit_bin();
    let app = testkit::venv::repo_path("tests/apps/memory.py");
    Ok(vec![
        streamlit.to_str().context("venv path")?.to_owned(),
        "run".to_owned(),
        app.to_str().context("app path")?.to_owned(),
    ])
}

/// The resident memory of the app idlegate (`pid`) started, with one session open.
async fn rss_with_one_session(bin: &std::path::Path, command: &[&str]) -> Result<u64> {
    let mut args = vec!["--"];
    args.extend_from_slice(command);
    let gw = testkit::gateway::GatewayProcess::start(bin, &args).await?;
    let app = app_pid(gw.pid())?;
    let _tab = open_heavy_tab(&gw.url()).await?;
    testkit::proc::try_rss_bytes(app)
}

/// `GET url` on the admin listener with the bearer `token`.
async fn admin_get(url: &str, token: &str) -> Result<testkit::http::Response> {
    let request = http::Request::get(url)
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))?;
    testkit::http::send(request).await
}

fn app_pid(idlegate: u32) -> Result<u32> {
    testkit::proc::children_of(idlegate)
        .into_iter()
        .next()
        .context("idlegate has no child process")
}

/// The `tab=N` of each log line of a tab ended with `reason`.
fn ended_for(output: &str, reason: &str) -> Vec<String> {
    output
        .lines()
        .filter(|line| line.contains("tab session ended") && line.contains(reason))
        .filter_map(|line| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix("tab=").map(str::to_owned))
        })
        .collect()
}

#[tokio::test]
async fn over_memory_high_the_least_recently_active_idle_tab_ends_and_a_busy_one_stays(
) -> Result<()> {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_idlegate"));
    let command = memory_app()?;
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    // The app with one session, measured on an idlegate of its own: the marks are set from
    // it, just above three sessions' worth (high) and just under (low).
    let one = rss_with_one_session(bin, &command).await?;
    let high = one + SESSION * 5 / 2;
    let low = one + SESSION * 19 / 10;
    let (high_s, low_s) = (high.to_string(), low.to_string());
    let admin_port = testkit::ports::free_port();
    let admin_listen = format!("127.0.0.1:{admin_port}");
    let token = "t".repeat(idlegate::config::MIN_TOKEN_CHARS);
    let tokens = format!("test:{token}");
    let mut args = vec!["--idle-timeout", "10m", "--"];
    args.extend_from_slice(&command);
    let gw = testkit::gateway::GatewayProcess::start_with_env(
        bin,
        &args,
        &[
            ("IDLEGATE_CAPACITY__MEMORY_HIGH", &high_s),
            ("IDLEGATE_CAPACITY__MEMORY_LOW", &low_s),
            ("IDLEGATE_CAPACITY__MEASURE", "app"),
            ("IDLEGATE_CAPACITY__CHECK_EVERY", "500ms"),
            ("IDLEGATE_ADMIN__LISTEN", &admin_listen),
            ("IDLEGATE_ADMIN__TOKENS", &tokens),
        ],
    )
    .await?;
    let app = app_pid(gw.pid())?;
    let url = gw.url();
    // Tab 1 is the oldest and left alone the longest, but busy: a run a person waits for.
    let mut busy = open_heavy_tab(&url).await?;
    busy.send_rerun_request(&testkit::stproto::RerunRequest {
        query_string: "sleep=120".into(),
        ..Default::default()
    })
    .await?;
    // Busy as soon as the app runs it: seen so through the admin API.
    let busy_tabs = format!("http://{admin_listen}/api/v1/tabs?state=busy");
    testkit::wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || {
            let answer = admin_get(&busy_tabs, &token).await?;
            let listed: serde_json::Value = serde_json::from_slice(&answer.body)?;
            ensure!(listed["total"] == 1, "{listed}");
            Ok(())
        },
    )
    .await
    .with_context(|| gw.output())?;
    let mut second = open_heavy_tab(&url).await?;
    let mut third = open_heavy_tab(&url).await?;
    // A fourth session goes over the high water mark: the second tab, idle the longest of
    // the idle ones, ends.
    let mut fourth = open_heavy_tab(&url).await?;
    let redirect = second
        .wait_for_auth_redirect(Duration::from_secs(30))
        .await
        .with_context(|| gw.output())?;
    ensure!(redirect.ends_with("reason=evicted_capacity"), "{redirect}");
    second.close().await.ok();
    // Over the high water mark new tabs are refused; once memory is back under the low
    // one, a fifth tab gets in, and goes over again: the third ends.
    let mut fifth = testkit::wait_until(
        Duration::from_secs(30),
        Duration::from_millis(500),
        async || open_heavy_tab(&url).await,
    )
    .await
    .with_context(|| gw.output())?;
    let redirect = third
        .wait_for_auth_redirect(Duration::from_secs(30))
        .await
        .with_context(|| gw.output())?;
    ensure!(redirect.ends_with("reason=evicted_capacity"), "{redirect}");
    third.close().await.ok();
    // The app gives the memory back and stays under the high water mark.
    let rss = testkit::wait_until(
        Duration::from_secs(20),
        Duration::from_millis(250),
        async || {
            let rss = testkit::proc::try_rss_bytes(app)?;
            ensure!(
                rss < high,
                "RSS {} MiB, high water {} MiB",
                rss / MIB,
                high / MIB
            );
            Ok(rss)
        },
    )
    .await
    .with_context(|| gw.output())?;
    eprintln!(
        "one session {} MiB; high {} MiB, low {} MiB; after: {} MiB",
        one / MIB,
        high / MIB,
        low / MIB,
        rss / MIB
    );
    // Exactly those two ended; the busy tab, the fourth and the fifth are open and work.
    let output = gw.output();
    ensure!(
        ended_for(&output, "evicted_capacity") == ["2", "3"],
        "{output}"
    );
    for tab in [&mut fourth, &mut fifth] {
        tab.send_rerun(false).await?;
        tab.run_until_finished(RUN).await?;
    }
    ensure!(!busy.is_closed(), "the busy tab is open");
    // The metrics tell what the app gave back after the ends: at least most of a session
    // (the fifth tab's session, opened meanwhile, hides what the first end gave back).
    let metrics = format!("http://{admin_listen}/metrics");
    testkit::wait_until(
        Duration::from_secs(30),
        Duration::from_millis(500),
        async || {
            let text = admin_get(&metrics, &token).await?.text();
            let released: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix("idlegate_app_memory_released_bytes_total "))
                .with_context(|| format!("no released memory in\n{text}"))?
                .parse()?;
            ensure!(
                released >= (SESSION * 4 / 5) as f64,
                "released {released} bytes"
            );
            Ok(())
        },
    )
    .await?;
    Ok(())
}
