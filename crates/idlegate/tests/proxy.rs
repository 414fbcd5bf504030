//! HTTP relaying through idlegate: transparency, forwarding headers, base paths, faults.

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::Result;
use idlegate::config::Config;
use testkit::gateway::TestGateway;
use testkit::{free_port, StClient, StreamlitApp};

async fn streamlit(app: &str, base: Option<&str>) -> StreamlitApp {
    StreamlitApp::test_app(app, base)
        .await
        .expect("streamlit starts")
}

/// Sends raw bytes and returns the raw response (for what an HTTP client would refuse to send).
fn raw_request(addr: std::net::SocketAddr, request: &[u8]) -> Result<String> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(request)?;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    Ok(String::from_utf8_lossy(&response).into_owned())
}

#[tokio::test]
async fn pages_assets_and_app_endpoints_pass_through_unchanged() -> Result<()> {
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
async fn client_forwarding_headers_are_replaced_and_host_is_kept() -> Result<()> {
    let app = streamlit("echo_headers.py", None).await;
    let gw = TestGateway::start(&app.base_url(), Config::builder()).await?;
    let mut headers = StClient::default_headers(&gw.url(), None)?;
    headers.push(("X-Forwarded-For".into(), "6.6.6.6".into()));
    headers.push(("X-Forwarded-Host".into(), "evil.example".into()));
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut tab = match StClient::connect_with_headers(&gw.url(), &headers).await? {
        testkit::stclient::Upgrade::Accepted(tab) => *tab,
        testkit::stclient::Upgrade::Refused { status, body } => {
            anyhow::bail!("refused: {status} {body}")
        }
    };
    tab.send_rerun(false).await?;
    let run = tab.run_until_finished(Duration::from_secs(20)).await?;
    let lines = run.markdown().join("\n");
    let host = gw.addr().to_string();
    assert!(lines.contains(&format!("Host: {host}")), "{lines}");
    assert!(lines.contains("X-Forwarded-For: 127.0.0.1"), "{lines}");
    assert!(
        lines.contains(&format!("X-Forwarded-Host: {host}")),
        "{lines}"
    );
    assert!(lines.contains("X-Forwarded-Proto: http"), "{lines}");
    Ok(())
}

#[tokio::test]
async fn base_path_apps_work_and_idlegate_pages_live_under_it() -> Result<()> {
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
    let health = testkit::http::get(&format!("{}/analytics/_idlegate/healthz", gw.url())).await?;
    assert_eq!(health.status, 200);
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
    let app = streamlit("counter.py", None).await;
    let gw = TestGateway::start(&app.base_url(), Config::builder().max_header_bytes(16384)).await?;
    let big = "a".repeat(32 * 1024);
    let request = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let addr = gw.addr();
    let response =
        tokio::task::spawn_blocking(move || raw_request(addr, request.as_bytes())).await??;
    assert!(
        response.starts_with("HTTP/1.1 431"),
        "{}",
        &response[..response.len().min(200)]
    );
    // The gateway still serves others.
    let ok = testkit::http::get(&format!("{}/_stcore/health", gw.url())).await?;
    assert_eq!(ok.status, 200);
    Ok(())
}

#[tokio::test]
async fn a_refused_upgrade_reaches_the_browser_unchanged() -> Result<()> {
    let app = streamlit("counter.py", None).await;
    let gw = TestGateway::start(&app.base_url(), Config::builder()).await?;
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
        testkit::stclient::Upgrade::Refused { status, .. } => assert_eq!(status, 403),
        testkit::stclient::Upgrade::Accepted(_) => anyhow::bail!("a foreign origin was accepted"),
    }
    assert!(gw.tracker().is_empty());
    Ok(())
}
