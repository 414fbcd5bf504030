//! Gradio's request-shaped tab sessions, over HTTP as its page speaks it (no browser): a
//! real Gradio app (`tests/apps/gradio/lifecycle.py`, from `.venv-gradio`) behind an
//! in-process idlegate.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use idlegate::config::{AppKind, Config};
use idlegate::tracker::EndReason;
use serde_json::{json, Value};
use testkit::gateway::TestGateway;
use testkit::{wait_until, PyApp};

const LOAD: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);
/// A token as the page script makes them.
const TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAA";

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// Runs dependency `fn_index` for session `hash`, as the page does.
fn join(
    url: &str,
    hash: &str,
    fn_index: u64,
    padding: usize,
) -> Result<http::Request<Full<Bytes>>> {
    let body = json!({
        "data": [0],
        "event_data": null,
        "fn_index": fn_index,
        "trigger_id": null,
        "padding": "x".repeat(padding),
        "session_hash": hash,
    });
    Ok(http::Request::post(format!("{url}/gradio_api/queue/join"))
        .header("content-type", "application/json")
        .header("x-gradio-user", "app")
        .body(Full::new(Bytes::from(body.to_string())))?)
}

async fn gradio_behind(config: idlegate::config::ConfigBuilder) -> Result<(PyApp, TestGateway)> {
    let app = PyApp::gradio("tests/apps/gradio/lifecycle.py").await?;
    let gw = TestGateway::start(&app.base_url(), config.app_kind(AppKind::Gradio)).await?;
    Ok((app, gw))
}

/// Ending a tab cuts its heartbeat (so Gradio runs its `unload` listeners at once), and the
/// page's next request is told the session is gone, in the form Gradio's page reloads on.
/// The page script's token never reaches the app.
#[tokio::test]
async fn gradio_an_ended_tab_is_cut_off_and_its_requests_refused() -> Result<()> {
    let (app, gw) =
        gradio_behind(Config::builder().idle_timeout(Some(Duration::from_secs(60)))).await?;
    let result = async {
        let url = gw.url();
        let heartbeat = http::Request::get(format!("{url}/gradio_api/heartbeat/h1"))
            .header("x-idlegate-tab", TOKEN)
            .body(Full::new(Bytes::new()))?;
        let response = client().request(heartbeat).await?;
        ensure!(response.status() == 200, "heartbeat: {}", response.status());
        let mut body = response.into_body();
        let first = body.frame().await.context("no heartbeat")??;
        let first = first.into_data().ok().context("no data")?;
        ensure!(first.starts_with(b"data: ALIVE"), "{first:?}");
        let tab = gw.wait_for_tab(1, LOAD).await?;
        ensure!(
            gw.tracker().end(tab, EndReason::Admin),
            "the tab could not be ended"
        );
        // The stream ends, and Gradio sees its page leave.
        let rest = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(frame) = body.frame().await {
                frame?;
            }
            anyhow::Ok(())
        })
        .await;
        ensure!(rest.is_ok(), "the heartbeat was not cut when the tab ended");
        wait_until(LOAD, POLL, async || {
            let output = app.output();
            ensure!(output.contains("unloaded h1"), "no unload yet:\n{output}");
            Ok(())
        })
        .await?;
        ensure!(
            app.output().contains("unloaded h1 tab-header=none"),
            "the app saw idlegate's header: {}",
            app.output()
        );
        // In the form the page takes for a lost connection (it then reloads).
        let refused = testkit::http::send(join(&url, "h1", 0, 0)?).await?;
        ensure!(refused.status == 410, "{}", refused.status);
        let answer: Value = serde_json::from_slice(&refused.body)?;
        ensure!(answer["error"] == "Connection errored out. ", "{answer}");
        // The page reloads itself then: that load is sent to the ended page, once.
        let cookie = refused
            .header("set-cookie")
            .context("no cookie with the answer")?
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        ensure!(cookie == "idlegate-ended=admin", "{cookie}");
        let reload = || {
            http::Request::get(format!("{url}/?x=1"))
                .header("accept", "text/html")
                .header("sec-fetch-mode", "navigate")
                .header("cookie", &cookie)
                .body(Full::new(Bytes::new()))
        };
        let page = testkit::http::send(reload()?).await?;
        ensure!(page.status == 303, "{} {}", page.status, page.text());
        let location = page.header("location").unwrap_or_default();
        ensure!(
            location.starts_with("/_idlegate/ended?reason=admin"),
            "{location}"
        );
        ensure!(
            page.header("set-cookie")
                .unwrap_or_default()
                .contains("Max-Age=0"),
            "the cookie was not cleared"
        );
        // Its results stream is told the same.
        let data =
            testkit::http::get(&format!("{url}/gradio_api/queue/data?session_hash=h1")).await?;
        ensure!(
            data.text().contains("\"session_not_found\":true"),
            "{}",
            data.text()
        );
        // Another page's session goes on.
        let other = testkit::http::send(join(&url, "h2", 0, 0)?).await?;
        ensure!(other.status == 200, "{} {}", other.status, other.text());
        ensure!(other.text().contains("event_id"), "{}", other.text());
        Ok(())
    };
    result.await.with_context(|| app.output())
}

/// A run request's body is read for its session id up to `proxy.max_message_bytes`;
/// larger ones are refused, before the app sees them.
#[tokio::test]
async fn gradio_a_run_request_larger_than_the_limit_is_refused() -> Result<()> {
    let (app, gw) = gradio_behind(Config::builder().max_message_bytes(64 * 1024)).await?;
    let url = gw.url();
    let small = testkit::http::send(join(&url, "h1", 0, 1000)?).await?;
    ensure!(small.status == 200, "{} {}", small.status, small.text());
    let large = testkit::http::send(join(&url, "h2", 0, 100 * 1024)?).await?;
    ensure!(large.status == 413, "{} {}", large.status, large.text());
    ensure!(gw.tracker().len() == 1, "the refused request opened a tab");
    drop(app);
    Ok(())
}

/// Over the server's tab limit (refusing new tabs), a new page's requests are refused and
/// its reload is sent to the page that says the server is busy; open tabs go on.
#[tokio::test]
async fn gradio_a_new_tab_over_the_server_limit_is_refused() -> Result<()> {
    use idlegate::config::OnLimit;
    let config = Config::builder().max_total(1).on_limit(OnLimit::Refuse);
    let (app, gw) = gradio_behind(config).await?;
    let result = async {
        let url = gw.url();
        let first = testkit::http::send(join(&url, "h1", 0, 0)?).await?;
        ensure!(first.status == 200, "{} {}", first.status, first.text());
        gw.wait_for_tab(1, LOAD).await?;
        let refused = testkit::http::send(join(&url, "h2", 0, 0)?).await?;
        ensure!(
            refused.status == 410,
            "{} {}",
            refused.status,
            refused.text()
        );
        let cookie = refused.header("set-cookie").unwrap_or_default().to_owned();
        ensure!(cookie.starts_with("idlegate-ended=max_total;"), "{cookie}");
        let reload = http::Request::get(format!("{url}/"))
            .header("sec-fetch-dest", "document")
            .header("cookie", "idlegate-ended=max_total")
            .body(Full::new(Bytes::new()))?;
        let page = testkit::http::send(reload).await?;
        ensure!(page.status == 303, "{}", page.status);
        ensure!(
            page.header("location") == Some("/_idlegate/busy"),
            "{:?}",
            page.header("location")
        );
        ensure!(gw.tracker().len() == 1, "the refused page opened a tab");
        let again = testkit::http::send(join(&url, "h1", 0, 0)?).await?;
        ensure!(again.status == 200, "the open tab: {}", again.status);
        Ok(())
    };
    result.await.with_context(|| app.output())
}

/// A run request whose body stops arriving is answered 408 after `proxy.header_read_timeout`
/// instead of holding its connection and what it sent.
#[tokio::test]
async fn gradio_a_run_request_whose_body_stalls_is_timed_out() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = Config::builder().header_read_timeout(Duration::from_secs(2));
    let (app, gw) = gradio_behind(config).await?;
    let address = gw.url().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await?;
    stream
        .write_all(
            b"POST /gradio_api/queue/join HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"data\"",
        )
        .await?;
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .context("no answer within 10 s")??;
    let head = String::from_utf8_lossy(&answer[..read]);
    ensure!(head.starts_with("HTTP/1.1 408"), "{head}");
    ensure!(gw.tracker().is_empty(), "a tab was opened");
    drop(app);
    Ok(())
}
