//! idlegate restarts with tabs open (the memory store forgets every tab): the pages of the
//! old process come back by themselves, naming an app session (and, with the page script, a
//! tab token, and with sign-in on, a login cookie) the new process never saw. Each lands on
//! the "session ended" page with reason `server_restarted`, once per connection, and the
//! same page coming back gets the same answer: never a fresh session under its old screen,
//! never a loop. The real binary, on the same port, in front of a real Streamlit.
//!
//! Tests whose name contains `browser` drive a real headless Chromium and run one at a time
//! (see `.config/nextest.toml`).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use testkit::fantoccini::Locator;
use testkit::gateway::GatewayProcess;
use testkit::ports::free_port;
use testkit::stclient::Upgrade;
use testkit::venv::{repo_path, streamlit_bin};
use testkit::{wait_until, Browser, StClient, StreamlitApp};
use tokio::time::Instant;

/// Where a page from before the restart is sent.
const RESTARTED: &str = "/_idlegate/ended?reason=server_restarted";
/// The log line of a session socket idlegate answered itself (its `why` is the reason).
const ANSWERED: &str = "answered a page's session socket itself";
/// How long a page may take to be told once it reached the new process.
const TOLD: Duration = Duration::from_secs(15);
/// How long a script run (or a page load in Chromium) may take.
const LOAD: Duration = Duration::from_secs(45);
/// A page script's token (the script makes a random one per page load).
const TOKEN: &str = "RestartTestPageToken0123";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_idlegate"))
}

/// Where the app runs: started by idlegate, or already running in front of it.
enum Mode {
    Launcher,
    Upstream,
}

/// Whether people sign in, and whether the cookie's key outlives the process.
#[derive(Clone, Copy, PartialEq)]
enum Login {
    Off,
    /// A random key per process: the old cookie does not verify after the restart.
    Password,
    /// Keys from a file: the old cookie verifies, but names a login the new process lacks.
    PasswordWithKeysFile,
}

/// One idlegate setup, started again and again on the same port.
struct Setup {
    args: Vec<String>,
    port: u16,
    login: Login,
    _app: Option<StreamlitApp>,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn new(mode: Mode, login: Login) -> Result<Setup> {
        let dir = tempfile::tempdir()?;
        let mut args = vec!["--log-format".to_owned(), "json".to_owned()];
        if login != Login::Off {
            let config = write_login_config(dir.path(), login)?;
            args.extend(["--config".to_owned(), config]);
        }
        let app = match mode {
            Mode::Launcher => {
                args.extend([
                    "--".to_owned(),
                    streamlit_bin().display().to_string(),
                    "run".to_owned(),
                    repo_path("tests/apps/counter.py").display().to_string(),
                ]);
                None
            }
            Mode::Upstream => {
                let app = StreamlitApp::test_app("counter.py", None).await?;
                args.extend(["--upstream".to_owned(), app.base_url()]);
                Some(app)
            }
        };
        Ok(Setup {
            args,
            port: free_port(),
            login,
            _app: app,
            _dir: dir,
        })
    }

    async fn start(&self) -> Result<GatewayProcess> {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        GatewayProcess::start_on(bin(), self.port, &args, &[]).await
    }
}

/// A password users file (`dana`, password `pw`) and the config naming it; with
/// [`Login::PasswordWithKeysFile`], a cookie keys file too. Returns the config's path.
fn write_login_config(dir: &Path, login: Login) -> Result<String> {
    let hash = idlegate::auth::password::hash("pw").map_err(anyhow::Error::msg)?;
    let users = dir.join("users");
    std::fs::write(&users, format!("dana:{hash}\n"))?;
    let mut config =
        format!("[login]\nmode = \"password\"\nusers_file = {users:?}\ncookie_secure = false\n");
    if login == Login::PasswordWithKeysFile {
        let keys = dir.join("keys");
        std::fs::write(&keys, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n")?;
        config.push_str(&format!("cookie_keys_file = {keys:?}\n"));
    }
    let path = dir.join("idlegate.toml");
    std::fs::write(&path, config)?;
    Ok(path.display().to_string())
}

/// Signs `dana` in and returns the `Cookie` header value of the login.
async fn sign_in(url: &str) -> Result<String> {
    let request = http::Request::post(format!("{url}/_idlegate/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", url)
        .header("sec-fetch-site", "same-origin")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"username=dana&password=pw&return=%2F",
        )))?;
    let response = testkit::http::send(request).await?;
    ensure!(response.status == 303, "sign-in: {}", response.status);
    Ok(response
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .context("no login cookie")?
        .to_owned())
}

/// A page as it reconnects: the app session it had, its script's token, its cookie.
struct Page {
    session: Option<String>,
    token: Option<&'static str>,
    cookie: Option<String>,
}

impl Page {
    /// Opens the session socket as this page does: Streamlit's subprotocols (with the
    /// session to resume), then the script's entry; the login cookie.
    async fn connect(&self, url: &str) -> Result<StClient> {
        let mut headers = StClient::default_headers(url, self.session.as_deref())?;
        if let Some(token) = self.token {
            headers[1].1.push_str(&format!(", idlegate.tab.{token}"));
        }
        if let Some(cookie) = &self.cookie {
            headers.push(("Cookie".to_owned(), cookie.clone()));
        }
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match StClient::connect_with_headers(url, &headers).await? {
            Upgrade::Accepted(client) => Ok(*client),
            Upgrade::Refused { status, body } => bail!("socket refused: {status} {body}"),
        }
    }
}

/// The JSON log lines of `output` whose message is `message`, with `why` (if given).
fn lines(output: &str, message: &str, why: Option<&str>) -> usize {
    output
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == message)
        .filter(|v| why.is_none_or(|why| v["why"] == why))
        .count()
}

/// Opens a tab, kills idlegate (and in launcher mode its app) with the tab open, starts it
/// again on the same port, and checks that the page, coming back twice, is sent to the
/// restarted page each time and never reaches the app.
async fn restart_with_a_tab_open(mode: Mode, login: Login, script: bool) -> Result<()> {
    let setup = Setup::new(mode, login).await?;
    let gw = setup.start().await?;
    let cookie = match setup.login {
        Login::Off => None,
        _ => Some(sign_in(&gw.url()).await?),
    };
    let mut page = Page {
        session: None,
        token: script.then_some(TOKEN),
        cookie,
    };
    let mut tab = page.connect(&gw.url()).await?;
    tab.send_rerun(false).await?;
    tab.run_until_finished(LOAD).await?;
    page.session = Some(tab.session_id().context("no session id")?.to_owned());

    gw.kill(Duration::from_secs(20)).await?;
    tab.wait_for_close(Duration::from_secs(10)).await?;
    let gw = setup.start().await?;
    for attempt in 1..=2 {
        let mut again = page.connect(&gw.url()).await?;
        let url = again
            .wait_for_auth_redirect(TOLD)
            .await
            .with_context(|| format!("connection {attempt} after the restart:\n{}", gw.output()))?;
        ensure!(url == RESTARTED, "connection {attempt} was sent to {url}");
        // idlegate holds the socket (a framed page, which cannot leave, would otherwise
        // reconnect in a loop); a page that navigates closes it.
        again.close().await?;
    }
    // The answer is logged once the socket is closed.
    let output = wait_until(TOLD, Duration::from_millis(50), async || {
        let output = gw.output();
        ensure!(lines(&output, ANSWERED, Some("server_restarted")) >= 2);
        Ok(output)
    })
    .await
    .with_context(|| gw.output())?;
    ensure!(
        lines(&output, ANSWERED, Some("server_restarted")) == 2,
        "each connection is answered once:\n{output}"
    );
    ensure!(
        lines(&output, "tab session started", None) == 0,
        "a page from before the restart reached the app:\n{output}"
    );
    Ok(())
}

#[tokio::test]
async fn launcher_restart_sends_a_page_with_its_script_to_the_restarted_page() -> Result<()> {
    restart_with_a_tab_open(Mode::Launcher, Login::Off, true).await
}

#[tokio::test]
async fn launcher_restart_sends_a_page_without_the_script_to_the_restarted_page() -> Result<()> {
    restart_with_a_tab_open(Mode::Launcher, Login::Off, false).await
}

#[tokio::test]
async fn launcher_restart_with_sign_in_sends_the_page_to_the_restarted_page() -> Result<()> {
    restart_with_a_tab_open(Mode::Launcher, Login::Password, true).await
}

#[tokio::test]
async fn upstream_restart_sends_a_page_with_its_script_to_the_restarted_page() -> Result<()> {
    restart_with_a_tab_open(Mode::Upstream, Login::Off, true).await
}

#[tokio::test]
async fn upstream_restart_sends_a_page_without_the_script_to_the_restarted_page() -> Result<()> {
    restart_with_a_tab_open(Mode::Upstream, Login::Off, false).await
}

#[tokio::test]
async fn upstream_restart_with_sign_in_sends_the_page_to_the_restarted_page() -> Result<()> {
    restart_with_a_tab_open(Mode::Upstream, Login::Password, false).await
}

#[tokio::test]
async fn upstream_restart_with_a_kept_cookie_key_sends_the_page_to_the_restarted_page() -> Result<()>
{
    restart_with_a_tab_open(Mode::Upstream, Login::PasswordWithKeysFile, true).await
}

#[tokio::test]
async fn the_restarted_page_says_the_server_restarted_and_offers_a_new_session() -> Result<()> {
    let setup = Setup::new(Mode::Upstream, Login::Off).await?;
    let gw = setup.start().await?;
    let page = testkit::http::get(&format!("{}{RESTARTED}&return=%2F", gw.url())).await?;
    let text = page.text();
    ensure!(page.status == 200, "{}", page.status);
    ensure!(
        text.contains("The server restarted and no longer knows this session"),
        "{text}"
    );
    ensure!(
        text.contains("href=\"/\""),
        "no way to a new session: {text}"
    );
    Ok(())
}

/// A real page in Chromium (the app's own frontend, which reconnects by itself, and the
/// page script) lands on the restarted page after idlegate restarts under it, and stays
/// there: while the test watches, no further connection reaches idlegate.
#[tokio::test]
async fn browser_page_lands_once_on_the_restarted_page_after_idlegate_restarts() -> Result<()> {
    let setup = Setup::new(Mode::Launcher, Login::Off).await?;
    let gw = setup.start().await?;
    let browser = Browser::start().await?;
    let result = async {
        browser.goto(&format!("{}/", gw.url())).await?;
        browser.wait_for_text("runs: 1", LOAD).await?;
        gw.kill(Duration::from_secs(20)).await?;
        let gw = setup.start().await?;
        let url = browser
            .wait_for_url(RESTARTED, LOAD)
            .await
            .with_context(|| gw.output())?;
        let text = browser
            .wait_for_text("no longer knows this session", TOLD)
            .await?;
        ensure!(text.contains("Start a new session"), "{text}");
        stays_put(&browser, &gw, &url).await
    }
    .await;
    browser.close().await?;
    result
}

/// A page framed in another site's page cannot be sent away (Streamlit posts the redirect
/// to the parent instead) and idlegate, restarted, cannot know it is framed: it is told in
/// place, the parent page stays where it is, and the frame does not reconnect in a loop.
#[tokio::test]
async fn browser_framed_page_is_told_in_place_after_idlegate_restarts() -> Result<()> {
    let setup = Setup::new(Mode::Launcher, Login::Off).await?;
    let gw = setup.start().await?;
    let (portal, _server) = testkit::browser::other_origin(format!(
        "<!doctype html><title>portal</title><h1>Portal</h1>\
         <iframe id=app src=\"{}/\" width=800 height=500></iframe>",
        gw.url()
    ))
    .await?;
    let browser = Browser::start().await?;
    let result = async {
        browser.goto(&portal).await?;
        let client = browser.client();
        let frame = wait_until(LOAD, Duration::from_millis(100), async || {
            Ok(client.find(Locator::Css("iframe#app")).await?)
        })
        .await?;
        frame.enter_frame().await?;
        browser.wait_for_text("runs: 1", LOAD).await?;
        gw.kill(Duration::from_secs(20)).await?;
        let gw = setup.start().await?;
        let text = browser
            .wait_for_text("no longer knows this session", TOLD)
            .await
            .with_context(|| gw.output())?;
        ensure!(
            !text.contains("runs:"),
            "the old screen is still there: {text}"
        );
        let answered = lines(&gw.output(), ANSWERED, None);
        ensure!(answered == 1, "told {answered} times:\n{}", gw.output());
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            let output = gw.output();
            ensure!(
                lines(&output, ANSWERED, None) == answered,
                "the frame came back:\n{output}"
            );
            ensure!(lines(&output, "tab session started", None) == 0, "{output}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let text = browser.body_text().await?;
        ensure!(text.contains("no longer knows this session"), "{text}");
        client.enter_parent_frame().await?;
        let now = browser.current_url().await?;
        ensure!(now.starts_with(&portal), "the portal moved to {now}");
        Ok(())
    }
    .await;
    browser.close().await?;
    result
}

/// Watches for five seconds that the page stays on `url` and that idlegate gets no further
/// session socket: the page left for good, it does not reconnect in a loop.
async fn stays_put(browser: &Browser, gw: &GatewayProcess, url: &str) -> Result<()> {
    let answered = lines(&gw.output(), ANSWERED, None);
    ensure!(
        answered == 1,
        "told once, not {answered} times:\n{}",
        gw.output()
    );
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let output = gw.output();
        ensure!(
            lines(&output, ANSWERED, None) == answered,
            "the page came back:\n{output}"
        );
        ensure!(lines(&output, "tab session started", None) == 0, "{output}");
        let now = browser.current_url().await?;
        ensure!(now == url, "the page moved on from {url} to {now}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}
