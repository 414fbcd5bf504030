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
