//! Self-tests of the test kit against a real Streamlit server (no gateway).
//!
//! They pin down the Streamlit behaviour that idlegate's own tests rely on:
//! how a session starts, how a reconnecting client resumes it, what a
//! browser renders, and which process holds the memory.

use std::time::Duration;

use anyhow::Result;
use testkit::stclient::{script_finished, Upgrade};
use testkit::venv::repo_path;
use testkit::{Browser, StClient, StEvent, StreamlitApp, StreamlitOptions};

const RUN_TIMEOUT: Duration = Duration::from_secs(30);

async fn counter_app() -> Result<StreamlitApp> {
    StreamlitApp::start(
        &repo_path("tests/apps/counter.py"),
        StreamlitOptions::default(),
    )
    .await
}

/// Runs `body`, printing the server's output if it fails, so a failure shows
/// what Streamlit said.
async fn with_output<T>(
    app: &StreamlitApp,
    body: impl std::future::Future<Output = Result<T>>,
) -> T {
    match body.await {
        Ok(v) => v,
        Err(e) => panic!("{e:#}\n--- streamlit output ---\n{}", app.output()),
    }
}

#[tokio::test]
async fn testkit_streamlit_pid_is_the_python_process() {
    let app = counter_app().await.expect("start Streamlit");
    let cmdline = testkit::proc::cmdline(app.pid()).unwrap();
    assert!(
        cmdline[0].contains("python"),
        "the console script should exec Python directly: {cmdline:?}"
    );
    assert!(
        cmdline.iter().any(|a| a.ends_with("counter.py")),
        "{cmdline:?}"
    );
    // A bare Streamlit server with numpy, pandas and pyarrow loaded.
    let rss = app.rss_bytes();
    assert!(rss > 30 << 20, "implausibly small RSS: {rss}");
    let health = testkit::http::get(&format!("{}/_stcore/health", app.base_url()))
        .await
        .unwrap();
    assert_eq!(health.status, 200);
}

#[tokio::test]
async fn testkit_stclient_runs_script_and_resumes_session() {
    let app = StreamlitApp::start(
        &repo_path("tests/apps/counter.py"),
        StreamlitOptions {
            disconnected_session_ttl_secs: Some(60),
            ..Default::default()
        },
    )
    .await
    .expect("start Streamlit");

    with_output(&app, async {
        let mut client = StClient::connect(&app.base_url(), None).await?;
        client.send_rerun(false).await?;
        let run = client.run_until_finished(RUN_TIMEOUT).await?;
        assert_eq!(run.status, script_finished::FINISHED_SUCCESSFULLY);
        assert!(run.markdown().contains(&"runs: 1"), "{:?}", run.events);
        assert!(
            run.events.contains(&StEvent::Status { running: true }),
            "{:?}",
            run.events
        );
        let first_id = client
            .session_id()
            .expect("new_session carries an id")
            .to_owned();
        assert!(!first_id.is_empty());

        client.send_rerun(false).await?;
        let run = client.run_until_finished(RUN_TIMEOUT).await?;
        assert!(run.markdown().contains(&"runs: 2"), "{:?}", run.events);
        client.close().await?;
        client.wait_for_close(RUN_TIMEOUT).await?;

        // A tab that reconnects with its previous id gets the same session,
        // state included.
        let mut resumed = StClient::connect(&app.base_url(), Some(&first_id)).await?;
        resumed.send_rerun(false).await?;
        let run = resumed.run_until_finished(RUN_TIMEOUT).await?;
        assert_eq!(resumed.session_id(), Some(first_id.as_str()));
        assert!(run.markdown().contains(&"runs: 3"), "{:?}", run.events);

        // Without the id, a new session starts from scratch.
        let mut fresh = StClient::connect(&app.base_url(), None).await?;
        fresh.send_rerun(false).await?;
        let run = fresh.run_until_finished(RUN_TIMEOUT).await?;
        assert_ne!(fresh.session_id(), Some(first_id.as_str()));
        assert!(run.markdown().contains(&"runs: 1"), "{:?}", run.events);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn testkit_stclient_sees_upgrade_refusal() {
    let app = counter_app().await.expect("start Streamlit");
    with_output(&app, async {
        // A cross-site Origin is rejected before the upgrade completes.
        let mut headers = StClient::default_headers(&app.base_url(), None)?;
        headers[0].1 = "http://evil.example".into();
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // Streamlit closes the socket before accepting it, which the ASGI
        // server turns into a plain HTTP 403 for the upgrade request.
        match StClient::connect_with_headers(&app.base_url(), &headers).await? {
            Upgrade::Refused { status, .. } => assert_eq!(status, 403),
            Upgrade::Accepted(_) => panic!("a cross-site WebSocket upgrade was accepted"),
        }
        // The same request with the right Origin is accepted.
        let good = StClient::default_headers(&app.base_url(), None)?;
        let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert!(matches!(
            StClient::connect_with_headers(&app.base_url(), &good).await?,
            Upgrade::Accepted(_)
        ));
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn testkit_browser_renders_counter() {
    let app = counter_app().await.expect("start Streamlit");
    let browser = Browser::start().await.expect("start Chromium");
    with_output(&app, async {
        browser.goto(&app.base_url()).await?;
        // "clicks" is written after "runs": the page may show the first before the second.
        let text = browser
            .wait_for_text("clicks: 0", Duration::from_secs(30))
            .await?;
        assert!(text.contains("runs: 1"), "{text}");
        let shot = std::env::temp_dir().join(format!("testkit-counter-{}.png", std::process::id()));
        browser.screenshot_png(&shot).await?;
        let png = std::fs::read(&shot)?;
        std::fs::remove_file(&shot)?;
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        Ok(())
    })
    .await;
    let driver = browser.driver_pid();
    drop(browser);
    // Dropping the guard ends chromedriver and every Chromium process.
    testkit::wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || {
            anyhow::ensure!(
                !testkit::proc::is_alive(driver),
                "chromedriver {driver} still alive"
            );
            Ok(())
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn testkit_stclient_drives_fragment_auto_rerun() {
    let app = StreamlitApp::start(
        &repo_path("tests/apps/fragment.py"),
        StreamlitOptions::default(),
    )
    .await
    .expect("start Streamlit");
    with_output(&app, async {
        let mut client = StClient::connect(&app.base_url(), None).await?;
        client.send_rerun(false).await?;
        let run = client.run_until_finished(RUN_TIMEOUT).await?;
        assert!(run.markdown().contains(&"ticks: 1"), "{:?}", run.events);
        // The server asks the frontend to rerun the fragment every second;
        // the frontend's timer then sends an auto rerun for it.
        let fragment_id = client
            .history()
            .iter()
            .find_map(|e| match e {
                StEvent::AutoRerun {
                    interval_secs,
                    fragment_id,
                } => {
                    assert_eq!(*interval_secs, 1.0);
                    Some(fragment_id.clone())
                }
                _ => None,
            })
            .expect("an auto_rerun message for the fragment");
        client.send_fragment_auto_rerun(&fragment_id).await?;
        let run = client.run_until_finished(RUN_TIMEOUT).await?;
        assert_eq!(
            run.status,
            script_finished::FINISHED_FRAGMENT_RUN_SUCCESSFULLY
        );
        assert!(run.markdown().contains(&"ticks: 2"), "{:?}", run.events);
        Ok(())
    })
    .await;
}

/// The README's demo app renders all three pages.
#[tokio::test]
async fn testkit_browser_renders_example_app() {
    let app = StreamlitApp::start(&repo_path("examples/app.py"), StreamlitOptions::default())
        .await
        .expect("start Streamlit");
    let browser = Browser::start().await.expect("start Chromium");
    with_output(&app, async {
        browser.goto(&app.base_url()).await?;
        browser
            .wait_for_text("Button clicks", Duration::from_secs(30))
            .await?;
        for (page, needle) in [
            ("Explore", "standard deviation"),
            ("Notes", "Saved notes: 0 words"),
        ] {
            browser.goto(&format!("{}/{page}", app.base_url())).await?;
            browser
                .wait_for_text(needle, Duration::from_secs(30))
                .await?;
        }
        Ok(())
    })
    .await;
}
