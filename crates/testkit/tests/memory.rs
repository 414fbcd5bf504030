//! Self-test of memory measurement against a real Streamlit server.
//!
//! idlegate's memory tests judge whether ended sessions were freed by the
//! Streamlit process's resident memory; this checks that the measurement
//! sees a session's memory at all. Lives in the `memory` test binary so
//! nextest runs it alone (see .config/nextest.toml).

use std::time::Duration;

use testkit::venv::repo_path;
use testkit::{StClient, StreamlitApp, StreamlitOptions};

const MIB: u64 = 1 << 20;

#[tokio::test]
async fn testkit_memory_app_holds_50_mib_per_session() {
    let app = StreamlitApp::start(
        &repo_path("tests/apps/memory.py"),
        StreamlitOptions::default(),
    )
    .await
    .expect("start Streamlit");
    let result = async {
        // Warm up with one session so that imports (numpy) are not counted.
        let mut warm = StClient::connect(&app.base_url(), None).await?;
        warm.send_rerun(false).await?;
        let run = warm.run_until_finished(Duration::from_secs(30)).await?;
        anyhow::ensure!(run.markdown().contains(&"blob: 50 MiB"), "{:?}", run.events);

        let before = app.rss_bytes();
        let mut client = StClient::connect(&app.base_url(), None).await?;
        client.send_rerun(false).await?;
        client.run_until_finished(Duration::from_secs(30)).await?;
        let after = app.rss_bytes();
        let grown = after.saturating_sub(before);
        anyhow::ensure!(
            (45 * MIB..80 * MIB).contains(&grown),
            "one more session should add about 50 MiB, added {} MiB ({} -> {} MiB)",
            grown / MIB,
            before / MIB,
            after / MIB
        );
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        panic!("{e:#}\n--- streamlit output ---\n{}", app.output());
    }
}
