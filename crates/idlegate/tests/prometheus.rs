//! A real Prometheus (Debian's package) scrapes the admin listener with a bearer token while
//! tabs open and end, and `promtool check metrics` lints the exposition.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use idlegate::config::Config;
use serde_json::Value;
use testkit::gateway::TestGateway;
use testkit::http as web;
use testkit::ports::free_port;
use testkit::{wait_until, StClient, StreamlitApp};
use tokio::io::AsyncWriteExt;

const TOKEN: &str = "scraper-token-0123456789-abcdefghijkl";
const RUN: Duration = Duration::from_secs(20);
/// How long Prometheus may take to start and to scrape a change (it scrapes every second).
const SCRAPED: Duration = Duration::from_secs(30);

async fn metrics_text(gw: &TestGateway) -> Result<String> {
    gw.metrics_text(TOKEN).await
}

/// Prometheus's value of `query` (an instant vector with one sample), if it has one.
async fn query(prometheus: &str, query: &str) -> Result<Option<f64>> {
    let url = format!(
        "{prometheus}/api/v1/query?{}",
        serde_urlencoded::to_string([("query", query)])?
    );
    let response = web::get(&url).await?;
    let body: Value = serde_json::from_slice(&response.body)?;
    Ok(body["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok()))
}

#[tokio::test]
async fn promtool_passes_the_metrics_and_prometheus_sees_counters_move() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let config = Config::builder().admin(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &format!("prometheus:{TOKEN}"),
    );
    let gw = TestGateway::start(&app.base_url(), config).await?;

    let mut promtool = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("promtool (Debian package prometheus; scripts/install-system-deps.sh)")?;
    let text = metrics_text(&gw).await?;
    let mut stdin = promtool.stdin.take().context("promtool stdin")?;
    stdin.write_all(text.as_bytes()).await?;
    drop(stdin);
    let checked = promtool.wait_with_output().await?;
    ensure!(
        checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}",
        checked.status,
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    let dir = tempfile::tempdir()?;
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN)?;
    let admin = gw.admin_url().context("no admin listener")?;
    let target = admin.trim_start_matches("http://");
    let config_file = dir.path().join("prometheus.yml");
    std::fs::write(
        &config_file,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: idlegate\n    scrape_interval: 1s\n\
             \x20   authorization:\n      type: Bearer\n      credentials_file: {}\n\
             \x20   static_configs:\n      - targets: ['{target}']\n",
            token_file.display()
        ),
    )?;
    let port = free_port();
    let mut prometheus = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config_file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("prometheus (Debian package; scripts/install-system-deps.sh)")?;
    let url = format!("http://127.0.0.1:{port}");
    let result = async {
        wait_until(SCRAPED, Duration::from_millis(250), async || {
            let up = query(&url, "up{job=\"idlegate\"}").await?;
            ensure!(up == Some(1.0), "target not up yet: {up:?}");
            Ok(())
        })
        .await
        .context("Prometheus never scraped the admin listener")?;
        ensure!(query(&url, "idlegate_tab_sessions_started_total").await? == Some(0.0));

        let mut tab = StClient::connect(&gw.url(), None).await?;
        tab.send_rerun(false).await?;
        tab.run_until_finished(RUN).await?;
        wait_until(SCRAPED, Duration::from_millis(250), async || {
            let started = query(&url, "idlegate_tab_sessions_started_total").await?;
            let open = query(&url, "idlegate_tab_sessions{state=\"active\"}").await?;
            ensure!(
                started == Some(1.0) && open == Some(1.0),
                "{started:?} {open:?}"
            );
            // The page's rerun went to the app and the run's messages came back; the socket's
            // upgrade was timed.
            let up = query(
                &url,
                "idlegate_websocket_frames_total{direction=\"to_app\"}",
            )
            .await?;
            let down = query(
                &url,
                "idlegate_websocket_bytes_total{direction=\"to_browser\"}",
            )
            .await?;
            let upgrades = query(
                &url,
                "idlegate_http_request_duration_seconds_count{route=\"socket\"}",
            )
            .await?;
            ensure!(
                up >= Some(1.0) && down > Some(100.0) && upgrades == Some(1.0),
                "{up:?} {down:?} {upgrades:?}"
            );
            Ok(())
        })
        .await?;
        let tab_id = gw.only_tab()?;
        ensure!(gw
            .tracker()
            .end(tab_id, idlegate::tracker::EndReason::Admin));
        wait_until(SCRAPED, Duration::from_millis(250), async || {
            let ended = query(&url, "idlegate_tab_sessions_ended_total{reason=\"admin\"}").await?;
            let count = query(&url, "idlegate_tab_session_lifetime_seconds_count").await?;
            ensure!(
                ended == Some(1.0) && count == Some(1.0),
                "{ended:?} {count:?}"
            );
            Ok(())
        })
        .await
    }
    .await;
    let _ = prometheus.kill().await;
    result
}

/// Metric names in `text` (`idlegate_` and letters, digits, `_`).
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("idlegate_") {
        let start = i + at;
        let end = start
            + text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(text.len() - start);
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if !preceded {
            names.insert(text[start..end].to_owned());
        }
        i = end;
    }
    names
}

#[tokio::test]
async fn the_dashboard_and_the_alerts_use_only_metrics_idlegate_exposes() -> Result<()> {
    let rules = testkit::venv::repo_path("deploy/prometheus/rules.yml");
    let checked = tokio::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .await?;
    ensure!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
    let tested = tokio::process::Command::new("promtool")
        .args(["test", "rules"])
        .arg(testkit::venv::repo_path("deploy/prometheus/rules_test.yml"))
        .output()
        .await?;
    ensure!(
        tested.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );

    let app = StreamlitApp::test_app("counter.py", None).await?;
    let config = Config::builder().admin(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &format!("prometheus:{TOKEN}"),
    );
    let gw = TestGateway::start(&app.base_url(), config).await?;
    let exposed: std::collections::BTreeSet<String> = metrics_text(&gw)
        .await?
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    // Present only in launcher mode, and only under a memory limit (tests/launcher.rs reads
    // the first).
    let conditional = [
        "idlegate_app_resident_memory_bytes",
        "idlegate_app_memory_released_bytes_total",
        "idlegate_memory_limit_bytes",
    ];
    let dashboard =
        std::fs::read_to_string(testkit::venv::repo_path("deploy/grafana/idlegate.json"))?;
    let parsed: Value = serde_json::from_str(&dashboard).context("the dashboard is JSON")?;
    ensure!(parsed["panels"].as_array().is_some_and(|p| !p.is_empty()));
    let used = metric_names(&dashboard)
        .into_iter()
        .chain(metric_names(&std::fs::read_to_string(&rules)?));
    for name in used {
        ensure!(
            exposed.contains(&name) || conditional.contains(&name.as_str()),
            "{name} is not exposed; exposed: {exposed:?}"
        );
    }
    Ok(())
}
