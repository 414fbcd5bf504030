//! Signing in and out through idlegate, against a real Streamlit: password and header modes,
//! the login cookie, the sliding login TTL across tabs, sign-out, identity headers, the
//! per-user tab limit, and the bad inputs all of those must refuse.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use http::{Method, StatusCode};
use idlegate::config::{Config, ConfigBuilder, OnLimit, SignIn};
use idlegate::lifecycle::Event;
use idlegate::tracker::{EndReason, TabId};
use testkit::gateway::{TestGateway, ON_TIME};
use testkit::http::Response;
use testkit::signin::request;
use testkit::stclient::Upgrade;
use testkit::streamlit::StreamlitOptions;
use testkit::{StClient, StreamlitApp};
use tokio::time::Instant;

const RUN: Duration = Duration::from_secs(20);
const PASSWORD: &str = "correct horse battery";
const COOKIE: &str = "__Host-idlegate-login";

/// A users file with alice and bob, both with [`PASSWORD`].
fn users_file(dir: &tempfile::TempDir) -> Result<PathBuf> {
    let hash = idlegate::auth::password::hash(PASSWORD).map_err(anyhow::Error::msg)?;
    let path = dir.path().join("users");
    std::fs::write(&path, format!("alice:{hash}\nbob:{hash}\n"))?;
    Ok(path)
}

/// A gateway with the users of [`users_file`] signing in with passwords, and `config`.
async fn gateway(
    app: &StreamlitApp,
    dir: &tempfile::TempDir,
    config: ConfigBuilder,
) -> Result<TestGateway> {
    let users = users_file(dir)?;
    TestGateway::start(&app.base_url(), config.users_file(&users)).await
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Posts the sign-in form like the sign-in page does.
async fn sign_in(gw: &TestGateway, user: &str, password: &str, to: &str) -> Result<Response> {
    let body =
        serde_urlencoded::to_string([("username", user), ("password", password), ("return", to)])?;
    request(
        Method::POST,
        &format!("{}/_idlegate/login", gw.url()),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", &gw.url()),
            ("sec-fetch-site", "same-origin"),
        ],
        &body,
    )
    .await
}

/// The `name=value` of the login cookie a response set.
fn login_cookie(response: &Response) -> Result<String> {
    response
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{COOKIE}=")))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
        .context("no login cookie set")
}

async fn signed_in(gw: &TestGateway, user: &str) -> Result<String> {
    let response = sign_in(gw, user, PASSWORD, "/").await?;
    ensure!(
        response.status == StatusCode::SEE_OTHER,
        "{}: {}",
        response.status,
        response.text()
    );
    login_cookie(&response)
}

async fn page(gw: &TestGateway, path: &str, cookie: Option<&str>) -> Result<Response> {
    let mut headers = vec![("sec-fetch-dest", "document"), ("accept", "text/html")];
    if let Some(cookie) = cookie {
        headers.push(("cookie", cookie));
    }
    request(Method::GET, &format!("{}{path}", gw.url()), &headers, "").await
}

/// Opens a tab with a cookie (and any extra headers), and waits for its first run.
async fn open_tab(gw: &TestGateway, cookie: &str, extra: &[(&str, &str)]) -> Result<StClient> {
    Ok(open_tab_reading(gw, cookie, extra).await?.0)
}

/// [`open_tab`], also returning what the first run wrote.
async fn open_tab_reading(
    gw: &TestGateway,
    cookie: &str,
    extra: &[(&str, &str)],
) -> Result<(StClient, String)> {
    let headers: Vec<(&str, &str)> = [("Cookie", cookie)]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    let mut tab = match StClient::connect_adding(&gw.url(), &headers).await? {
        Upgrade::Accepted(tab) => *tab,
        Upgrade::Refused { status, body } => anyhow::bail!("upgrade refused: {status} {body}"),
    };
    tab.send_rerun(false).await?;
    let text = tab.run_until_finished(RUN).await?.markdown().join("\n");
    Ok((tab, text))
}

fn location(response: &Response) -> &str {
    response.header("location").unwrap_or_default()
}

#[tokio::test]
async fn pages_need_a_sign_in_that_returns_to_them_with_a_fresh_cookie() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = gateway(&app, &dir, Config::builder()).await?;

    let anonymous = page(&gw, "/reports?q=1", None).await?;
    ensure!(
        anonymous.status == StatusCode::SEE_OTHER,
        "{}",
        anonymous.status
    );
    ensure!(
        location(&anonymous) == "/_idlegate/login?return=%2Freports%3Fq%3D1",
        "{}",
        location(&anonymous)
    );
    let fetch = request(
        Method::GET,
        &format!("{}/_stcore/host-config", gw.url()),
        &[],
        "",
    )
    .await?;
    ensure!(fetch.status == StatusCode::UNAUTHORIZED, "{}", fetch.status);
    let form = page(&gw, "/_idlegate/login?return=%2Freports%3Fq%3D1", None).await?;
    ensure!(form.text().contains("name=\"password\""), "{}", form.text());
    ensure!(
        form.text().contains("value=\"/reports?q=1\""),
        "{}",
        form.text()
    );

    let wrong = sign_in(&gw, "alice", "nope", "/reports?q=1").await?;
    let nobody = sign_in(&gw, "mallory", "nope", "/reports?q=1").await?;
    ensure!(wrong.status == StatusCode::UNAUTHORIZED && nobody.status == StatusCode::UNAUTHORIZED);
    ensure!(
        wrong.text() == nobody.text(),
        "a wrong password and an unknown user must read the same"
    );
    ensure!(wrong.headers.get("set-cookie").is_none());

    let ok = sign_in(&gw, "alice", PASSWORD, "/reports?q=1").await?;
    ensure!(ok.status == StatusCode::SEE_OTHER && location(&ok) == "/reports?q=1");
    let set = ok.header("set-cookie").context("no cookie")?;
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        ensure!(set.contains(attribute), "cookie lacks {attribute}: {set}");
    }
    let cookie = login_cookie(&ok)?;
    ensure!(page(&gw, "/reports?q=1", Some(&cookie)).await?.status == StatusCode::OK);
    let again = signed_in(&gw, "alice").await?;
    ensure!(again != cookie, "every sign-in gets a new id");
    Ok(())
}

#[tokio::test]
async fn forged_tampered_expired_and_replayed_cookies_are_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = gateway(&app, &dir, Config::builder().login_idle_timeout(secs(2))).await?;
    let refused = |r: &Response| {
        r.status == StatusCode::SEE_OTHER && location(r).contains("/_idlegate/login")
    };

    let cookie = signed_in(&gw, "alice").await?;
    ensure!(page(&gw, "/", Some(&cookie)).await?.status == StatusCode::OK);
    let (name, value) = cookie.split_once('=').context("cookie")?;
    let (id, signature) = value.split_once('.').context("signed value")?;
    let flipped = |s: &str| {
        let mut chars: Vec<char> = s.chars().collect();
        chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect::<String>()
    };
    for bad in [
        format!("{name}={}.{signature}", flipped(id)),
        format!("{name}={id}.{}", flipped(signature)),
        format!("{name}={id}"),
        format!("{name}=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        format!("idlegate-login={value}"),
    ] {
        ensure!(refused(&page(&gw, "/", Some(&bad)).await?), "accepted {bad}");
    }

    // Expired: no activity for the login's idle time (2 s; the person stays away 2.5 s, the
    // scenario's input).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    ensure!(
        refused(&page(&gw, "/", Some(&cookie)).await?),
        "an expired login was accepted"
    );

    // Replayed after sign-out.
    let fresh = signed_in(&gw, "alice").await?;
    let out = request(
        Method::POST,
        &format!("{}/_idlegate/logout", gw.url()),
        &[("cookie", &fresh), ("origin", &gw.url())],
        "",
    )
    .await?;
    ensure!(out.status == StatusCode::SEE_OTHER, "{}", out.status);
    ensure!(
        refused(&page(&gw, "/", Some(&fresh)).await?),
        "a signed-out cookie was accepted"
    );
    Ok(())
}

#[tokio::test]
async fn sign_in_refuses_other_sites_open_redirects_and_the_eleventh_guess() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = gateway(&app, &dir, Config::builder()).await?;
    let form = format!(
        "username=alice&password={}&return=%2F",
        PASSWORD.replace(' ', "+")
    );
    let url = format!("{}/_idlegate/login", gw.url());
    let kind = ("content-type", "application/x-www-form-urlencoded");
    let no_origin = request(Method::POST, &url, &[kind], &form).await?;
    ensure!(
        no_origin.status == StatusCode::FORBIDDEN,
        "{}",
        no_origin.status
    );
    let other = request(
        Method::POST,
        &url,
        &[kind, ("origin", "http://evil.example")],
        &form,
    )
    .await?;
    ensure!(other.status == StatusCode::FORBIDDEN, "{}", other.status);
    let cross = request(
        Method::POST,
        &url,
        &[kind, ("sec-fetch-site", "cross-site")],
        &form,
    )
    .await?;
    ensure!(cross.status == StatusCode::FORBIDDEN, "{}", cross.status);

    for evil in [
        "//evil.example",
        "https:evil",
        "https://evil.example/x",
        "/\\evil.example",
        "%2F%2Fevil.example",
        "/_idlegate/logout",
    ] {
        let response = sign_in(&gw, "bob", PASSWORD, evil).await?;
        ensure!(response.status == StatusCode::SEE_OTHER);
        ensure!(
            location(&response) == "/",
            "return={evil} went to {}",
            location(&response)
        );
    }

    // A fresh gateway, so the sign-ins above do not count against this address.
    let gw = gateway(&app, &dir, Config::builder()).await?;
    for attempt in 1..=10 {
        let response = sign_in(&gw, "alice", "wrong", "/").await?;
        ensure!(
            response.status == StatusCode::UNAUTHORIZED,
            "attempt {attempt}: {}",
            response.status
        );
    }
    let eleventh = sign_in(&gw, "alice", "wrong", "/").await?;
    ensure!(
        eleventh.status == StatusCode::TOO_MANY_REQUESTS,
        "{}",
        eleventh.status
    );
    let even_right = sign_in(&gw, "alice", PASSWORD, "/").await?;
    ensure!(
        even_right.status == StatusCode::TOO_MANY_REQUESTS,
        "{}",
        even_right.status
    );
    Ok(())
}

#[tokio::test]
async fn the_login_slides_with_activity_in_any_tab_then_ends_them_all() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = gateway(&app, &dir, Config::builder().login_idle_timeout(secs(3))).await?;
    let cookie = signed_in(&gw, "alice").await?;
    let mut quiet = open_tab(&gw, &cookie, &[]).await?;
    let mut busy = open_tab(&gw, &cookie, &[]).await?;
    let (quiet_tab, busy_tab): (TabId, TabId) = (
        gw.wait_for_tab(1, RUN).await?,
        gw.wait_for_tab(2, RUN).await?,
    );
    let until = Instant::now() + Duration::from_secs(7);
    while Instant::now() < until {
        busy.send_rerun(false).await?;
        busy.run_until_finished(RUN).await?;
        // A click every 0.8 s or so: the person's pace, the scenario's input.
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    ensure!(
        gw.tracker().len() == 2,
        "a tab ended while its login was in use"
    );
    let last = Instant::now();
    let mut ends = gw.events();
    let ended = gw.wait_for_end(quiet_tab, RUN).await?;
    ensure!(
        ended.end.reason == EndReason::LoginExpired,
        "{:?}",
        ended.end
    );
    ended.on_time()?;
    // The last click's run finished before `last`; the login lasts 3 s after it.
    ended.by(last + secs(3))?;
    let after = ended.at - last;
    ensure!(after >= Duration::from_millis(2000), "{after:?}");
    let other = ends
        .next_matching(
            RUN,
            |e| matches!(e, Event::TabEnded(end) if end.tab == busy_tab),
        )
        .await?;
    ensure!(
        other.at <= ended.at + ON_TIME,
        "the busy tab ended {:?} after the quiet one",
        other.at - ended.at
    );
    let redirect = quiet.wait_for_auth_redirect(secs(5)).await?;
    ensure!(
        redirect.ends_with("/_idlegate/ended?reason=login_expired"),
        "{redirect}"
    );
    let redirect = busy.wait_for_auth_redirect(Duration::from_secs(5)).await?;
    ensure!(redirect.contains("reason=login_expired"), "{redirect}");
    let next = page(&gw, "/", Some(&cookie)).await?;
    ensure!(
        location(&next).contains("/_idlegate/login"),
        "the next page must ask to sign in"
    );
    Ok(())
}

#[tokio::test]
async fn sign_out_ends_every_tab_of_the_user_and_clears_streamlits_cookies() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = gateway(&app, &dir, Config::builder()).await?;
    let first = signed_in(&gw, "alice").await?;
    let second = signed_in(&gw, "alice").await?;
    let bobs = signed_in(&gw, "bob").await?;
    let mut a = open_tab(&gw, &first, &[]).await?;
    let mut b = open_tab(&gw, &second, &[]).await?;
    let _c = open_tab(&gw, &bobs, &[]).await?;
    let page_form = page(&gw, "/_idlegate/logout", Some(&first)).await?;
    ensure!(
        page_form.text().contains("method=\"post\""),
        "{}",
        page_form.text()
    );
    let forged = request(
        Method::POST,
        &format!("{}/_idlegate/logout", gw.url()),
        &[("cookie", &first), ("origin", "http://evil.example")],
        "",
    )
    .await?;
    ensure!(forged.status == StatusCode::FORBIDDEN, "{}", forged.status);
    let out = request(
        Method::POST,
        &format!("{}/_idlegate/logout", gw.url()),
        &[
            (
                "cookie",
                &format!("{first}; _streamlit_user=x; _streamlit_user_1=y"),
            ),
            ("origin", &gw.url()),
        ],
        "",
    )
    .await?;
    ensure!(
        location(&out) == "/_idlegate/login?signed_out=1",
        "{}",
        location(&out)
    );
    let cleared: Vec<&str> = out
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    for name in [
        COOKIE,
        "_streamlit_user",
        "_streamlit_user_1",
        "_streamlit_user_tokens",
    ] {
        ensure!(
            cleared
                .iter()
                .any(|c| c.starts_with(&format!("{name}=;")) && c.contains("Max-Age=0")),
            "{name} not cleared: {cleared:?}"
        );
    }
    for tab in [&mut a, &mut b] {
        let redirect = tab.wait_for_auth_redirect(Duration::from_secs(5)).await?;
        ensure!(redirect.contains("reason=logout"), "{redirect}");
    }
    ensure!(gw.tracker().len() == 1, "bob's tab must stay");
    ensure!(location(&page(&gw, "/", Some(&second)).await?).contains("/_idlegate/login"));
    Ok(())
}

#[tokio::test]
async fn the_app_sees_the_signed_in_user_and_never_a_client_sent_identity() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = StreamlitApp::start(
        &testkit::venv::repo_path("tests/apps/whoami.py"),
        StreamlitOptions {
            disconnected_session_ttl_secs: Some(20),
            extra_args: vec![
                "--server.trustedUserHeaders".into(),
                r#"{"X-Forwarded-User":"name"}"#.into(),
            ],
            ..StreamlitOptions::default()
        },
    )
    .await?;
    let gw = gateway(&app, &dir, Config::builder()).await?;
    let cookie = signed_in(&gw, "alice").await?;
    let (_tab, text) = open_tab_reading(
        &gw,
        &cookie,
        &[
            ("X-Forwarded-User", "mallory"),
            ("X-Forwarded-Groups", "admins"),
        ],
    )
    .await?;
    ensure!(text.contains("header user: alice"), "{text}");
    ensure!(text.contains("header groups: -"), "{text}");
    ensure!(text.contains("st.user name: alice"), "{text}");
    Ok(())
}

#[tokio::test]
async fn header_mode_believes_only_trusted_proxies() -> Result<()> {
    let app = StreamlitApp::test_app("whoami.py", None).await?;
    let trusted = TestGateway::start(
        &app.base_url(),
        Config::builder()
            .login(SignIn::Header)
            .proxy_headers(["user", "groups"])
            .trusted_proxies(["127.0.0.1"]),
    )
    .await?;
    let untrusted =
        TestGateway::start(&app.base_url(), Config::builder().login(SignIn::Header)).await?;
    let who = [
        ("X-Forwarded-User", "carol"),
        ("X-Forwarded-Groups", "team"),
    ];
    let Upgrade::Accepted(mut tab) = StClient::connect_adding(&trusted.url(), &who).await? else {
        anyhow::bail!("the trusted proxy's request was refused");
    };
    tab.send_rerun(false).await?;
    let text = tab.run_until_finished(RUN).await?.markdown().join("\n");
    ensure!(
        text.contains("header user: carol") && text.contains("header groups: team"),
        "{text}"
    );

    let response = request(
        Method::GET,
        &format!("{}/_stcore/host-config", untrusted.url()),
        &who,
        "",
    )
    .await?;
    ensure!(
        response.status == StatusCode::UNAUTHORIZED,
        "{}",
        response.status
    );
    Ok(())
}

#[tokio::test]
async fn over_the_per_user_limit_the_oldest_tab_ends_or_the_new_one_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = gateway(
        &app,
        &dir,
        Config::builder().max_per_user(1, OnLimit::EndOldest),
    )
    .await?;
    let cookie = signed_in(&gw, "alice").await?;
    let mut oldest = open_tab(&gw, &cookie, &[]).await?;
    let _newest = open_tab(&gw, &cookie, &[]).await?;
    let redirect = oldest
        .wait_for_auth_redirect(Duration::from_secs(5))
        .await?;
    ensure!(redirect.contains("reason=evicted_user_cap"), "{redirect}");

    let refusing = gateway(
        &app,
        &dir,
        Config::builder().max_per_user(1, OnLimit::Refuse),
    )
    .await?;
    let cookie = signed_in(&refusing, "alice").await?;
    let _first = open_tab(&refusing, &cookie, &[]).await?;
    let Upgrade::Accepted(mut second) =
        StClient::connect_adding(&refusing.url(), &[("Cookie", &cookie)]).await?
    else {
        anyhow::bail!("expected the socket to be answered with a redirect");
    };
    let redirect = second
        .wait_for_auth_redirect(Duration::from_secs(5))
        .await?;
    ensure!(redirect.ends_with("/_idlegate/refused"), "{redirect}");
    let page = page(&refusing, "/_idlegate/refused", Some(&cookie)).await?;
    ensure!(
        page.text().contains("You already have 1 tabs"),
        "{}",
        page.text()
    );
    Ok(())
}

#[tokio::test]
async fn a_sign_in_from_a_plain_http_page_elsewhere_says_why_instead_of_looping() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = StreamlitApp::test_app("counter.py", None).await?;
    // A `Secure` cookie (the default), served on a loopback address.
    let gw = gateway(&app, &dir, Config::builder().cookie_secure(true)).await?;
    let port = gw.addr().port();
    let body = serde_urlencoded::to_string([
        ("username", "alice"),
        ("password", PASSWORD),
        ("return", "/"),
    ])?;
    let from = |host: String| {
        let body = body.clone();
        let url = gw.url();
        async move {
            let origin = format!("http://{host}");
            request(
                Method::POST,
                &format!("{url}/_idlegate/login"),
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("host", &host),
                    ("origin", &origin),
                    ("sec-fetch-site", "same-origin"),
                ],
                &body,
            )
            .await
        }
    };
    // The page was opened over plain HTTP on another machine's address: the browser would
    // drop the cookie, so the person is told, and no login starts.
    let elsewhere = from(format!("192.0.2.2:{port}")).await?;
    ensure!(
        elsewhere.status == StatusCode::BAD_REQUEST,
        "{}",
        elsewhere.status
    );
    ensure!(
        elsewhere.text().contains("opened over plain HTTP"),
        "{}",
        elsewhere.text()
    );
    ensure!(login_cookie(&elsewhere).is_err(), "a cookie was set");
    ensure!(gw
        .history()
        .iter()
        .all(|a| !matches!(a.event, idlegate::lifecycle::Event::LoginStarted { .. })));
    // On this machine browsers keep `Secure` cookies over plain HTTP: signing in works.
    let here = from(format!("127.0.0.1:{port}")).await?;
    ensure!(here.status == StatusCode::SEE_OTHER, "{}", here.status);
    login_cookie(&here)?;
    Ok(())
}
