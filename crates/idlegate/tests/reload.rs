//! Configuration reload of the real binary: after the file changes and SIGHUP, new browser
//! texts, a new user in the users file, a rotated admin token and a lower sign-in limit apply
//! to new requests while a connection opened before keeps working; a shorter
//! `tabs.idle_timeout` ends a tab opened before at the new limit, and new pages get the page
//! script with the new warning lead; a key that needs a restart is named in a warning. A bad file is refused with an error naming its key, counted, and
//! idlegate keeps serving with the values it had.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use testkit::gateway::GatewayProcess;
use testkit::http as web;
use testkit::{free_port, wait_until, FakeUpstream, Reply, StClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const OLD_TOKEN: &str = "old-token-of-at-least-32-characters";
const NEW_TOKEN: &str = "new-token-of-at-least-32-characters";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_idlegate"))
}

/// The files of one idlegate: its config, users file and admin tokens file.
struct Files {
    config: PathBuf,
    users: PathBuf,
    tokens: PathBuf,
    admin: u16,
}

impl Files {
    fn write_config(&self, title: &str, attempts: u32, extra: &str) -> Result<()> {
        std::fs::write(
            &self.config,
            format!(
                "[login]\nmode = \"password\"\nattempts_per_minute = {attempts}\nusers_file = \"{}\"\n\
                 [admin]\nlisten = \"127.0.0.1:{}\"\ntokens_file = \"{}\"\n\
                 [browser.texts]\nended_title = \"{title}\"\nwarning_title = \"{title}?\"\n{extra}",
                self.users.display(),
                self.admin,
                self.tokens.display(),
            ),
        )?;
        Ok(())
    }
}

async fn sign_in(gw: &GatewayProcess, user: &str, password: &str) -> Result<StatusCode> {
    let body = serde_urlencoded::to_string([("username", user), ("password", password)])?;
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("{}/_idlegate/login", gw.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", gw.url())
        .body(Full::new(Bytes::from(body)))?;
    Ok(web::send(req).await?.status)
}

/// An admin request with `token`: its status and body.
async fn admin(port: u16, path: &str, token: &str) -> Result<(StatusCode, String)> {
    let req = Request::builder()
        .uri(format!("http://127.0.0.1:{port}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))?;
    let response = web::send(req).await?;
    Ok((response.status, response.text()))
}

async fn ended_page(gw: &GatewayProcess) -> Result<String> {
    Ok(web::get(&format!("{}/_idlegate/ended", gw.url()))
        .await?
        .text())
}

/// One keep-alive connection opened before the reload: a request on it answers 200.
async fn still_answers(conn: &mut TcpStream) -> Result<()> {
    conn.write_all(b"GET /_idlegate/healthz HTTP/1.1\r\nhost: idlegate\r\n\r\n")
        .await?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .context("no answer on the old connection")??;
    let head = String::from_utf8_lossy(&buf[..n]);
    ensure!(head.starts_with("HTTP/1.1 200"), "old connection: {head}");
    Ok(())
}

/// The value of `idlegate_config_reloads_total{result="<result>"}`.
fn reloads(metrics: &str, result: &str) -> Option<f64> {
    let prefix = format!("idlegate_config_reloads_total{{result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix)?.trim().parse().ok())
}

async fn wait_for_reloads(port: u16, result: &str, n: f64) -> Result<()> {
    wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || {
            let (_, text) = admin(port, "/metrics", NEW_TOKEN).await?;
            let seen = reloads(&text, result);
            ensure!(seen == Some(n), "{result} reloads: {seen:?}");
            Ok(())
        },
    )
    .await
}

#[tokio::test]
async fn sighup_applies_a_changed_file_and_keeps_serving_after_a_bad_one() -> Result<()> {
    let app = FakeUpstream::start().await?;
    app.reply("/_stcore/health", Reply::ok("ok"));
    let dir = tempfile::tempdir()?;
    let files = Files {
        config: dir.path().join("idlegate.toml"),
        users: dir.path().join("users"),
        tokens: dir.path().join("tokens"),
        admin: free_port(),
    };
    let alice = idlegate::auth::password::hash("alice-pw").map_err(anyhow::Error::msg)?;
    std::fs::write(&files.users, format!("alice:{alice}\n"))?;
    std::fs::write(&files.tokens, format!("ops:{OLD_TOKEN}\n"))?;
    files.write_config("Old title", 1000, "")?;
    let config = files.config.to_string_lossy().into_owned();
    let gw = GatewayProcess::start(bin(), &["--upstream", &app.url(), "--config", &config]).await?;
    let mut conn = TcpStream::connect(("127.0.0.1", gw.port())).await?;
    still_answers(&mut conn).await?;
    ensure!(ended_page(&gw).await?.contains("Old title"));
    ensure!(sign_in(&gw, "bob", "bob-pw").await? == StatusCode::UNAUTHORIZED);
    ensure!(admin(files.admin, "/api/v1/logins", OLD_TOKEN).await?.0 == StatusCode::OK);

    // A new title, a new user, a rotated token, a lower limit; and a key needing a restart.
    let bob = idlegate::auth::password::hash("bob-pw").map_err(anyhow::Error::msg)?;
    std::fs::write(&files.users, format!("alice:{alice}\nbob:{bob}\n"))?;
    std::fs::write(&files.tokens, format!("ops:{NEW_TOKEN}\n"))?;
    files.write_config("New title", 2, "[limits]\nmax_connections = 777\n")?;
    GatewayProcess::signal(gw.pid(), "HUP")?;
    wait_for_reloads(files.admin, "success", 1.0)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.output()))?;
    ensure!(ended_page(&gw).await?.contains("New title"));
    let script = web::get(&format!("{}/_idlegate/client.js", gw.url())).await?;
    ensure!(
        script.text().contains("New title?"),
        "the page script has the new warning"
    );
    ensure!(admin(files.admin, "/api/v1/logins", OLD_TOKEN).await?.0 == StatusCode::UNAUTHORIZED);
    ensure!(admin(files.admin, "/api/v1/logins", NEW_TOKEN).await?.0 == StatusCode::OK);
    ensure!(sign_in(&gw, "bob", "bob-pw").await? == StatusCode::SEE_OTHER);
    // Two attempts a minute now: bob's sign-in was one, this is the second, then refused.
    ensure!(sign_in(&gw, "alice", "wrong").await? == StatusCode::UNAUTHORIZED);
    ensure!(sign_in(&gw, "alice", "wrong").await? == StatusCode::TOO_MANY_REQUESTS);
    still_answers(&mut conn).await?;
    let output = gw.output();
    ensure!(
        output.contains("limits.max_connections changed, but takes effect only after a restart"),
        "{output}"
    );

    // The same file again: nothing is applied anew, and the key that needs a restart is
    // still named (it still differs from the running value).
    GatewayProcess::signal(gw.pid(), "HUP")?;
    wait_for_reloads(files.admin, "success", 2.0).await?;
    let output = gw.output();
    let last = output
        .lines()
        .rfind(|line| line.contains("configuration reloaded"))
        .context("no reload line")?;
    ensure!(
        last.contains("applied=[]") && last.contains("limits.max_connections"),
        "{last}"
    );

    // A bad value: refused, named, counted; everything stays as it was.
    files.write_config("Bad title", 2, "[limits]\nidle_timeout = \"soon\"\n")?;
    GatewayProcess::signal(gw.pid(), "HUP")?;
    wait_for_reloads(files.admin, "failure", 1.0).await?;
    let output = gw.output();
    ensure!(
        output.contains("configuration reload refused") && output.contains("limits.idle_timeout"),
        "{output}"
    );
    ensure!(ended_page(&gw).await?.contains("New title"));
    ensure!(admin(files.admin, "/api/v1/logins", NEW_TOKEN).await?.0 == StatusCode::OK);
    still_answers(&mut conn).await?;

    // An unreadable users file is refused the same way.
    std::fs::remove_file(&files.users)?;
    files.write_config("Bad title", 2, "")?;
    GatewayProcess::signal(gw.pid(), "HUP")?;
    wait_for_reloads(files.admin, "failure", 2.0).await?;
    ensure!(gw.output().contains("login.users_file"));
    ensure!(ended_page(&gw).await?.contains("New title"));
    still_answers(&mut conn).await?;
    Ok(())
}

/// The page script idlegate serves now.
async fn client_js(gw: &GatewayProcess) -> Result<String> {
    Ok(web::get(&format!("{}/_idlegate/client.js", gw.url()))
        .await?
        .text())
}

#[tokio::test]
async fn sighup_with_a_shorter_idle_limit_ends_an_open_tab_by_it_and_retimes_the_warning(
) -> Result<()> {
    let app = FakeUpstream::start().await?;
    app.reply("/_stcore/health", Reply::ok("ok"));
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("idlegate.toml");
    let admin_port = free_port();
    let write = |tabs: &str| {
        std::fs::write(
            &config,
            format!(
                "[tabs]\n{tabs}\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\
                 tokens = \"ops:{NEW_TOKEN}\"\n"
            ),
        )
    };
    write("idle_timeout = \"1h\"\nwarn_before = \"5m\"")?;
    let path = config.to_string_lossy().into_owned();
    let gw = GatewayProcess::start(bin(), &["--upstream", &app.url(), "--config", &path]).await?;
    ensure!(client_js(&gw).await?.contains("\"warnBeforeMs\":300000"));
    let mut tab = StClient::connect(&gw.url(), None).await?;

    write("idle_timeout = \"4s\"\nwarn_before = \"off\"")?;
    GatewayProcess::signal(gw.pid(), "HUP")?;
    let reloaded = tokio::time::Instant::now();
    wait_for_reloads(admin_port, "success", 1.0)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.output()))?;
    let script = client_js(&gw).await?;
    ensure!(
        script.contains("\"warnBeforeMs\":null") && script.contains("\"reportIntervalMs\":1000"),
        "the page script keeps the old timings"
    );
    // Opened before the reload, idle since: it ends by the new limit, not in an hour.
    let ended = tab
        .wait_for_auth_redirect(Duration::from_secs(15))
        .await
        .with_context(|| gw.output())?;
    ensure!(ended.contains("reason=idle"), "{ended}");
    ensure!(
        reloaded.elapsed() < Duration::from_secs(10),
        "ended {:?} after the reload",
        reloaded.elapsed()
    );
    let page = web::get(&format!("{}/_idlegate/ended?reason=idle", gw.url()))
        .await?
        .text();
    ensure!(page.contains("after 4 seconds"), "{page}");
    ensure!(!gw.output().contains("tabs.idle_timeout changed, but"));
    Ok(())
}
