//! The `idlegate` binary: launcher mode (`idlegate -- streamlit run app.py`), signals, exit
//! codes, and its log lines.

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use testkit::gateway::GatewayProcess;
use testkit::proc::{children_of, is_alive};
use testkit::venv::{repo_path, streamlit_bin};
use testkit::{wait_until, StClient};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_idlegate"))
}

fn streamlit_command(app: &str) -> Vec<String> {
    vec![
        "--".to_owned(),
        streamlit_bin().display().to_string(),
        "run".to_owned(),
        repo_path(app).display().to_string(),
    ]
}

fn args<'a>(flags: &[&'a str], command: &'a [String]) -> Vec<&'a str> {
    flags
        .iter()
        .copied()
        .chain(command.iter().map(String::as_str))
        .collect()
}

#[tokio::test]
async fn launcher_serves_the_app_and_sigterm_stops_both_processes() -> Result<()> {
    let command = streamlit_command("tests/apps/counter.py");
    // Open tabs keep working for the grace after SIGTERM (tests/shutdown.rs), then end.
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("idlegate.toml");
    std::fs::write(&config, "[shutdown]\ngrace = \"2s\"\n")?;
    let config = config.to_string_lossy().into_owned();
    let mut gw = GatewayProcess::start(
        bin(),
        &args(&["--idle-timeout", "1h", "--config", &config], &command),
    )
    .await?;
    let app_pid = *children_of(gw.pid())
        .first()
        .context("the app runs as a child")?;

    let page = testkit::http::get(&format!("{}/", gw.url())).await?;
    assert_eq!(page.status, 200);
    let mut tab = StClient::connect(&gw.url(), None).await?;
    tab.send_rerun(false).await?;
    tab.run_until_finished(Duration::from_secs(20)).await?;

    GatewayProcess::signal(gw.pid(), "TERM")?;
    assert_eq!(
        tab.wait_for_auth_redirect(Duration::from_secs(10)).await?,
        "/_idlegate/ended?reason=shutdown"
    );
    let status = gw.wait_exit(Duration::from_secs(20)).await?;
    assert_eq!(status.code(), Some(0), "{}", gw.output());
    wait_until(
        Duration::from_secs(5),
        Duration::from_millis(100),
        async || {
            ensure!(!is_alive(app_pid), "the app is still running");
            Ok(())
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn launcher_exits_non_zero_when_the_app_dies() -> Result<()> {
    let command = streamlit_command("tests/apps/counter.py");
    let mut gw = GatewayProcess::start(bin(), &args(&[], &command)).await?;
    let app_pid = *children_of(gw.pid())
        .first()
        .context("the app runs as a child")?;
    GatewayProcess::signal(app_pid, "KILL")?;
    let status = gw.wait_exit(Duration::from_secs(15)).await?;
    assert_eq!(status.code(), Some(128 + 9), "{}", gw.output());
    assert!(gw.output().contains("the app exited"), "{}", gw.output());
    Ok(())
}

#[tokio::test]
async fn launcher_reports_an_app_that_fails_to_start() -> Result<()> {
    let command = streamlit_command("tests/apps/counter.py");
    let mut command = command;
    // A script that does not exist: Streamlit exits during startup.
    let missing = repo_path("tests/apps").join("no_such_app.py");
    let last = command.len() - 1;
    command[last] = missing.display().to_string();
    let mut gw = GatewayProcess::spawn(bin(), &args(&[], &command), &[])?;
    let status = gw.wait_exit(Duration::from_secs(30)).await?;
    assert_eq!(status.code(), Some(1), "{}", gw.output());
    assert!(
        gw.output().contains("the app exited during startup"),
        "{}",
        gw.output()
    );
    Ok(())
}

#[tokio::test]
async fn launcher_refuses_commands_that_set_what_it_owns() -> Result<()> {
    let mut command = streamlit_command("tests/apps/counter.py");
    command.extend(["--server.port".to_owned(), "9999".to_owned()]);
    let mut gw = GatewayProcess::spawn(bin(), &args(&[], &command), &[])?;
    let status = gw.wait_exit(Duration::from_secs(10)).await?;
    assert_eq!(status.code(), Some(2));
    assert!(
        gw.output().contains("remove --server.port"),
        "{}",
        gw.output()
    );
    Ok(())
}

#[tokio::test]
async fn json_logs_have_one_line_per_session_start_and_end_without_raw_ids() -> Result<()> {
    let command = streamlit_command("tests/apps/counter.py");
    let gw = GatewayProcess::start(
        bin(),
        &args(&["--log-format", "json", "--idle-timeout", "2s"], &command),
    )
    .await?;
    let mut tab = StClient::connect(&gw.url(), None).await?;
    tab.send_rerun(false).await?;
    tab.run_until_finished(Duration::from_secs(20)).await?;
    let id = tab.session_id().context("session id")?.to_owned();
    tab.wait_for_auth_redirect(Duration::from_secs(10)).await?;

    let ended = wait_until(
        Duration::from_secs(5),
        Duration::from_millis(100),
        async || {
            let output = gw.output();
            let line = output
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["message"] == "tab session ended")
                .context("no end line yet")?;
            Ok(line)
        },
    )
    .await?;
    assert_eq!(ended["reason"], "idle");
    assert!(ended["lifetime_s"].as_f64().unwrap_or(0.0) >= 2.0);
    let hash = ended["app_session"].as_str().unwrap_or("");
    assert_eq!(hash.len(), 8, "{ended}");
    let output = gw.output();
    let starts = output
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "tab session started")
        .count();
    assert_eq!(starts, 1);
    assert!(!output.contains(&id), "the raw session id was logged");
    Ok(())
}

#[tokio::test]
async fn launcher_makes_st_user_show_the_signed_in_person() -> Result<()> {
    use testkit::stclient::Upgrade;
    let dir = tempfile::tempdir()?;
    let hash = idlegate::auth::password::hash("pw").map_err(anyhow::Error::msg)?;
    let users = dir.path().join("users");
    std::fs::write(&users, format!("dana:{hash}\n"))?;
    let config = dir.path().join("idlegate.toml");
    std::fs::write(
        &config,
        format!("[login]\nmode = \"password\"\nusers_file = {users:?}\n"),
    )?;
    let command = streamlit_command("tests/apps/whoami.py");
    let config_arg = config.display().to_string();
    let gw = GatewayProcess::start(bin(), &args(&["--config", &config_arg], &command)).await?;

    let mut sign_in = http::Request::post(format!("{}/_idlegate/login", gw.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", gw.url());
    sign_in = sign_in.header("sec-fetch-site", "same-origin");
    let response = testkit::http::send(sign_in.body(http_body_util::Full::new(
        bytes::Bytes::from_static(b"username=dana&password=pw&return=%2F"),
    ))?)
    .await?;
    ensure!(
        response.status == 303,
        "{}: {}",
        response.status,
        response.text()
    );
    let cookie = response
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .context("no login cookie")?
        .to_owned();
    let Upgrade::Accepted(mut tab) =
        StClient::connect_adding(&gw.url(), &[("Cookie", &cookie)]).await?
    else {
        anyhow::bail!("the signed-in socket was refused");
    };
    tab.send_rerun(false).await?;
    let text = tab
        .run_until_finished(Duration::from_secs(20))
        .await?
        .markdown()
        .join("\n");
    ensure!(
        text.contains("st.user name: dana") && text.contains("st.user sub: dana"),
        "{text}\n{}",
        gw.output()
    );
    Ok(())
}

/// In launcher mode the metrics carry the app's memory: its process tree's resident set.
#[tokio::test]
async fn the_metrics_report_the_apps_memory() -> Result<()> {
    let token = "launcher-metrics-token-0123456789abcdef";
    let admin = format!("127.0.0.1:{}", testkit::free_port());
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("idlegate.toml");
    std::fs::write(
        &config,
        format!("[admin]\nlisten = \"{admin}\"\ntokens = \"ci:{token}\"\n"),
    )?;
    let config = config.to_string_lossy().into_owned();
    let command = streamlit_command("tests/apps/counter.py");
    let gw = GatewayProcess::start(bin(), &args(&["--config", &config], &command)).await?;
    let app_pid = *children_of(gw.pid())
        .first()
        .context("the app runs as a child")?;
    let req = http::Request::get(format!("http://{admin}/metrics"))
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))?;
    let text = testkit::http::send(req).await?.text();
    let reported: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("idlegate_app_resident_memory_bytes "))
        .with_context(|| format!("no app memory in\n{text}"))?
        .parse()?;
    let app_rss = testkit::proc::try_rss_bytes(app_pid)? as f64;
    ensure!(
        reported >= app_rss * 0.8 && reported < app_rss * 3.0,
        "reported {reported}, the app's own RSS {app_rss}"
    );
    Ok(())
}
