//! The audit log of the real binary: a failed sign-in is written as a JSON line, and after
//! the file is moved away (log rotation) SIGHUP makes idlegate write to a new one, still
//! serving (and records the configuration reload SIGHUP also makes).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Result};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use testkit::gateway::GatewayProcess;
use testkit::http as web;
use testkit::{wait_until, FakeUpstream, Reply};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_idlegate"))
}

async fn wrong_password(gw: &GatewayProcess, user: &str) -> Result<StatusCode> {
    let body = serde_urlencoded::to_string([("username", user), ("password", "wrong")])?;
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("{}/_idlegate/login", gw.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", gw.url())
        .body(Full::new(Bytes::from(body)))?;
    Ok(web::send(req).await?.status)
}

/// The JSON lines of `path` once it has `n` of them.
async fn lines(path: &PathBuf, n: usize) -> Result<Vec<Value>> {
    wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<Value> = text
                .lines()
                .map(serde_json::from_str)
                .collect::<Result<_, _>>()?;
            ensure!(
                lines.len() >= n,
                "{} of {n} lines in {}",
                lines.len(),
                path.display()
            );
            Ok(lines)
        },
    )
    .await
}

#[tokio::test]
async fn failed_sign_ins_are_audited_and_sighup_reopens_the_rotated_log() -> Result<()> {
    let app = FakeUpstream::start().await?;
    app.reply("/_stcore/health", Reply::ok("ok"));
    let dir = tempfile::tempdir()?;
    let hash = idlegate::auth::password::hash("right").map_err(anyhow::Error::msg)?;
    let users = dir.path().join("users");
    std::fs::write(&users, format!("alice:{hash}\n"))?;
    let log = dir.path().join("audit.log");
    let config = dir.path().join("idlegate.toml");
    std::fs::write(
        &config,
        format!(
            "[login]\nmode = \"password\"\nattempts_per_minute = 1000\nusers_file = \"{}\"\n[audit]\npath = \"{}\"\n",
            users.display(),
            log.display()
        ),
    )?;
    let gw = GatewayProcess::start(
        bin(),
        &[
            "--upstream",
            &app.url(),
            "--config",
            &config.to_string_lossy(),
        ],
    )
    .await?;
    ensure!(wrong_password(&gw, "mallory").await? == StatusCode::UNAUTHORIZED);
    let first = lines(&log, 1).await?;
    ensure!(first[0]["event"] == "sign_in_failed", "{}", first[0]);
    ensure!(first[0]["client"] == "127.0.0.1" && first[0]["method"] == "password");
    ensure!(
        !std::fs::read_to_string(&log)?.contains("mallory"),
        "the name given is hashed"
    );

    std::fs::rename(&log, dir.path().join("audit.log.1"))?;
    GatewayProcess::signal(gw.pid(), "HUP")?;
    // The reopen happens on its own thread: send until a line lands in the new file.
    let reopened = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(200),
        async || {
            ensure!(wrong_password(&gw, "eve").await? == StatusCode::UNAUTHORIZED);
            ensure!(log.exists(), "no new file yet");
            Ok(())
        },
    )
    .await;
    reopened.map_err(|e| anyhow::anyhow!("{e}\n{}", gw.output()))?;
    let rotated = std::fs::read_to_string(dir.path().join("audit.log.1"))?;
    ensure!(rotated.lines().count() >= 1);
    let fresh = lines(&log, 1).await?;
    ensure!(
        fresh
            .iter()
            .all(|l| l["event"] == "sign_in_failed" || l["event"] == "config_reloaded"),
        "{fresh:?}"
    );
    // SIGHUP also reloads the configuration, which the new file records.
    wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || {
            let text = std::fs::read_to_string(&log)?;
            let reloaded = text
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .find(|line| line["event"] == "config_reloaded")
                .ok_or_else(|| anyhow::anyhow!("no config_reloaded line yet"))?;
            ensure!(reloaded["result"] == "success", "{reloaded}");
            Ok(())
        },
    )
    .await?;
    Ok(())
}
