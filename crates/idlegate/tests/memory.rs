//! Memory reclaim: tab sessions that idlegate ends, or whose tabs were simply closed, must
//! really give their memory back to the system, in launcher mode and with `--upstream`.
//!
//! The app keeps 50 MiB per session in `st.session_state`. Streamlit on its own keeps closed
//! sessions' memory until some later session disconnects, which may be never.

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use idlegate::config::Config;
use idlegate::lifecycle::Event;
use idlegate::tracker::{EndReason, TabId};
use testkit::gateway::{Events, GatewayProcess, TestGateway};
use testkit::proc::{children_of, try_rss_bytes};
use testkit::upload::upload;
use testkit::venv::{repo_path, streamlit_bin};
use testkit::{wait_until, StClient, StreamlitApp, StreamlitOptions};
use tokio::time::Instant;

const SESSIONS: usize = 5;
const MIB: f64 = 1024.0 * 1024.0;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The ids of the next `n` tabs opened after `events`' position, in order.
async fn opened_tabs(events: &mut Events, n: usize) -> Result<Vec<TabId>> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let opened = events
            .next_matching(secs(5), |e| matches!(e, Event::TabOpened { .. }))
            .await?;
        if let Event::TabOpened { tab, .. } = opened.event {
            ids.push(tab);
        }
    }
    Ok(ids)
}

/// Closes `clients` (tabs `tabs`) and waits for every tab to end as closed, each on time for
/// the reconnect grace after its connection dropped; returns when the last end reached the
/// test.
async fn all_closed(gw: &TestGateway, tabs: &[TabId], clients: Vec<StClient>) -> Result<Instant> {
    // Waited for together, from before the close: each wait follows its own tab's deadline.
    let waits =
        futures_util::future::try_join_all(tabs.iter().map(|&tab| gw.wait_for_end(tab, secs(20))));
    let close = async move {
        tokio::task::yield_now().await;
        drop(clients);
    };
    let (ends, ()) = tokio::join!(waits, close);
    let ends = ends?;
    for ended in &ends {
        ensure!(ended.end.reason == EndReason::Closed, "{:?}", ended.end);
        ended.on_time()?;
    }
    ends.iter().map(|e| e.at).max().context("no tabs")
}

/// Opens `SESSIONS` tabs and waits until each holds its 50 MiB; returns them and the peak RSS.
async fn open_heavy_tabs(url: &str, pid: u32, baseline: u64) -> Result<(Vec<StClient>, u64)> {
    let (tabs, ()) = open_heavy_tabs_n(url, SESSIONS).await?;
    let peak = wait_until(
        Duration::from_secs(20),
        Duration::from_millis(200),
        async || {
            let rss = try_rss_bytes(pid)?;
            ensure!(
                rss >= baseline + (SESSIONS as u64) * 45 * 1024 * 1024,
                "sessions hold only {:.0} MiB so far",
                mib(rss.saturating_sub(baseline))
            );
            Ok(rss)
        },
    )
    .await?;
    Ok((tabs, peak))
}

/// Waits until at least 80% of what the sessions added is given back, within 30 s of `ended`.
async fn assert_reclaimed(pid: u32, baseline: u64, peak: u64, ended: Instant) -> Result<Duration> {
    let added = peak - baseline;
    let limit = Duration::from_secs(30).saturating_sub(ended.elapsed());
    let result = wait_until(limit, Duration::from_millis(250), async || {
        let rss = try_rss_bytes(pid)?;
        let given_back = peak.saturating_sub(rss) as f64 / added as f64;
        ensure!(
            given_back >= 0.8,
            "RSS {:.0} MiB: given back {:.0}% of the {:.0} MiB the sessions added",
            mib(rss),
            given_back * 100.0,
            mib(added)
        );
        Ok(given_back)
    })
    .await
    .context("memory was not given back within 30 s of the sessions ending")?;
    let took = ended.elapsed();
    eprintln!(
        "baseline {:.0} MiB, peak {:.0} MiB, gave back {:.0}% {:.1} s after the end",
        mib(baseline),
        mib(peak),
        result * 100.0,
        took.as_secs_f64()
    );
    Ok(took)
}

fn streamlit_child(idlegate_pid: u32) -> Result<u32> {
    children_of(idlegate_pid)
        .into_iter()
        .next()
        .context("idlegate has no child process")
}

#[tokio::test]
async fn launcher_mode_frees_the_memory_of_idle_ended_sessions_within_30_s() -> Result<()> {
    let bin = Path::new(env!("CARGO_BIN_EXE_idlegate"));
    let streamlit = streamlit_bin();
    let app = repo_path("tests/apps/memory.py");
    // Default reconnect grace and app TTL: the defaults must meet the 30 s target.
    let gw = GatewayProcess::start(
        bin,
        &[
            "--idle-timeout",
            "4s",
            "--",
            streamlit.to_str().context("venv path")?,
            "run",
            app.to_str().context("app path")?,
        ],
    )
    .await?;
    let pid = streamlit_child(gw.pid())?;
    let baseline = try_rss_bytes(pid)?;
    let (mut tabs, peak) = open_heavy_tabs(&gw.url(), pid, baseline).await?;

    for tab in &mut tabs {
        let url = tab.wait_for_auth_redirect(Duration::from_secs(15)).await?;
        assert_eq!(url, "/_idlegate/ended?reason=idle");
    }
    let ended = Instant::now();
    // The pages navigate away, as a browser does after the redirect.
    for tab in &mut tabs {
        tab.close().await.ok();
    }
    assert_reclaimed(pid, baseline, peak, ended)
        .await
        .with_context(|| gw.output())?;
    Ok(())
}

#[tokio::test]
async fn upstream_mode_frees_the_memory_of_closed_tabs_after_the_reconnect_grace() -> Result<()> {
    // What the documentation tells operators to run: Streamlit with a short
    // disconnectedSessionTTL, and idlegate told the same value.
    let app = StreamlitApp::start(
        &repo_path("tests/apps/memory.py"),
        StreamlitOptions {
            disconnected_session_ttl_secs: Some(5),
            ..StreamlitOptions::default()
        },
    )
    .await?;
    let gw = TestGateway::start(
        &app.base_url(),
        Config::builder()
            .idle_timeout(Some(secs(3600)))
            .reconnect_grace(secs(3))
            .disconnected_session_ttl(secs(5)),
    )
    .await?;
    let pid = app.pid();
    // Another person keeps working in a tab of their own the whole time. Without the
    // launcher's collection hook, Python frees a session caught in a reference cycle at the
    // end of the next script run of any tab; this person's next click is that run.
    let (mut other, _) = open_heavy_tabs_n(&gw.url(), 1).await?;
    let baseline = try_rss_bytes(pid)?;
    let mut opened = gw.events();
    let (tabs, peak) = open_heavy_tabs(&gw.url(), pid, baseline).await?;
    let closing = opened_tabs(&mut opened, SESSIONS).await?;

    // The person closes the tabs.
    let closed = Instant::now();
    let ended = all_closed(&gw, &closing, tabs).await?;
    ensure!(gw.tracker().len() == 1, "{} tabs open", gw.tracker().len());
    eprintln!(
        "tabs ended as closed {:.1} s after closing",
        (ended - closed).as_secs_f64()
    );
    let clicking = async {
        loop {
            // The other person clicks every 2 s: the scenario's input.
            tokio::time::sleep(Duration::from_secs(2)).await;
            other[0].send_rerun(false).await?;
            other[0].run_until_finished(Duration::from_secs(20)).await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), anyhow::Error>(())
    };
    tokio::select! {
        reclaimed = assert_reclaimed(pid, baseline, peak, ended) => {
            reclaimed.with_context(|| app.output())?;
        }
        stopped = clicking => stopped?,
    }
    Ok(())
}

async fn open_heavy_tabs_n(url: &str, n: usize) -> Result<(Vec<StClient>, ())> {
    let mut tabs = Vec::new();
    for _ in 0..n {
        let mut tab = StClient::connect(url, None).await?;
        tab.send_rerun(false).await?;
        tab.run_until_finished(Duration::from_secs(60)).await?;
        tabs.push(tab);
    }
    Ok((tabs, ()))
}

#[tokio::test]
async fn an_upload_is_activity_and_its_file_is_released_when_the_tab_ends() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = TestGateway::start(
        &app.base_url(),
        Config::builder().idle_timeout(Some(secs(4))),
    )
    .await?;
    let mut tab = StClient::connect(&gw.url(), None).await?;
    tab.send_rerun(false).await?;
    tab.run_until_finished(Duration::from_secs(20)).await?;
    let session = tab.session_id().context("session id")?.to_owned();
    let id = gw.only_tab()?;
    let baseline = try_rss_bytes(app.pid())?;

    // Half the idle limit passes before the upload, so an end 4 s after the run and one 4 s
    // after the upload differ: the scenario's input.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = upload(
        &gw.url(),
        "/_stcore/upload_file",
        &session,
        "file-1",
        40 << 20,
        None,
    )
    .await?;
    assert_eq!(status, 204, "the app accepted the upload");
    let uploaded = Instant::now();
    let holding = try_rss_bytes(app.pid())?;
    assert!(
        holding >= baseline + (35 << 20),
        "the upload is held: {:.0} -> {:.0} MiB",
        mib(baseline),
        mib(holding)
    );

    // The upload counted as activity: the tab ends 4 s after it, not 4 s after the run.
    let ended = gw.wait_for_end(id, secs(15)).await?;
    assert_eq!(ended.end.reason, EndReason::Idle);
    ended.on_time()?;
    let after = ended.at - uploaded;
    assert!(
        after >= Duration::from_millis(3500),
        "ended {after:?} after the upload"
    );
    tab.wait_for_auth_redirect(secs(5)).await?;
    tab.close().await.ok();

    wait_until(
        Duration::from_secs(10),
        Duration::from_millis(200),
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
    .with_context(|| app.output())?;
    Ok(())
}

/// Opens `SESSIONS` tabs of `tests/apps/download.py` holding `kind` through the gateway at
/// `url`; returns them with the media URLs their pages named.
async fn open_holding_tabs(url: &str, kind: &str) -> Result<(Vec<StClient>, Vec<String>)> {
    let mut tabs = Vec::new();
    let mut media = Vec::new();
    for _ in 0..SESSIONS {
        let mut tab = StClient::connect(url, None).await?;
        tab.send_rerun_request(&testkit::stproto::RerunRequest {
            query_string: format!("kind={kind}"),
            ..Default::default()
        })
        .await?;
        let run = tab.run_until_finished(Duration::from_secs(60)).await?;
        ensure!(
            run.markdown().contains(&format!("holding {kind}").as_str()),
            "{:?}",
            run.markdown()
        );
        media.extend(run.media().into_iter().map(str::to_owned));
        tabs.push(tab);
    }
    Ok((tabs, media))
}

/// In launcher mode, five tabs each holding 40 MiB of `kind` (and 40 MiB of session state)
/// end for idleness; returns what share of the memory they added came back, and checks
/// that their media URLs then answer 404.
async fn an_ended_tabs_memory_comes_back(kind: &str, share: f64) -> Result<()> {
    let bin = Path::new(env!("CARGO_BIN_EXE_idlegate"));
    let streamlit = streamlit_bin();
    let app = repo_path("tests/apps/download.py");
    let gw = GatewayProcess::start(
        bin,
        &[
            "--idle-timeout",
            "5s",
            "--",
            streamlit.to_str().context("venv path")?,
            "run",
            app.to_str().context("app path")?,
        ],
    )
    .await?;
    let pid = streamlit_child(gw.pid())?;
    // Warm up: the first session imports numpy and pandas.
    let mut first = StClient::connect(&gw.url(), None).await?;
    first.send_rerun(false).await?;
    first.run_until_finished(Duration::from_secs(60)).await?;
    first.close().await.ok();
    // A second for the warm-up session's memory to settle before the baseline is read.
    // This gateway is a separate process (launcher mode), with no events to wait for; the
    // baseline is only a reference, no timing assertion follows from it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = try_rss_bytes(pid)?;
    let (mut tabs, media) = open_holding_tabs(&gw.url(), kind).await?;
    let peak = try_rss_bytes(pid)?;
    ensure!(
        peak >= baseline + (SESSIONS as u64) * (40 << 20),
        "the sessions hold only {:.0} MiB",
        mib(peak.saturating_sub(baseline))
    );
    if kind == "download" || kind == "audio" {
        ensure!(
            media.len() >= SESSIONS,
            "the pages named no media: {media:?}"
        );
    }
    for url in &media {
        let served = testkit::http::get(&format!("{}{url}", gw.url())).await?;
        ensure!(served.status == 200, "{url}: {}", served.status);
    }
    for tab in &mut tabs {
        let url = tab.wait_for_auth_redirect(Duration::from_secs(20)).await?;
        ensure!(url.starts_with("/_idlegate/ended?reason=idle"), "{url}");
    }
    let ended = Instant::now();
    for tab in &mut tabs {
        tab.close().await.ok();
    }
    let added = peak - baseline;
    let given_back = wait_until(
        Duration::from_secs(30),
        Duration::from_millis(250),
        async || {
            let rss = try_rss_bytes(pid)?;
            let back = peak.saturating_sub(rss) as f64 / added as f64;
            ensure!(
                back >= share,
                "{kind}: RSS {:.0} MiB, {:.0}% of the {:.0} MiB the sessions added given back",
                mib(rss),
                back * 100.0,
                mib(added)
            );
            Ok(back)
        },
    )
    .await
    .with_context(|| gw.output())?;
    eprintln!(
        "{kind}: {:.0} MiB added, {:.0}% given back {:.1} s after the end",
        mib(added),
        given_back * 100.0,
        ended.elapsed().as_secs_f64()
    );
    for url in &media {
        let gone = testkit::http::get(&format!("{}{url}", gw.url())).await?;
        ensure!(gone.status == 404, "{url} still answers {}", gone.status);
    }
    Ok(())
}

#[tokio::test]
async fn ended_tabs_downloads_are_freed_and_their_urls_answer_404() -> Result<()> {
    an_ended_tabs_memory_comes_back("download", 0.9).await
}

#[tokio::test]
async fn ended_tabs_audio_is_freed_and_its_urls_answer_404() -> Result<()> {
    an_ended_tabs_memory_comes_back("audio", 0.9).await
}

#[tokio::test]
async fn ended_tabs_lazy_tables_are_freed() -> Result<()> {
    an_ended_tabs_memory_comes_back("table", 0.9).await
}

#[tokio::test]
async fn ended_tabs_session_state_is_freed() -> Result<()> {
    an_ended_tabs_memory_comes_back("state", 0.9).await
}

#[tokio::test]
async fn upstream_mode_frees_ended_tabs_downloads_after_two_reclaims() -> Result<()> {
    let app = StreamlitApp::start(
        &repo_path("tests/apps/download.py"),
        StreamlitOptions {
            disconnected_session_ttl_secs: Some(5),
            ..StreamlitOptions::default()
        },
    )
    .await?;
    let gw = TestGateway::start(
        &app.base_url(),
        Config::builder()
            .idle_timeout(Some(secs(4)))
            .reconnect_grace(secs(3))
            .disconnected_session_ttl(secs(5)),
    )
    .await?;
    let pid = app.pid();
    let mut first = StClient::connect(&gw.url(), None).await?;
    first.send_rerun(false).await?;
    first.run_until_finished(Duration::from_secs(60)).await?;
    first.close().await.ok();
    let baseline = try_rss_bytes(pid)?;
    let mut opened = gw.events();
    let (mut tabs, media) = open_holding_tabs(&gw.url(), "download").await?;
    let holding = opened_tabs(&mut opened, SESSIONS).await?;
    ensure!(
        media.len() >= SESSIONS,
        "the pages named no media: {media:?}"
    );
    let peak = try_rss_bytes(pid)?;
    let mut last_end = None;
    for (tab, id) in tabs.iter_mut().zip(&holding) {
        tab.wait_for_auth_redirect(Duration::from_secs(20)).await?;
        tab.close().await.ok();
        let end = gw
            .wait_for_event(
                secs(5),
                |e| matches!(e, Event::TabEnded(end) if end.tab == *id),
            )
            .await?;
        last_end = Some(end.at);
    }
    let ended = last_end.context("no tabs")?;
    // Streamlit keeps the sessions for its TTL, the first poke drops them (their shutdown
    // sweeps media once), the second, a TTL later, sweeps again: downloads go then.
    wait_until(
        Duration::from_secs(40),
        Duration::from_millis(250),
        async || {
            for url in &media {
                let gone = testkit::http::get(&format!("{}{url}", gw.url())).await?;
                ensure!(gone.status == 404, "{url} still answers {}", gone.status);
            }
            Ok(())
        },
    )
    .await
    .with_context(|| app.output())?;
    let rss = try_rss_bytes(pid)?;
    eprintln!(
        "upstream downloads: {:.0} MiB added, {:.0}% given back, all URLs 404 {:.1} s after the end",
        mib(peak - baseline),
        peak.saturating_sub(rss) as f64 / (peak - baseline) as f64 * 100.0,
        ended.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::test]
async fn the_reclaim_works_when_the_app_allows_only_some_hosts() -> Result<()> {
    // The app accepts sockets only for the host browsers use (`server.allowedHosts`).
    let app = StreamlitApp::start(
        &repo_path("tests/apps/memory.py"),
        StreamlitOptions {
            disconnected_session_ttl_secs: Some(5),
            extra_args: vec!["--server.allowedHosts".into(), "localhost".into()],
            ..StreamlitOptions::default()
        },
    )
    .await?;
    let gw = TestGateway::start(
        &app.base_url(),
        Config::builder()
            .idle_timeout(Some(secs(3600)))
            .reconnect_grace(secs(3))
            .disconnected_session_ttl(secs(5)),
    )
    .await?;
    let url = format!("http://localhost:{}", gw.addr().port());
    let pid = app.pid();
    let (mut other, _) = open_heavy_tabs_n(&url, 1).await?;
    let baseline = try_rss_bytes(pid)?;
    let mut opened = gw.events();
    let (tabs, peak) = open_heavy_tabs(&url, pid, baseline).await?;
    let closing = opened_tabs(&mut opened, SESSIONS).await?;
    let ended = all_closed(&gw, &closing, tabs).await?;
    ensure!(gw.tracker().len() == 1, "{} tabs open", gw.tracker().len());
    let clicking = async {
        loop {
            // The other person clicks every 2 s: the scenario's input.
            tokio::time::sleep(Duration::from_secs(2)).await;
            other[0].send_rerun(false).await?;
            other[0].run_until_finished(Duration::from_secs(20)).await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), anyhow::Error>(())
    };
    tokio::select! {
        reclaimed = assert_reclaimed(pid, baseline, peak, ended) => {
            reclaimed.with_context(|| app.output())?;
        }
        stopped = clicking => stopped?,
    }
    Ok(())
}
