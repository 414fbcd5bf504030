//! A graceful shutdown of the real binary in front of a real Streamlit: after SIGTERM
//! readiness fails at once, a new tab is refused with the restarting screen, an open tab
//! keeps working for `shutdown.grace` and then ends with reason `shutdown`, and idlegate
//! exits 0 within the grace and 2 seconds.

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use testkit::gateway::GatewayProcess;
use testkit::{http as web, wait_until, StClient, StreamlitApp};
use tokio::time::Instant;

const GRACE: Duration = Duration::from_secs(4);
const RUN: Duration = Duration::from_secs(20);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_idlegate"))
}

async fn open_tab(url: &str) -> Result<StClient> {
    let mut tab = StClient::connect(url, None).await?;
    tab.send_rerun(false).await?;
    tab.run_until_finished(RUN).await?;
    Ok(tab)
}

#[tokio::test]
async fn sigterm_drains_open_tabs_for_the_grace_then_ends_them_and_exits_0() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("idlegate.toml");
    std::fs::write(
        &config,
        format!("[shutdown]\ngrace = \"{}s\"\n", GRACE.as_secs()),
    )?;
    let mut gw = GatewayProcess::start(
        bin(),
        &[
            "--upstream",
            &app.base_url(),
            "--config",
            &config.to_string_lossy(),
        ],
    )
    .await?;
    let url = gw.url();
    let mut tab = open_tab(&url).await?;

    GatewayProcess::signal(gw.pid(), "TERM")?;
    let signalled = Instant::now();
    let ready = format!("{url}/_idlegate/readyz");
    wait_until(
        Duration::from_secs(2),
        Duration::from_millis(20),
        async || {
            let status = web::get(&ready).await?.status;
            ensure!(status == 503, "readiness still {status}");
            Ok(())
        },
    )
    .await
    .with_context(|| gw.output())?;

    // A new tab is told the server is restarting.
    let mut late = StClient::connect(&url, None).await?;
    let told = late.wait_for_auth_redirect(RUN).await?;
    ensure!(
        told.contains("reason=shutdown"),
        "a new tab was sent to {told}"
    );

    // The open tab keeps working meanwhile.
    tab.send_rerun(false).await?;
    tab.run_until_finished(RUN).await?;
    ensure!(
        signalled.elapsed() < GRACE,
        "the check took the whole grace"
    );

    let ended = tab.wait_for_auth_redirect(GRACE + RUN).await?;
    let at = signalled.elapsed();
    ensure!(ended.contains("reason=shutdown"), "{ended}");
    ensure!(
        at >= GRACE - Duration::from_millis(200),
        "ended after {at:?}"
    );
    let status = gw
        .wait_exit(GRACE + Duration::from_secs(2) - signalled.elapsed().min(GRACE))
        .await
        .with_context(|| gw.output())?;
    ensure!(status.code() == Some(0), "exit {status}: {}", gw.output());
    ensure!(
        signalled.elapsed() <= GRACE + Duration::from_secs(2),
        "exited after {:?}",
        signalled.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn with_no_tab_open_sigterm_stops_at_once() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let mut gw = GatewayProcess::start(bin(), &["--upstream", &app.base_url()]).await?;
    GatewayProcess::signal(gw.pid(), "TERM")?;
    let status = gw.wait_exit(Duration::from_secs(3)).await?;
    ensure!(status.code() == Some(0), "exit {status}");
    Ok(())
}

#[tokio::test]
async fn a_second_signal_ends_the_grace() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let mut gw = GatewayProcess::start(bin(), &["--upstream", &app.base_url()]).await?;
    let mut tab = open_tab(&gw.url()).await?;
    GatewayProcess::signal(gw.pid(), "TERM")?;
    let ready = format!("{}/_idlegate/readyz", gw.url());
    wait_until(
        Duration::from_secs(2),
        Duration::from_millis(20),
        async || {
            ensure!(web::get(&ready).await?.status == 503);
            Ok(())
        },
    )
    .await?;
    GatewayProcess::signal(gw.pid(), "TERM")?;
    let ended = tab.wait_for_auth_redirect(Duration::from_secs(5)).await?;
    ensure!(ended.contains("reason=shutdown"), "{ended}");
    let status = gw.wait_exit(Duration::from_secs(5)).await?;
    ensure!(status.code() == Some(0), "exit {status}");
    Ok(())
}
