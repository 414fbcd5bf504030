//! The admin API against its own OpenAPI document: `openapi-spec-validator` validates the
//! document, and `schemathesis` sends generated requests to the live listener (with tabs and
//! logins open) and checks every answer against the document: status codes, content types,
//! bodies, no server errors. Both come from `tests/api-requirements.txt`, installed by
//! `scripts/test.sh` into `target/api-venv`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;

use anyhow::{ensure, Context, Result};
use idlegate::config::Config;
use testkit::gateway::TestGateway;
use testkit::venv::repo_path;
use testkit::{StClient, StreamlitApp};

const TOKEN: &str = "schemathesis-token-0123456789-abcdefgh";

fn tool(name: &str) -> Result<PathBuf> {
    let path = repo_path(format!("target/api-venv/bin/{name}"));
    ensure!(
        path.exists(),
        "{} is missing: scripts/test.sh installs it from tests/api-requirements.txt",
        path.display()
    );
    Ok(path)
}

fn explain(output: &Output) -> String {
    format!(
        "{}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn the_document_is_valid_and_the_live_api_keeps_to_it() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let config = Config::builder().admin(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &format!("schemathesis:{TOKEN}"),
    );
    let gw = TestGateway::start(&app.base_url(), config).await?;
    let mut tabs = Vec::new();
    for _ in 0..3 {
        let mut tab = StClient::connect(&gw.url(), None).await?;
        tab.send_rerun(false).await?;
        tab.run_until_finished(std::time::Duration::from_secs(20))
            .await?;
        tabs.push(tab);
    }
    let admin = gw.admin_url().context("no admin listener")?;
    let dir = tempfile::tempdir()?;
    let document = dir.path().join("openapi.json");
    let req = http::Request::get(format!("{admin}/api/v1/openapi.json"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))?;
    let response = testkit::http::send(req).await?;
    ensure!(response.status == 200, "{}", response.status);
    std::fs::write(&document, &response.body)?;

    let validated = tokio::process::Command::new(tool("openapi-spec-validator")?)
        .arg(&document)
        .output()
        .await?;
    ensure!(
        validated.status.success(),
        "openapi-spec-validator: {}",
        explain(&validated)
    );

    let checked = tokio::process::Command::new(tool("schemathesis")?)
        // A fixed seed: the same generated requests on every run, so a failure reproduces.
        .args([
            "run",
            "--checks",
            "all",
            "--max-examples",
            "30",
            "--seed",
            "20261130",
            "--header",
        ])
        .arg(format!("Authorization: Bearer {TOKEN}"))
        .args(["--url", &admin])
        .arg(&document)
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(dir.path())
        .output()
        .await?;
    ensure!(
        checked.status.success(),
        "schemathesis: {}",
        explain(&checked)
    );
    Ok(())
}
