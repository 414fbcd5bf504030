//! HTTP relaying through idlegate: transparency, forwarding and hop-by-hop headers, head
//! size limits, base paths, faults.
//!
//! Most tests stand a [`FakeUpstream`] behind the gateway, which records every request it
//! received, so they assert exactly what reached the app. Two keep a real Streamlit: the
//! app's own pages and bundle, and a base-path tab that ends (Streamlit's protocol).

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use idlegate::config::Config;
use testkit::gateway::TestGateway;
use testkit::upstream::{FakeUpstream, Received, Reply};
use testkit::{free_port, StClient, StreamlitApp};

/// How long a request may take to reach the fake app once the gateway answered.
const REACH: Duration = Duration::from_secs(5);

async fn streamlit(app: &str, base: Option<&str>) -> StreamlitApp {
    StreamlitApp::test_app(app, base)
        .await
        .expect("streamlit starts")
}

async fn fake() -> Result<FakeUpstream> {
    FakeUpstream::start().await
}

/// Sends raw bytes and returns the raw response (for what an HTTP client would refuse to
/// send). The request must make the server close the connection after answering.
fn raw_request(addr: std::net::SocketAddr, request: &[u8]) -> Result<String> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(request)?;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    Ok(String::from_utf8_lossy(&response).into_owned())
}

async fn raw(addr: std::net::SocketAddr, request: String) -> Result<String> {
    tokio::task::spawn_blocking(move || raw_request(addr, request.as_bytes())).await?
}

#[tokio::test]
async fn a_real_streamlits_pages_assets_and_endpoints_pass_through_unchanged() -> Result<()> {
    let app = streamlit("multipage/app.py", None).await;
    let gw = TestGateway::start(&app.base_url(), Config::builder()).await?;
    for path in [
        "/",
        "/Second",
        "/_stcore/health",
        "/_stcore/host-config",
        "/manifest.json",
    ] {
        let direct = testkit::http::get(&format!("{}{path}", app.base_url())).await?;
        let through = testkit::http::get(&format!("{}{path}", gw.url())).await?;
        assert_eq!(through.status, direct.status, "{path}");
        assert_eq!(through.body, direct.body, "{path}");
        assert_eq!(
            through.header("content-type"),
            direct.header("content-type"),
            "{path}"
        );
    }
    // A hashed asset from the page.
    let index = testkit::http::get(&format!("{}/", gw.url())).await?.text();
    let asset = index
        .split('"')
        .find(|s| s.starts_with("./static/js/") && s.ends_with(".js"))
        .expect("index references its bundle");
    let js = testkit::http::get(&format!("{}/{}", gw.url(), &asset[2..])).await?;
    assert_eq!(js.status, 200);
    assert!(js.body.len() > 100_000);
    Ok(())
}

#[tokio::test]
async fn statuses_headers_and_bodies_pass_through_unchanged() -> Result<()> {
    let app = fake().await?;
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    app.reply(
        "/page",
        Reply::ok("<p>page</p>")
            .header("content-type", "text/plain; charset=utf-8")
            .header("etag", "\"v1\"")
            .header("set-cookie", "a=1; Path=/")
            .header("set-cookie", "b=2; Path=/")
            .header("x-app", "kept"),
    );
    app.reply(
        "/missing",
        Reply::status(404)
            .header("content-type", "application/json")
            .body("{\"error\":\"no such thing\"}"),
    );
    app.reply("/broken", Reply::status(500).body("it broke"));
    app.reply(
        "/moved",
        Reply::status(302).header("location", "/page?from=moved"),
    );
    app.reply(
        "/big",
        Reply::ok(big.clone()).header("content-type", "application/octet-stream"),
    );
    app.reply(
        "/stream",
        Reply::status(200)
            .header("content-type", "text/event-stream")
            .chunks(["one\n", "two\n", "three\n"], Duration::ZERO),
    );
    app.reply(
        "/slow",
        Reply::status(200).chunks(["slow ", "but ", "whole"], Duration::from_millis(300)),
    );
    let gw = TestGateway::start(&app.url(), Config::builder()).await?;

    let page = testkit::http::get(&format!("{}/page?x=1&y=%20", gw.url())).await?;
    assert_eq!(page.status, 200);
    assert_eq!(page.text(), "<p>page</p>");
    assert_eq!(
        page.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(page.header("etag"), Some("\"v1\""));
    assert_eq!(page.header("x-app"), Some("kept"));
    let cookies: Vec<&str> = page
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2; Path=/"]);
    let reached = app.wait_for_request(REACH, |r| r.path == "/page").await?;
    assert_eq!(reached.method, http::Method::GET);
    assert_eq!(reached.query.as_deref(), Some("x=1&y=%20"));

    let missing = testkit::http::get(&format!("{}/missing", gw.url())).await?;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.text(), "{\"error\":\"no such thing\"}");
    assert_eq!(missing.header("content-type"), Some("application/json"));
    let broken = testkit::http::get(&format!("{}/broken", gw.url())).await?;
    assert_eq!(broken.status, 500);
    assert_eq!(broken.text(), "it broke");
    let moved = testkit::http::get(&format!("{}/moved", gw.url())).await?;
    assert_eq!(moved.status, 302);
    assert_eq!(moved.header("location"), Some("/page?from=moved"));

    let through = testkit::http::get(&format!("{}/big", gw.url())).await?;
    assert_eq!(through.status, 200);
    assert_eq!(through.body.len(), big.len());
    assert!(through.body == big, "a 3 MB body changed on the way");

    let streamed = testkit::http::get(&format!("{}/stream", gw.url())).await?;
    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.text(), "one\ntwo\nthree\n");
    assert_eq!(streamed.header("content-type"), Some("text/event-stream"));
    let slow = testkit::http::get(&format!("{}/slow", gw.url())).await?;
    assert_eq!(slow.text(), "slow but whole");

    // A request body reaches the app whole, with its method and type.
    let body = "x".repeat(200_000);
    let posted = testkit::http::send(
        http::Request::post(format!("{}/form?id=7", gw.url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))?,
    )
    .await?;
    assert_eq!(posted.status, 200);
    let reached = app.wait_for_request(REACH, |r| r.path == "/form").await?;
    assert_eq!(reached.method, http::Method::POST);
    assert_eq!(reached.query.as_deref(), Some("id=7"));
    assert_eq!(
        reached.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(reached.body == body.as_bytes(), "the request body changed");
    // The echo the client got back says the same.
    let echoed: serde_json::Value = serde_json::from_slice(&posted.body)?;
    assert_eq!(echoed["body"].as_str().map(str::len), Some(body.len()));
    Ok(())
}

/// The `X-Forwarded-*` and `Host` headers a request carried when it reached the app.
fn assert_forwarded(reached: &Received, host: &str) {
    assert_eq!(reached.header("host"), Some(host), "{reached:?}");
    assert_eq!(
        reached.header_all("x-forwarded-for"),
        ["127.0.0.1"],
        "{reached:?}"
    );
    assert_eq!(
        reached.header_all("x-forwarded-host"),
        [host],
        "{reached:?}"
    );
    assert_eq!(
        reached.header_all("x-forwarded-proto"),
        ["http"],
        "{reached:?}"
    );
}

#[tokio::test]
async fn client_forwarding_headers_are_replaced_and_host_is_kept() -> Result<()> {
    let app = fake().await?;
    let gw = TestGateway::start(&app.url(), Config::builder()).await?;
    let host = gw.addr().to_string();
    let spoofed = [
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Proto", "https"),
    ];

    // A plain request.
    let mut request = http::Request::get(format!("{}/plain", gw.url()));
    for (name, value) in spoofed {
        request = request.header(name, value);
    }
    let response = testkit::http::send(request.body(Default::default())?).await?;
    assert_eq!(response.status, 200);
    let reached = app.wait_for_request(REACH, |r| r.path == "/plain").await?;
    assert_forwarded(&reached, &host);

    // The session socket's upgrade.
    let mut headers = StClient::default_headers(&gw.url(), None)?;
    headers.extend(spoofed.map(|(k, v)| (k.to_owned(), v.to_owned())));
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let tab = match StClient::connect_with_headers(&gw.url(), &headers).await? {
        testkit::stclient::Upgrade::Accepted(tab) => *tab,
        testkit::stclient::Upgrade::Refused { status, body } => {
            anyhow::bail!("refused: {status} {body}")
        }
    };
    let reached = app
        .wait_for_request(REACH, |r| r.path == "/_stcore/stream")
        .await?;
    assert!(reached.is_upgrade(), "{reached:?}");
    assert_forwarded(&reached, &host);
    drop(tab);
    Ok(())
}

/// A session socket's messages are read as they pass, so its upgrade reaches the app without
/// the browser's compression offer (`permessage-deflate`, RFC 7692): the app never
/// compresses them.
#[tokio::test]
async fn session_socket_upgrades_reach_the_app_without_compression_offers() -> Result<()> {
    let app = fake().await?;
    let gw = TestGateway::start(&app.url(), Config::builder()).await?;
    let mut headers = StClient::default_headers(&gw.url(), None)?;
    headers.push((
        "Sec-WebSocket-Extensions".to_owned(),
        "permessage-deflate; client_max_window_bits".to_owned(),
    ));
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let tab = match StClient::connect_with_headers(&gw.url(), &headers).await? {
        testkit::stclient::Upgrade::Accepted(tab) => *tab,
        testkit::stclient::Upgrade::Refused { status, body } => {
            anyhow::bail!("refused: {status} {body}")
        }
    };
    let reached = app
        .wait_for_request(REACH, |r| r.path == "/_stcore/stream")
        .await?;
    assert!(reached.is_upgrade(), "{reached:?}");
    assert_eq!(reached.header("sec-websocket-extensions"), None);
    drop(tab);
    Ok(())
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() -> Result<()> {
    let app = fake().await?;
    app.reply(
        "/answer",
        Reply::ok("answered")
            .header("x-app", "kept")
            .header("connection", "x-app-secret")
            .header("x-app-secret", "for the next hop only")
            .header("keep-alive", "timeout=5")
            .header("proxy-connection", "keep-alive"),
    );
    let gw = TestGateway::start(&app.url(), Config::builder()).await?;

    // The browser's side: named in Connection, or hop-by-hop by definition.
    let response = raw(
        gw.addr(),
        "GET /ask HTTP/1.1\r\nHost: x\r\nConnection: close, X-Browser-Secret\r\n\
         X-Browser-Secret: for the next hop only\r\nKeep-Alive: timeout=5\r\n\
         Proxy-Connection: keep-alive\r\nTE: trailers\r\nX-Kept: yes\r\n\r\n"
            .to_owned(),
    )
    .await?;
    ensure!(response.starts_with("HTTP/1.1 200"), "{response}");
    let reached = app.wait_for_request(REACH, |r| r.path == "/ask").await?;
    assert_eq!(reached.header("x-kept"), Some("yes"));
    for name in [
        "x-browser-secret",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
        "trailer",
    ] {
        assert!(
            reached.header(name).is_none(),
            "{name} reached the app: {reached:?}"
        );
    }
    // The only Connection the app sees is the gateway's own hop, never the browser's.
    assert!(
        reached
            .header_all("connection")
            .iter()
            .all(|v| !v.to_ascii_lowercase().contains("x-browser-secret")),
        "{reached:?}"
    );

    // The app's side.
    let answer = testkit::http::get(&format!("{}/answer", gw.url())).await?;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "answered");
    assert_eq!(answer.header("x-app"), Some("kept"));
    for name in ["x-app-secret", "keep-alive", "proxy-connection"] {
        assert!(
            answer.header(name).is_none(),
            "{name} reached the browser: {:?}",
            answer.headers
        );
    }
    assert!(
        answer
            .headers
            .get_all("connection")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .all(|v| !v.to_ascii_lowercase().contains("x-app-secret")),
        "{:?}",
        answer.headers
    );
    Ok(())
}

#[tokio::test]
async fn base_path_requests_reach_the_app_under_it_and_idlegate_pages_live_under_it() -> Result<()>
{
    let app = fake().await?;
    let gw = TestGateway::start(
        &app.url(),
        Config::builder()
            .base_path("/analytics")
            .idle_timeout(Some(Duration::from_secs(2))),
    )
    .await?;
    let page = testkit::http::get(&format!("{}/analytics/?q=1", gw.url())).await?;
    assert_eq!(page.status, 200);
    let reached = app
        .wait_for_request(REACH, |r| r.path == "/analytics/")
        .await?;
    assert_eq!(reached.query.as_deref(), Some("q=1"));
    let health = testkit::http::get(&format!("{}/analytics/_idlegate/healthz", gw.url())).await?;
    assert_eq!(health.status, 200);
    let ready = testkit::http::get(&format!("{}/analytics/_idlegate/readyz", gw.url())).await?;
    assert_eq!(ready.status, 200, "{}", ready.text());
    // Readiness asks the app's health check under the base path.
    app.wait_for_request(REACH, |r| r.path == "/analytics/_stcore/health")
        .await?;
    // idlegate's own pages never reach the app.
    assert!(
        app.received().iter().all(|r| !r.path.contains("_idlegate")),
        "{:?}",
        app.received()
    );
    Ok(())
}

#[tokio::test]
async fn a_base_path_tab_ends_to_the_ended_page_under_the_base_path() -> Result<()> {
    let app = streamlit("counter.py", Some("analytics")).await;
    let gw = TestGateway::start(
        &format!("http://127.0.0.1:{}", app.port()),
        Config::builder()
            .base_path("/analytics")
            .idle_timeout(Some(Duration::from_secs(2))),
    )
    .await?;
    let page = testkit::http::get(&format!("{}/analytics/", gw.url())).await?;
    assert_eq!(page.status, 200);
    let ready = testkit::http::get(&format!("{}/analytics/_idlegate/readyz", gw.url())).await?;
    assert_eq!(ready.status, 200, "{}", ready.text());

    let mut tab = StClient::connect(&format!("{}/analytics", gw.url()), None).await?;
    tab.send_rerun(false).await?;
    tab.run_until_finished(Duration::from_secs(20)).await?;
    let url = tab.wait_for_auth_redirect(Duration::from_secs(10)).await?;
    assert_eq!(url, "/analytics/_idlegate/ended?reason=idle");
    let ended = testkit::http::get(&format!("{}{url}", gw.url())).await?;
    assert!(ended.text().contains("href=\"/analytics/\""));
    Ok(())
}

#[tokio::test]
async fn an_unreachable_app_gives_a_clear_502_page_and_a_readable_health_answer() -> Result<()> {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let gw = TestGateway::start(&dead, Config::builder()).await?;
    let page = testkit::http::send(
        http::Request::get(format!("{}/", gw.url()))
            .header("accept", "text/html")
            .body(Default::default())?,
    )
    .await?;
    assert_eq!(page.status, 502);
    assert!(page.text().contains("not available"), "{}", page.text());

    let health = testkit::http::get(&format!("{}/_stcore/health", gw.url())).await?;
    assert_eq!(health.status, 502);
    assert_eq!(health.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&health.body)?;
    assert!(json["message"]
        .as_str()
        .unwrap_or("")
        .contains("cannot reach the app"));

    let ready = testkit::http::get(&format!("{}/_idlegate/readyz", gw.url())).await?;
    assert_eq!(ready.status, 503);
    let alive = testkit::http::get(&format!("{}/_idlegate/healthz", gw.url())).await?;
    assert_eq!(alive.status, 200);
    Ok(())
}

#[tokio::test]
async fn oversized_request_heads_are_rejected() -> Result<()> {
    let app = fake().await?;
    let gw = TestGateway::start(&app.url(), Config::builder().max_header_bytes(16384)).await?;
    let big = "a".repeat(32 * 1024);
    let response = raw(
        gw.addr(),
        format!("GET /big HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"),
    )
    .await?;
    assert!(
        response.starts_with("HTTP/1.1 431"),
        "{}",
        &response[..response.len().min(200)]
    );
    // A head within the limit passes whole.
    let fits = "b".repeat(8 * 1024);
    let ok = testkit::http::send(
        http::Request::get(format!("{}/fits", gw.url()))
            .header("x-fits", fits.as_str())
            .body(Default::default())?,
    )
    .await?;
    assert_eq!(ok.status, 200);
    let reached = app.wait_for_request(REACH, |r| r.path == "/fits").await?;
    assert_eq!(reached.header("x-fits"), Some(fits.as_str()));
    // The gateway still serves others, and the oversized request never reached the app.
    let ok = testkit::http::get(&format!("{}/_stcore/health", gw.url())).await?;
    assert_eq!(ok.status, 200);
    app.wait_for_request(REACH, |r| r.path == "/_stcore/health")
        .await?;
    assert!(
        app.received_at("/big").is_empty(),
        "{:?}",
        app.received_at("/big")
    );
    Ok(())
}

#[tokio::test]
async fn a_refused_upgrade_reaches_the_browser_unchanged() -> Result<()> {
    let app = fake().await?;
    app.reply(
        "/_stcore/stream",
        Reply::status(403)
            .header("content-type", "text/plain")
            .body("origin not allowed"),
    );
    let gw = TestGateway::start(&app.url(), Config::builder()).await?;
    let mut headers = StClient::default_headers(&gw.url(), None)?;
    for (name, value) in headers.iter_mut() {
        if name.eq_ignore_ascii_case("origin") {
            *value = "http://evil.example:1".into();
        }
    }
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    match StClient::connect_with_headers(&gw.url(), &headers).await? {
        testkit::stclient::Upgrade::Refused { status, body } => {
            assert_eq!(status, 403);
            assert_eq!(body, "origin not allowed");
        }
        testkit::stclient::Upgrade::Accepted(_) => anyhow::bail!("a foreign origin was accepted"),
    }
    // It was the app that refused: the upgrade reached it, with the browser's origin.
    let reached = app
        .wait_for_request(REACH, |r| r.path == "/_stcore/stream")
        .await
        .context("the upgrade never reached the app")?;
    assert!(reached.is_upgrade());
    assert_eq!(reached.header("origin"), Some("http://evil.example:1"));
    assert!(gw.tracker().is_empty());
    Ok(())
}
