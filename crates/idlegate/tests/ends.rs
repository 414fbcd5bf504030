//! Ends that are complete and honest, against a real Streamlit (and real Chromium where a
//! page is involved): every page learns of its end where it was, can start again there, and
//! never gets a fresh session under its old screen; misconfigurations are refused at once;
//! signing out signs out.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use idlegate::config::login::Reauthenticate;
use idlegate::config::{Config, OidcProvider, SignIn};
use idlegate::lifecycle::Event;
use testkit::gateway::{GatewayProcess, TestGateway};
use testkit::http::Response;
use testkit::netfault::CuttingRelay;
use testkit::venv::{repo_path, streamlit_bin};
use testkit::{free_port, wait_until, Browser, StClient, StreamlitApp, StreamlitOptions};
use tokio::time::Instant;

const LOAD: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

async fn explain<T>(
    browser: &Browser,
    app: &StreamlitApp,
    body: impl Future<Output = Result<T>>,
) -> Result<T> {
    match body.await {
        Ok(value) => Ok(value),
        Err(e) => {
            let url = browser.current_url().await.unwrap_or_default();
            let text = browser.body_text().await.unwrap_or_default();
            Err(e.context(format!(
                "browser at {url}\n--- page text ---\n{text}\n--- Streamlit output ---\n{}",
                app.output()
            )))
        }
    }
}

async fn request(method: Method, url: &str, headers: &[(&str, &str)]) -> Result<Response> {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    testkit::http::send(builder.body(Full::new(Bytes::new()))?).await
}

/// A page the person was on when the server ended the tab: the ended page starts the new
/// session there, and nothing starts a session of its own meanwhile.
async fn return_row(inject: bool) -> Result<()> {
    let app = StreamlitApp::test_app("reports/app.py", None).await?;
    let gw = TestGateway::start(
        &app.base_url(),
        Config::builder().idle_timeout(Some(secs(5))).inject(inject),
    )
    .await?;
    let browser = Browser::start().await?;
    explain(&browser, &app, async {
        browser
            .goto(&format!("{}/report?id=42&view=chart", gw.url()))
            .await?;
        browser.wait_for_text("report 42 chart", LOAD).await?;
        let url = browser
            .wait_for_url("/_idlegate/ended?reason=idle", Duration::from_secs(20))
            .await?;
        ensure!(
            url.contains("return=%2Freport%3Fid%3D42%26view%3Dchart"),
            "the ended page does not know where the tab was: {url}"
        );
        browser.wait_for_text("Session ended", LOAD).await?;
        let href = browser
            .run_js(
                "return document.getElementById('idlegate-restart').getAttribute('href');",
                vec![],
            )
            .await?;
        ensure!(href == "/report?id=42&view=chart", "restart goes to {href}");
        // No stray session: nothing connects in the 5 s after the end (the window is the
        // claim, so it is waited out; any tab opened in it, however briefly, fails).
        ensure!(
            gw.tracker().is_empty(),
            "a new tab session started after the end"
        );
        gw.events()
            .none_until(Instant::now() + secs(5), |e| {
                matches!(e, Event::TabOpened { .. } | Event::TabReconnected { .. })
            })
            .await
            .context("a new tab session started after the end")?;
        browser.click("//a[@id='idlegate-restart']", LOAD).await?;
        browser.wait_for_text("report 42 chart", LOAD).await?;
        ensure!(gw.tracker().len() == 1);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn browser_an_ended_tab_starts_again_on_the_page_it_was_on() -> Result<()> {
    return_row(true).await
}

#[tokio::test]
async fn browser_an_ended_tab_starts_again_on_the_page_it_was_on_without_the_script() -> Result<()>
{
    return_row(false).await
}

#[tokio::test]
async fn browser_an_embedded_page_without_the_script_shows_its_end_and_stops_reconnecting(
) -> Result<()> {
    ends_in_place_in_a_frame("/?embed=true").await
}

/// A frame the app is not told it is in (no `?embed=true`) cannot follow the redirect to the
/// ended page either (the app posts it to the portal); once it came back after being sent
/// away, it is told in place too, and stops reconnecting.
#[tokio::test]
async fn browser_a_frame_that_does_not_say_it_is_embedded_is_told_in_place_once_it_comes_back(
) -> Result<()> {
    ends_in_place_in_a_frame("/").await
}

/// The portal page of another origin shows the app (inject off) in a frame at `path`; the
/// tab ends and the frame shows the notice in place, then makes no new connection.
async fn ends_in_place_in_a_frame(path: &str) -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = TestGateway::start(
        &app.base_url(),
        Config::builder().idle_timeout(Some(secs(5))).inject(false),
    )
    .await?;
    // Connections from the frame through a relay, to count them.
    let relay = CuttingRelay::start(gw.addr()).await?;
    let (portal, _server) = testkit::browser::other_origin(format!(
        "<!doctype html><title>portal</title><h1>Portal</h1>\
         <iframe id=app src=\"{}{path}\" width=800 height=500></iframe>",
        relay.url()
    ))
    .await?;
    let browser = Browser::start().await?;
    explain(&browser, &app, async {
        browser.goto(&portal).await?;
        let client = browser.client();
        let frame = wait_until(LOAD, POLL, async || {
            Ok(client
                .find(testkit::fantoccini::Locator::Css("iframe#app"))
                .await?)
        })
        .await?;
        frame.enter_frame().await?;
        browser.wait_for_text("clicks: 0", LOAD).await?;
        // The tab ends; the frame shows why, in place (a frame that does not say it is
        // embedded first reconnects twice, a few seconds apart, each sent away in vain).
        let text = browser
            .wait_for_text("Session ended", Duration::from_secs(30))
            .await?;
        ensure!(
            text.contains("ended after 5 seconds without activity"),
            "{text}"
        );
        ensure!(
            !text.contains("clicks:"),
            "the old screen is still there: {text}"
        );
        let ended = Instant::now();
        ensure!(gw.tracker().is_empty());
        // And it stays put: no new connection (a WebSocket needs one) in the 20 s after. The
        // window is the claim, so it is waited out, looking at the relay four times a second.
        let connections = relay.accepted();
        while ended.elapsed() < Duration::from_secs(20) {
            ensure!(
                relay.accepted() == connections,
                "the page reconnected {:?} after its end",
                ended.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        ensure!(
            !gw.history()
                .iter()
                .any(|a| matches!(a.event, Event::TabReconnected { .. })),
            "the ended page's tab came back"
        );
        let text = browser.body_text().await?;
        ensure!(text.contains("Session ended"), "{text}");
        client.enter_parent_frame().await?;
        ensure!(
            browser.current_url().await?.starts_with(&portal),
            "the portal left"
        );
        Ok(())
    })
    .await
}

/// Runs the idlegate binary, waits for it to exit (at most `limit`), and returns its
/// output.
async fn exits_with_error(args: &[&str], limit: Duration) -> Result<(i32, String)> {
    let bin = Path::new(env!("CARGO_BIN_EXE_idlegate"));
    let mut process = GatewayProcess::spawn(bin, args, &[])?;
    let started = Instant::now();
    let status = process.wait_exit(limit).await?;
    ensure!(started.elapsed() <= limit);
    Ok((status.code().unwrap_or(-1), process.output()))
}

#[tokio::test]
async fn launcher_mode_serves_under_a_base_path_set_only_in_the_apps_config_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::copy(
        repo_path("tests/apps/counter.py"),
        dir.path().join("app.py"),
    )?;
    std::fs::create_dir(dir.path().join(".streamlit"))?;
    std::fs::write(
        dir.path().join(".streamlit/config.toml"),
        "[server]\nbaseUrlPath = \"analytics\"\n",
    )?;
    let streamlit = streamlit_bin();
    let script = dir.path().join("app.py");
    let bin = Path::new(env!("CARGO_BIN_EXE_idlegate"));
    let process = GatewayProcess::spawn(
        bin,
        &[
            "--",
            streamlit.to_str().context("venv")?,
            "run",
            script.to_str().context("script")?,
        ],
        &[],
    )?;
    let started = Instant::now();
    wait_until(
        Duration::from_secs(60),
        Duration::from_millis(200),
        async || {
            let ready =
                testkit::http::get(&format!("{}/analytics/_idlegate/readyz", process.url()))
                    .await?;
            ensure!(ready.status == 200, "readyz {}", ready.status);
            Ok(())
        },
    )
    .await
    .with_context(|| process.output())?;
    eprintln!(
        "ready under the app's base path after {:?}",
        started.elapsed()
    );
    let mut tab = StClient::connect(&format!("{}/analytics", process.url()), None).await?;
    tab.send_rerun(false).await?;
    let run = tab.run_until_finished(LOAD).await?;
    ensure!(
        run.markdown().contains(&"clicks: 0"),
        "{:?}",
        run.markdown()
    );
    ensure!(
        process
            .output()
            .contains("serving under the app's own base path"),
        "{}",
        process.output()
    );
    Ok(())
}

#[tokio::test]
async fn launcher_mode_refuses_a_base_path_the_apps_command_contradicts() -> Result<()> {
    let streamlit = streamlit_bin();
    let app = repo_path("tests/apps/counter.py");
    let (code, output) = exits_with_error(
        &[
            "--base-path",
            "/reports",
            "--",
            streamlit.to_str().context("venv")?,
            "run",
            app.to_str().context("app")?,
            "--server.baseUrlPath=analytics",
        ],
        Duration::from_secs(10),
    )
    .await?;
    ensure!(code == 2, "exit code {code}: {output}");
    ensure!(
        output.contains("\"/reports\"") && output.contains("\"/analytics\""),
        "the error must name both base paths: {output}"
    );
    Ok(())
}

#[tokio::test]
async fn upstream_mode_refuses_an_app_that_serves_under_another_base_path() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let (code, output) = exits_with_error(
        &["--upstream", &app.base_url(), "--base-path", "/analytics"],
        Duration::from_secs(10),
    )
    .await?;
    ensure!(code == 2, "exit code {code}: {output}");
    ensure!(
        output.contains("\"/analytics\"") && output.contains("serves at the root"),
        "the error must name both base paths: {output}"
    );
    let app = StreamlitApp::test_app("counter.py", Some("analytics")).await?;
    let root = format!("http://127.0.0.1:{}", app.port());
    let (code, output) = exits_with_error(&["--upstream", &root], Duration::from_secs(10)).await?;
    ensure!(code == 2, "exit code {code}: {output}");
    ensure!(
        output.contains("app.base_path \"\"") && output.contains("server.baseUrlPath"),
        "{output}"
    );
    // Named in the upstream URL, the base path is adopted.
    let bin = Path::new(env!("CARGO_BIN_EXE_idlegate"));
    let adopted = GatewayProcess::spawn(bin, &["--upstream", &format!("{root}/analytics")], &[])?;
    wait_until(
        Duration::from_secs(10),
        Duration::from_millis(200),
        async || {
            let ready =
                testkit::http::get(&format!("{}/analytics/_idlegate/readyz", adopted.url()))
                    .await?;
            ensure!(ready.status == 200, "readyz {}", ready.status);
            Ok(())
        },
    )
    .await
    .with_context(|| adopted.output())?;
    Ok(())
}

#[tokio::test]
async fn an_app_restart_sends_every_page_to_the_ended_page_instead_of_a_fresh_session() -> Result<()>
{
    let port = free_port();
    let options = || StreamlitOptions {
        disconnected_session_ttl_secs: Some(20),
        port: Some(port),
        ..StreamlitOptions::default()
    };
    let app = StreamlitApp::start(&repo_path("tests/apps/counter.py"), options()).await?;
    let gw = TestGateway::start(
        &app.base_url(),
        Config::builder().idle_timeout(Some(secs(300))),
    )
    .await?;
    let mut sessions = Vec::new();
    for _ in 0..5 {
        let mut tab = StClient::connect(&gw.url(), None).await?;
        tab.send_rerun(false).await?;
        tab.run_until_finished(LOAD).await?;
        sessions.push(tab.session_id().context("session id")?.to_owned());
        drop(tab);
    }
    // Restarted: a new process that knows none of the sessions.
    app.terminate(Duration::from_secs(10)).await?;
    let app = StreamlitApp::start(&repo_path("tests/apps/counter.py"), options()).await?;
    // Each page comes back asking for its session, as a page does after a drop.
    for session in &sessions {
        let mut tab = StClient::connect(&gw.url(), Some(session)).await?;
        let url = tab
            .wait_for_auth_redirect(Duration::from_secs(10))
            .await
            .with_context(|| app.output())?;
        ensure!(
            url.starts_with("/_idlegate/ended?reason=app_restarted"),
            "{url}"
        );
    }
    ensure!(gw.tracker().is_empty());
    // A page whose session survived a drop is resumed as before.
    let mut tab = StClient::connect(&gw.url(), None).await?;
    tab.send_rerun(false).await?;
    tab.run_until_finished(LOAD).await?;
    let id = tab.session_id().context("session id")?.to_owned();
    drop(tab);
    let mut again = StClient::connect(&gw.url(), Some(&id)).await?;
    // Resumed: its next run completes in the same app session, and nothing sends it away.
    again.send_rerun(false).await?;
    let run = again
        .run_until_finished(LOAD)
        .await
        .context("a resumed session was sent away")?;
    if let Some(url) = run.events.iter().find_map(|e| match e {
        testkit::StEvent::AuthRedirect { url } => Some(url),
        _ => None,
    }) {
        bail!("a resumed session was sent away: {url}");
    }
    ensure!(
        again.session_id() == Some(id.as_str()),
        "not the same app session"
    );
    ensure!(gw.tracker().len() == 1);
    Ok(())
}

fn users_file(dir: &tempfile::TempDir, password: &str) -> Result<std::path::PathBuf> {
    let hash = idlegate::auth::password::hash(password).map_err(anyhow::Error::msg)?;
    let path = dir.path().join("users");
    std::fs::write(&path, format!("alice:{hash}\n"))?;
    Ok(path)
}

#[tokio::test]
async fn browser_the_apps_own_sign_out_signs_out_of_every_tab() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let users = users_file(&dir, "open sesame")?;
    let app = StreamlitApp::test_app("logout.py", None).await?;
    let gw = TestGateway::start(
        &app.base_url(),
        Config::builder().users_file(&users).cookie_secure(false),
    )
    .await?;
    let browser = Browser::start().await?;
    explain(&browser, &app, async {
        browser.goto(&format!("{}/", gw.url())).await?;
        browser
            .type_into("//input[@id='username']", "alice", LOAD)
            .await?;
        browser
            .type_into("//input[@id='password']", "open sesame\u{E007}", LOAD)
            .await?;
        browser.wait_for_text("logout app", LOAD).await?;
        let (first, _second) = browser.open_tab_in_front().await?;
        browser.goto(&format!("{}/", gw.url())).await?;
        browser.wait_for_text("logout app", LOAD).await?;
        let tabs = [
            gw.wait_for_tab(1, LOAD).await?,
            gw.wait_for_tab(2, LOAD).await?,
        ];
        ensure!(gw.tracker().len() == 2, "{} tabs", gw.tracker().len());
        browser
            .click("//button[.//p[text()='Sign out']]", LOAD)
            .await?;
        // This tab: signed out, at the sign-in page.
        browser
            .wait_for_url("/_idlegate/login?signed_out=1", LOAD)
            .await?;
        browser.wait_for_text("Sign in", LOAD).await?;
        // Both tabs ended for the sign-out.
        for tab in tabs {
            let ended = gw.wait_for_end(tab, LOAD).await?;
            ensure!(
                ended.end.reason == idlegate::tracker::EndReason::Logout,
                "{:?}",
                ended.end
            );
        }
        ensure!(gw.tracker().is_empty(), "{} tabs left", gw.tracker().len());
        // The other tab: ended too, and at the sign-in page that says why.
        browser.client().switch_to_window(first).await?;
        browser
            .wait_for_url("/_idlegate/login?signed_out=1", LOAD)
            .await?;
        browser.wait_for_text("signed out", LOAD).await?;
        // The app asks for a sign-in again.
        browser.goto(&format!("{}/", gw.url())).await?;
        browser.wait_for_url("/_idlegate/login", LOAD).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn the_apps_sign_out_route_from_another_site_only_offers_the_button() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let users = users_file(&dir, "open sesame")?;
    let app = StreamlitApp::test_app("logout.py", None).await?;
    let gw = TestGateway::start(&app.base_url(), Config::builder().users_file(&users)).await?;
    let page = request(
        Method::GET,
        &format!("{}/auth/logout", gw.url()),
        &[("sec-fetch-site", "cross-site")],
    )
    .await?;
    ensure!(page.status == StatusCode::OK, "{}", page.status);
    ensure!(page.text().contains("idlegate-sign-out"), "{}", page.text());
    Ok(())
}

#[tokio::test]
async fn header_mode_sends_an_ended_login_through_the_proxys_sign_out() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = TestGateway::start(
        &app.base_url(),
        Config::builder()
            .trusted_proxies(["127.0.0.1"])
            .login(SignIn::Header)
            .login_idle_timeout(secs(3))
            .sign_out_url("/oauth2/sign_out?rd=%2F"),
    )
    .await?;
    let page = |cookie: Option<String>| {
        let url = format!("{}/", gw.url());
        async move {
            let mut headers = vec![
                ("x-forwarded-user", "alice".to_owned()),
                ("sec-fetch-dest", "document".to_owned()),
                ("accept", "text/html".to_owned()),
            ];
            if let Some(cookie) = cookie {
                headers.push(("cookie", cookie));
            }
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            request(Method::GET, &url, &headers).await
        }
    };
    let first = page(None).await?;
    ensure!(first.status == StatusCode::OK, "{}", first.status);
    let cookie = first
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').next().filter(|c| c.contains("idlegate-login")))
        .context("no login cookie")?
        .to_owned();
    // The login expires.
    let mut tab = StClient::connect_adding(
        &gw.url(),
        &[("cookie", cookie.as_str()), ("x-forwarded-user", "alice")],
    )
    .await?;
    let testkit::stclient::Upgrade::Accepted(tab) = &mut tab else {
        bail!("the signed-in socket was refused");
    };
    tab.send_rerun(false).await?;
    tab.run_until_finished(LOAD).await?;
    let url = tab.wait_for_auth_redirect(Duration::from_secs(10)).await?;
    ensure!(url.contains("reason=login_expired"), "{url}");
    // The proxy still vouches for alice; idlegate sends her through its sign-out first.
    let after = page(Some(cookie.clone())).await?;
    ensure!(after.status == StatusCode::SEE_OTHER, "{}", after.status);
    ensure!(
        after.header("location") == Some("/oauth2/sign_out?rd=%2F"),
        "{:?}",
        after.header("location")
    );
    ensure!(
        after
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("idlegate-login=") && v.contains("Max-Age=0")),
        "idlegate's cookie is cleared on the way"
    );
    // Back from the proxy's sign-in, without idlegate's cookie: a new login.
    let fresh = page(None).await?;
    ensure!(fresh.status == StatusCode::OK, "{}", fresh.status);
    Ok(())
}

#[tokio::test]
async fn openid_sign_in_after_a_sign_out_asks_the_provider_to_authenticate_again() -> Result<()> {
    use testkit::idp::{Idp, CLIENT_ID, CLIENT_SECRET};
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let idp_port = Idp::reserve_port();
    let gw = TestGateway::start(
        &app.base_url(),
        Config::builder()
            .login(SignIn::Oidc(OidcProvider {
                issuer: format!("http://127.0.0.1:{idp_port}"),
                client_id: CLIENT_ID.to_owned(),
                client_secret: Some(CLIENT_SECRET.to_owned()),
                redirect_url: None,
                reauthenticate: Reauthenticate::AfterSignOut,
            }))
            .cookie_secure(false),
    )
    .await?;
    let idp = Idp::start(idp_port, &format!("{}/_idlegate/oidc/callback", gw.url())).await?;
    let start = |query: &'static str| {
        let url = format!("{}/_idlegate/login?return=%2F{query}", gw.url());
        async move { request(Method::GET, &url, &[]).await }
    };
    let first = start("").await.with_context(|| idp.output())?;
    ensure!(first.status == StatusCode::SEE_OTHER, "{}", first.status);
    let to = first.header("location").unwrap_or_default();
    ensure!(!to.contains("prompt=login"), "{to}");
    // The signed-out page's link: the provider must not sign the person straight back in.
    let again = start("&reauth=1").await?;
    let to = again.header("location").unwrap_or_default();
    ensure!(
        to.contains("prompt=login") && to.contains("max_age=0"),
        "{to}"
    );
    Ok(())
}

#[tokio::test]
async fn page_loads_a_script_makes_do_not_keep_a_login_but_a_persons_do() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let users = users_file(&dir, "open sesame")?;
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = TestGateway::start(
        &app.base_url(),
        Config::builder()
            .users_file(&users)
            .login_idle_timeout(secs(3)),
    )
    .await?;
    let form = "username=alice&password=open+sesame&return=%2F";
    let sign_in = || async {
        let request = Request::post(format!("{}/_idlegate/login", gw.url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "same-origin")
            .body(Full::new(Bytes::from(form)))?;
        let response = testkit::http::send(request).await?;
        ensure!(
            response.status == StatusCode::SEE_OTHER,
            "{}",
            response.status
        );
        response
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.split(';').next().filter(|c| c.contains("idlegate-login")))
            .map(str::to_owned)
            .context("no login cookie")
    };
    let load = |cookie: String, by_person: bool| {
        let url = format!("{}/", gw.url());
        async move {
            let mut headers = vec![
                ("cookie", cookie.as_str()),
                ("sec-fetch-dest", "document"),
                ("accept", "text/html"),
            ];
            if by_person {
                headers.push(("sec-fetch-user", "?1"));
            }
            request(Method::GET, &url, &headers).await
        }
    };
    for by_person in [true, false] {
        let cookie = sign_in().await?;
        let started = Instant::now();
        let mut answered = StatusCode::OK;
        while started.elapsed() < Duration::from_secs(6) {
            answered = load(cookie.clone(), by_person).await?.status;
            if answered != StatusCode::OK {
                break;
            }
            // A page load every second: the scenario's input.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if by_person {
            ensure!(
                answered == StatusCode::OK,
                "a person's page loads keep the login"
            );
        } else {
            ensure!(
                answered == StatusCode::SEE_OTHER,
                "page loads a script makes kept the login for {:?}",
                started.elapsed()
            );
        }
    }
    Ok(())
}
