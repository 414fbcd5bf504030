//! The admin listener against a real Streamlit: the token check, every API endpoint (paging,
//! filters, sorting, unknown handles, ending a tab and a user), `/metrics` with and without a
//! token, and the OpenAPI document.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use http::{Method, StatusCode};
use idlegate::config::{Config, ConfigBuilder};
use idlegate::lifecycle::Event;
use idlegate::tracker::EndReason;
use serde_json::Value;
use testkit::gateway::TestGateway;
use testkit::http::{self as web, Response};
use testkit::signin::request;
use testkit::stclient::Upgrade;
use testkit::{StClient, StreamlitApp};

const RUN: Duration = Duration::from_secs(20);
const PASSWORD: &str = "correct horse battery";
const OPS: &str = "ops-token-0123456789-abcdefghijklmnop";
const CI: &str = "ci-token-0123456789-abcdefghijklmnopqr";
const LOGIN: &str = "__Host-idlegate-login";

fn users_file(dir: &tempfile::TempDir) -> Result<PathBuf> {
    let hash = idlegate::auth::password::hash(PASSWORD).map_err(anyhow::Error::msg)?;
    let path = dir.path().join("users");
    std::fs::write(&path, format!("alice:{hash}\nbob:{hash}\n"))?;
    Ok(path)
}

fn admin_config(dir: &tempfile::TempDir) -> Result<ConfigBuilder> {
    // Tabs end before the login would (30 minutes), so a tab's reason is `idle`.
    Ok(Config::builder()
        .idle_timeout(Some(Duration::from_secs(600)))
        .users_file(&users_file(dir)?)
        .admin(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            &format!("ops:{OPS},ci:{CI}"),
        ))
}

async fn admin(
    gw: &TestGateway,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> Result<Response> {
    let url = format!("{}{path}", gw.admin_url().context("no admin listener")?);
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| ("authorization", b))
        .into_iter()
        .collect();
    request(method, &url, &headers, "").await
}

async fn json(gw: &TestGateway, method: Method, path: &str) -> Result<Value> {
    let response = admin(gw, method, path, Some(OPS)).await?;
    ensure!(
        response.status == StatusCode::OK,
        "{path}: {} {}",
        response.status,
        response.text()
    );
    Ok(serde_json::from_slice(&response.body)?)
}

async fn signed_in(gw: &TestGateway, user: &str) -> Result<String> {
    let body =
        serde_urlencoded::to_string([("username", user), ("password", PASSWORD), ("return", "/")])?;
    let response = request(
        Method::POST,
        &format!("{}/_idlegate/login", gw.url()),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", &gw.url()),
        ],
        &body,
    )
    .await?;
    response
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{LOGIN}=")))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
        .with_context(|| format!("no login cookie: {}", response.status))
}

async fn open_tab(gw: &TestGateway, cookie: &str) -> Result<StClient> {
    let mut tab = match StClient::connect_adding(&gw.url(), &[("Cookie", cookie)]).await? {
        Upgrade::Accepted(tab) => *tab,
        Upgrade::Refused { status, body } => anyhow::bail!("upgrade refused: {status} {body}"),
    };
    tab.send_rerun(false).await?;
    tab.run_until_finished(RUN).await?;
    Ok(tab)
}

fn handles(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|t| t["handle"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn every_route_needs_a_right_token_and_says_how_to_send_one() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let dir = tempfile::tempdir()?;
    let gw = TestGateway::start(&app.base_url(), admin_config(&dir)?).await?;
    for path in [
        "/api/v1/tabs",
        "/api/v1/logins",
        "/api/v1/openapi.json",
        "/metrics",
    ] {
        for token in [None, Some("wrong"), Some(&OPS[1..]), Some("")] {
            let response = admin(&gw, Method::GET, path, token).await?;
            ensure!(
                response.status == StatusCode::UNAUTHORIZED,
                "{path} {token:?}: {}",
                response.status
            );
            ensure!(
                response
                    .header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Bearer")),
                "{path}"
            );
        }
        for token in [OPS, CI] {
            let response = admin(&gw, Method::GET, path, Some(token)).await?;
            ensure!(
                response.status == StatusCode::OK,
                "{path}: {}",
                response.status
            );
        }
    }
    let response = admin(&gw, Method::DELETE, "/api/v1/users/alice", Some("nope")).await?;
    ensure!(response.status == StatusCode::UNAUTHORIZED);
    // The browsers' port serves none of it.
    let response = request(Method::GET, &format!("{}/api/v1/tabs", gw.url()), &[], "").await?;
    ensure!(response.status != StatusCode::OK || !response.text().contains("\"items\""));
    Ok(())
}

#[tokio::test]
async fn tabs_are_listed_paged_filtered_and_ended_by_handle() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let dir = tempfile::tempdir()?;
    let gw = TestGateway::start(&app.base_url(), admin_config(&dir)?).await?;
    let alice = signed_in(&gw, "alice").await?;
    let bob = signed_in(&gw, "bob").await?;
    let _a1 = open_tab(&gw, &alice).await?;
    let _a2 = open_tab(&gw, &alice).await?;
    let mut b1 = open_tab(&gw, &bob).await?;

    let all = json(&gw, Method::GET, "/api/v1/tabs").await?;
    ensure!(
        all["total"] == 3 && all["items"].as_array().map(Vec::len) == Some(3),
        "{all}"
    );
    let first = &all["items"][0];
    for field in [
        "handle",
        "user",
        "state",
        "age_seconds",
        "human_idle_seconds",
        "ends_in_seconds",
        "ends_for",
        "script",
        "rule",
    ] {
        ensure!(!first[field].is_null(), "{field} missing: {first}");
    }
    ensure!(
        first["state"] == "active" && first["ends_for"] == "idle" && first["rule"] == "messages",
        "{first}"
    );
    // Longest idle first by default: the first tab opened.
    let idle: Vec<f64> = all["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["human_idle_seconds"].as_f64())
        .collect();
    ensure!(idle.windows(2).all(|w| w[0] >= w[1]), "{idle:?}");

    let page = json(&gw, Method::GET, "/api/v1/tabs?limit=2&offset=1&sort=age").await?;
    ensure!(
        page["total"] == 3 && page["offset"] == 1 && page["limit"] == 2,
        "{page}"
    );
    ensure!(handles(&page).len() == 2, "{page}");
    let last = json(&gw, Method::GET, "/api/v1/tabs?limit=2&offset=2").await?;
    ensure!(handles(&last).len() == 1, "{last}");

    let bobs = json(&gw, Method::GET, "/api/v1/tabs?user=bob").await?;
    ensure!(
        bobs["total"] == 1 && bobs["items"][0]["user"] == "bob",
        "{bobs}"
    );
    let none = json(&gw, Method::GET, "/api/v1/tabs?state=disconnected").await?;
    ensure!(none["total"] == 0, "{none}");
    for bad in [
        "?state=asleep",
        "?limit=0",
        "?limit=501",
        "?sort=name",
        "?offset=-1",
    ] {
        let response = admin(&gw, Method::GET, &format!("/api/v1/tabs{bad}"), Some(OPS)).await?;
        ensure!(
            response.status == StatusCode::BAD_REQUEST,
            "{bad}: {}",
            response.status
        );
        let body: Value = serde_json::from_slice(&response.body)
            .with_context(|| format!("{bad}: not JSON: {}", response.text()))?;
        ensure!(body["error"].is_string(), "{bad}: {body}");
    }

    let bob_handle = handles(&bobs).remove(0);
    let one = json(&gw, Method::GET, &format!("/api/v1/tabs/{bob_handle}")).await?;
    ensure!(
        one["handle"] == bob_handle.as_str() && one["user"] == "bob",
        "{one}"
    );
    for unknown in ["t0000000000000000ff", "nothing", "1"] {
        let response = admin(
            &gw,
            Method::GET,
            &format!("/api/v1/tabs/{unknown}"),
            Some(OPS),
        )
        .await?;
        ensure!(
            response.status == StatusCode::NOT_FOUND,
            "{unknown}: {}",
            response.status
        );
    }

    let mut events = gw.events();
    let ended = json(&gw, Method::DELETE, &format!("/api/v1/tabs/{bob_handle}")).await?;
    ensure!(
        ended["tabs"][0] == bob_handle.as_str() && ended["reason"] == "admin",
        "{ended}"
    );
    events
        .next_matching(
            RUN,
            |e| matches!(e, Event::TabEnded(end) if end.reason == EndReason::Admin),
        )
        .await?;
    let url = b1.wait_for_auth_redirect(RUN).await?;
    ensure!(url.contains("reason=admin"), "bob's page was sent to {url}");
    let again = admin(
        &gw,
        Method::DELETE,
        &format!("/api/v1/tabs/{bob_handle}"),
        Some(OPS),
    )
    .await?;
    ensure!(again.status == StatusCode::NOT_FOUND, "{}", again.status);
    ensure!(json(&gw, Method::GET, "/api/v1/tabs").await?["total"] == 2);
    Ok(())
}

#[tokio::test]
async fn a_user_is_listed_with_their_logins_and_ended_everywhere() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let dir = tempfile::tempdir()?;
    let gw = TestGateway::start(&app.base_url(), admin_config(&dir)?).await?;
    let alice = signed_in(&gw, "alice").await?;
    let bob = signed_in(&gw, "bob").await?;
    let mut a1 = open_tab(&gw, &alice).await?;
    let mut a2 = open_tab(&gw, &alice).await?;
    let _b1 = open_tab(&gw, &bob).await?;

    let logins = json(&gw, Method::GET, "/api/v1/logins").await?;
    let users: Vec<&str> = logins["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["user"].as_str())
        .collect();
    ensure!(users == ["alice", "bob"], "{logins}");
    let only = json(&gw, Method::GET, "/api/v1/logins?user=alice").await?;
    ensure!(
        only["items"].as_array().map(Vec::len) == Some(1) && only["items"][0]["tabs"] == 2,
        "{only}"
    );

    let ended = json(&gw, Method::DELETE, "/api/v1/users/alice").await?;
    ensure!(
        ended["tabs"].as_array().map(Vec::len) == Some(2) && ended["logins"] == 1,
        "{ended}"
    );
    for tab in [&mut a1, &mut a2] {
        let url = tab.wait_for_auth_redirect(RUN).await?;
        ensure!(url.contains("reason=admin"), "{url}");
    }
    // Her cookie no longer opens anything; bob is untouched.
    let refused = StClient::connect_adding(&gw.url(), &[("Cookie", alice.as_str())]).await?;
    ensure!(!matches!(refused, Upgrade::Accepted(ref t) if t.session_id().is_some()));
    let left = json(&gw, Method::GET, "/api/v1/tabs").await?;
    ensure!(
        left["total"] == 1 && left["items"][0]["user"] == "bob",
        "{left}"
    );
    let unknown = admin(&gw, Method::DELETE, "/api/v1/users/alice", Some(OPS)).await?;
    ensure!(
        unknown.status == StatusCode::NOT_FOUND,
        "{}",
        unknown.status
    );
    Ok(())
}

#[tokio::test]
async fn metrics_count_tabs_and_may_be_scraped_without_a_token() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let dir = tempfile::tempdir()?;
    let gw = TestGateway::start(
        &app.base_url(),
        admin_config(&dir)?.metrics_without_token(true),
    )
    .await?;
    let alice = signed_in(&gw, "alice").await?;
    let _tab = open_tab(&gw, &alice).await?;
    let response = admin(&gw, Method::GET, "/metrics", None).await?;
    ensure!(response.status == StatusCode::OK, "{}", response.status);
    ensure!(
        response
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        response.header("content-type")
    );
    let text = response.text();
    for line in [
        "idlegate_tab_sessions{state=\"active\"} 1",
        "idlegate_tab_sessions_started_total 1",
        "idlegate_login_sessions 1",
        "idlegate_logins_started_total 1",
        "idlegate_tab_sessions_ended_total{reason=\"admin\"} 0",
    ] {
        ensure!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    // The API still needs a token.
    let api = admin(&gw, Method::GET, "/api/v1/tabs", None).await?;
    ensure!(api.status == StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let dir = tempfile::tempdir()?;
    let gw = TestGateway::start(&app.base_url(), admin_config(&dir)?).await?;
    let doc = json(&gw, Method::GET, "/api/v1/openapi.json").await?;
    ensure!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    for (path, method) in [
        ("/api/v1/tabs", "get"),
        ("/api/v1/tabs/{handle}", "get"),
        ("/api/v1/tabs/{handle}", "delete"),
        ("/api/v1/logins", "get"),
        ("/api/v1/users/{user}", "delete"),
    ] {
        ensure!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    ensure!(doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer");
    Ok(())
}

/// Waits until the server closes `stream` (EOF or reset), up to `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Result<Duration> {
    use tokio::io::AsyncReadExt;
    let start = tokio::time::Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(start + limit, stream.read(&mut buf)).await {
            Err(_) => anyhow::bail!("still open after {limit:?}"),
            Ok(Ok(0) | Err(_)) => return Ok(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn silent_and_surplus_admin_connections_are_closed() -> Result<()> {
    use idlegate::admin::{HEADER_TIMEOUT, MAX_CONNECTIONS};
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let dir = tempfile::tempdir()?;
    let gw = TestGateway::start(&app.base_url(), admin_config(&dir)?).await?;
    let addr = gw
        .admin_url()
        .context("no admin listener")?
        .trim_start_matches("http://")
        .to_owned();
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        held.push(tokio::net::TcpStream::connect(&addr).await?);
    }
    // Each is accepted before the next is counted: let the listener take them all.
    let mut surplus = tokio::net::TcpStream::connect(&addr).await?;
    closed_within(&mut surplus, Duration::from_secs(5))
        .await
        .context("a connection over the cap")?;
    let took = closed_within(&mut held[0], HEADER_TIMEOUT + Duration::from_secs(3))
        .await
        .context("a silent connection")?;
    ensure!(
        took >= HEADER_TIMEOUT - Duration::from_secs(1),
        "closed after {took:?}"
    );
    drop(held);
    // Once they are gone the API answers again.
    testkit::wait_until(
        Duration::from_secs(5),
        Duration::from_millis(100),
        async || {
            let response = admin(&gw, Method::GET, "/api/v1/tabs", Some(OPS)).await?;
            ensure!(response.status == StatusCode::OK, "{}", response.status);
            Ok(())
        },
    )
    .await
}

#[tokio::test]
async fn a_request_the_app_cannot_answer_is_counted_by_fault() -> Result<()> {
    let app = testkit::FakeUpstream::start().await?;
    let config = Config::builder()
        .admin(SocketAddr::from(([127, 0, 0, 1], 0)), &format!("ops:{OPS}"))
        .metrics_without_token(true);
    let gw = TestGateway::start(&app.url(), config).await?;
    drop(app);
    let page = request(Method::GET, &format!("{}/", gw.url()), &[], "").await?;
    ensure!(page.status == StatusCode::BAD_GATEWAY, "{}", page.status);
    let text = admin(&gw, Method::GET, "/metrics", None).await?.text();
    for line in [
        "idlegate_upstream_errors_total{fault=\"connect\"} 1",
        "idlegate_upstream_errors_total{fault=\"timeout\"} 0",
    ] {
        ensure!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    Ok(())
}

fn workspace_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// The admin page in Chromium: signed in with a token, it lists two tabs of two users; bob's
/// tab is ended with the keyboard (its button, Enter, the confirmation), and his page is sent
/// to the ended page with reason `admin`.
#[tokio::test]
async fn browser_admin_page_lists_tabs_and_ends_one_with_its_button() -> Result<()> {
    const WAIT: Duration = Duration::from_secs(20);
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let dir = tempfile::tempdir()?;
    let gw = TestGateway::start(&app.base_url(), admin_config(&dir)?).await?;
    let alice = signed_in(&gw, "alice").await?;
    let bob = signed_in(&gw, "bob").await?;
    let _a = open_tab(&gw, &alice).await?;
    let mut b = open_tab(&gw, &bob).await?;
    let admin_url = gw.admin_url().context("no admin listener")?;

    let browser = testkit::Browser::start().await?;
    let result = async {
        browser.goto(&format!("{admin_url}/")).await?;
        browser
            .type_into("//input[@id='token']", &format!("{OPS}\u{E007}"), WAIT)
            .await?;
        let text = browser.wait_for_text("2 open tabs, 2 users", WAIT).await?;
        ensure!(text.contains("alice") && text.contains("bob"), "{text}");
        let shot = workspace_file("docs/screenshots/admin.png");
        browser.screenshot_png(&shot).await?;

        browser
            .focus("//button[@aria-label='End the tab of bob']", WAIT)
            .await?;
        browser.type_keys("\u{E007}").await?;
        testkit::wait_until(WAIT, Duration::from_millis(100), async || {
            Ok(browser.client().accept_alert().await?)
        })
        .await
        .context("the confirmation")?;
        let url = b.wait_for_auth_redirect(WAIT).await?;
        ensure!(url.contains("reason=admin"), "bob's page was sent to {url}");
        browser.wait_for_text("1 open tab, 1 user", WAIT).await?;
        // The page keeps to its policy: everything came from the listener itself.
        let response = web::get(&format!("{admin_url}/")).await?;
        let csp = response
            .header("content-security-policy")
            .unwrap_or_default();
        ensure!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        Ok(())
    }
    .await;
    browser.close().await?;
    result
}

#[tokio::test]
async fn the_page_s_cookie_cannot_end_tabs_from_another_site() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let dir = tempfile::tempdir()?;
    let gw = TestGateway::start(&app.base_url(), admin_config(&dir)?).await?;
    let admin_url = gw.admin_url().context("no admin listener")?;
    let host = admin_url.trim_start_matches("http://").to_owned();
    let form = format!("token={OPS}");
    let own = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("origin", admin_url.as_str()),
    ];
    let signed = request(Method::POST, &format!("{admin_url}/login"), &own, &form).await?;
    ensure!(signed.status == StatusCode::SEE_OTHER, "{}", signed.status);
    let cookie = signed
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .context("no admin cookie")?
        .to_owned();
    ensure!(signed
        .header("set-cookie")
        .is_some_and(|c| c.contains("HttpOnly") && c.contains("SameSite=Strict")));
    // Reading with the cookie works; a change from another origin does not.
    let read = request(
        Method::GET,
        &format!("{admin_url}/api/v1/tabs"),
        &[("cookie", &cookie)],
        "",
    )
    .await?;
    ensure!(read.status == StatusCode::OK, "{}", read.status);
    let forged = request(
        Method::DELETE,
        &format!("{admin_url}/api/v1/users/alice"),
        &[("cookie", &cookie), ("origin", "http://evil.example")],
        "",
    )
    .await?;
    ensure!(
        forged.status == StatusCode::UNAUTHORIZED,
        "{}",
        forged.status
    );
    let from_page = request(
        Method::DELETE,
        &format!("{admin_url}/api/v1/users/alice"),
        &[("cookie", &cookie), ("origin", &format!("http://{host}"))],
        "",
    )
    .await?;
    ensure!(
        from_page.status == StatusCode::NOT_FOUND,
        "alice has nothing to end: {}",
        from_page.status
    );
    // A wrong token at the form gets the form again.
    let wrong = request(
        Method::POST,
        &format!("{admin_url}/login"),
        &own,
        "token=nope",
    )
    .await?;
    ensure!(
        wrong.status == StatusCode::UNAUTHORIZED && wrong.text().contains("not an admin token")
    );
    Ok(())
}
