//! The page script's side of idlegate, against a real Streamlit: the `<script>` tag in the
//! app's HTML pages, the script itself, and the tab API the script reports to.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use idlegate::config::Config;
use idlegate::lifecycle::Event;
use idlegate::tracker::EndReason;
use testkit::gateway::TestGateway;
use testkit::http::{self as web, Response};
use testkit::upstream::{FakeUpstream, Reply};
use testkit::{StClient, StreamlitApp};
use tokio::time::Instant;

const RUN: Duration = Duration::from_secs(20);
/// How long a test waits for an event before it fails.
const EVENT: Duration = Duration::from_secs(15);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
const TOKEN: &str = "pageTokenForTests_0123";

async fn get(url: &str, headers: &[(&str, &str)]) -> Result<Response> {
    let mut request = Request::builder().method(Method::GET).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    web::send(request.body(Full::new(Bytes::new()))?).await
}

async fn post(url: &str, headers: &[(&str, &str)], body: &str) -> Result<Response> {
    let mut request = Request::builder().method(Method::POST).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    web::send(request.body(Full::new(Bytes::from(body.to_owned())))?).await
}

const NAVIGATION: &[(&str, &str)] = &[
    ("sec-fetch-dest", "document"),
    ("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
    ("accept-encoding", "gzip, deflate, br"),
];

fn script_tag_position(html: &str) -> Option<usize> {
    html.find("<script src=\"").filter(|at| {
        html[*at..].starts_with("<script src=\"") && html[*at..].contains("/_idlegate/client.js?v=")
    })
}

#[tokio::test]
async fn html_pages_get_the_script_first_in_head_with_a_right_length_and_etag() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = TestGateway::start(&app.base_url(), Config::builder()).await?;

    let direct = get(&format!("{}/", app.base_url()), NAVIGATION).await?;
    let page = get(&format!("{}/", gw.url()), NAVIGATION).await?;
    ensure!(page.status == StatusCode::OK, "{}", page.status);
    let html = page.text();
    let head = html.find("<head>").context("no <head>")? + "<head>".len();
    ensure!(
        script_tag_position(&html) == Some(head),
        "the script tag is not first in <head>: {html}"
    );
    let tag_end = html[head..].find("</script>").context("no end of tag")? + head + 9;
    ensure!(
        format!("{}{}", &html[..head], &html[tag_end..]) == direct.text(),
        "apart from the tag, the page must be the app's"
    );
    ensure!(
        page.header("content-length") == Some(&page.body.len().to_string()),
        "Content-Length {:?} for {} bytes",
        page.header("content-length"),
        page.body.len()
    );
    let etag = page.header("etag").context("no ETag")?.to_owned();
    let app_etag = direct.header("etag").context("the app sent no ETag")?;
    ensure!(etag != app_etag && etag.contains("-ig"), "ETag {etag}");

    // The browser's revalidation with idlegate's ETag gets a 304 from the app.
    let again = get(
        &format!("{}/", gw.url()),
        &[NAVIGATION, &[("if-none-match", etag.as_str())]].concat(),
    )
    .await?;
    ensure!(again.status == StatusCode::NOT_MODIFIED, "{}", again.status);
    ensure!(again.header("etag") == Some(etag.as_str()));
    // The app's own ETag (an old page from before idlegate) does not match.
    let stale = get(
        &format!("{}/", gw.url()),
        &[NAVIGATION, &[("if-none-match", app_etag)]].concat(),
    )
    .await?;
    ensure!(stale.status == StatusCode::OK, "{}", stale.status);

    // A page path: Streamlit would gzip it; it arrives injected and readable.
    let sub = get(&format!("{}/some_page", gw.url()), NAVIGATION).await?;
    ensure!(sub.status == StatusCode::OK);
    ensure!(sub.header("content-encoding").is_none());
    ensure!(script_tag_position(&sub.text()).is_some(), "{}", sub.text());

    // Assets and the app's other answers are untouched.
    let manifest = get(&format!("{}/manifest.json", gw.url()), &[]).await?;
    let direct_manifest = get(&format!("{}/manifest.json", app.base_url()), &[]).await?;
    ensure!(manifest.body == direct_manifest.body);
    let fetched = get(&format!("{}/", gw.url()), &[("accept", "*/*")]).await?;
    ensure!(
        fetched.body == direct.body,
        "a non-navigation fetch must not be rewritten"
    );
    Ok(())
}

#[tokio::test]
async fn with_inject_off_pages_are_exactly_the_apps() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = TestGateway::start(&app.base_url(), Config::builder().inject(false)).await?;
    for path in ["/", "/some_page"] {
        let direct = get(&format!("{}{path}", app.base_url()), NAVIGATION).await?;
        let proxied = get(&format!("{}{path}", gw.url()), NAVIGATION).await?;
        ensure!(proxied.body == direct.body, "{path} differs");
        ensure!(proxied.header("etag") == direct.header("etag"));
        ensure!(proxied.header("content-encoding") == direct.header("content-encoding"));
    }
    Ok(())
}

#[tokio::test]
async fn script_is_served_with_its_settings_and_revalidates() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", Some("/tools")).await?;
    let gw = TestGateway::start(
        &app.base_url(),
        Config::builder()
            .base_path("/tools")
            .idle_timeout(Some(secs(600)))
            .warn_before(Some(secs(90)))
            .texts(|texts| texts.keep_working = "Weiterarbeiten".to_owned()),
    )
    .await?;
    let page = get(&format!("{}/tools/", gw.url()), NAVIGATION).await?;
    let html = page.text();
    let src_at = html
        .find("/tools/_idlegate/client.js?v=")
        .context("no script tag")?;
    let src_end = src_at + html[src_at..].find('"').context("unterminated src")?;
    let src = &html[src_at..src_end];

    let script = get(&format!("{}{src}", gw.url()), &[]).await?;
    ensure!(script.status == StatusCode::OK, "{}", script.status);
    ensure!(script.header("content-type") == Some("text/javascript; charset=utf-8"));
    let body = script.text();
    for needle in [
        "\"warnBeforeMs\":90000",
        "\"tabUrl\":\"/tools/_idlegate/tab\"",
        "\"socketSuffix\":\"/tools/_stcore/stream\"",
        "Weiterarbeiten",
    ] {
        ensure!(body.contains(needle), "the script lacks {needle}");
    }
    let etag = script.header("etag").context("no ETag")?;
    let again = get(&format!("{}{src}", gw.url()), &[("if-none-match", etag)]).await?;
    ensure!(again.status == StatusCode::NOT_MODIFIED);
    Ok(())
}

fn tab_url(gw: &TestGateway) -> String {
    format!("{}/_idlegate/tab", gw.url())
}

/// A report of the page with [`TOKEN`].
fn report_body(event: &str) -> String {
    format!(r#"{{"tab":"{TOKEN}","event":"{event}"}}"#)
}

const SAME_ORIGIN: &[(&str, &str)] = &[
    ("content-type", "application/json"),
    ("sec-fetch-site", "same-origin"),
];

/// The page's status check.
async fn check(gw: &TestGateway) -> Result<Response> {
    post(&tab_url(gw), SAME_ORIGIN, &report_body("check")).await
}

fn json(response: &Response) -> Result<serde_json::Value> {
    serde_json::from_slice(&response.body).with_context(|| response.text())
}

#[tokio::test]
async fn reports_reach_the_pages_tab_and_a_hidden_tab_ends_early() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = TestGateway::start(
        &app.base_url(),
        Config::builder()
            .idle_timeout(Some(secs(60)))
            .hidden_timeout(Some(secs(3))),
    )
    .await?;
    let unknown = check(&gw).await?;
    ensure!(
        unknown.status == StatusCode::NOT_FOUND,
        "{}",
        unknown.status
    );

    let mut tab = StClient::connect_as_page(&gw.url(), TOKEN).await?;
    tab.send_rerun(false).await?;
    tab.run_until_finished(RUN).await?;
    let id = gw.wait_for_tab(1, EVENT).await?;

    // The app reports the end of the page's run just after its last message.
    gw.wait_for_event(EVENT, |e| {
        *e == Event::Busy {
            tab: id,
            busy: false,
        }
    })
    .await?;
    let status = check(&gw).await?;
    ensure!(status.status == StatusCode::OK, "{}", status.text());
    let status = json(&status)?;
    ensure!(
        status["state"] == "open" && status["reason"] == "idle",
        "{status}"
    );
    ensure!(status["busy"] == false, "{status}");
    let ends_in = status["endsInMs"].as_u64().context("no endsInMs")?;
    ensure!((55_000..=60_000).contains(&ends_in), "{ends_in}");

    // Refused: another site's page, a form post, a bad body.
    let cross = post(
        &tab_url(&gw),
        &[
            ("content-type", "application/json"),
            ("sec-fetch-site", "cross-site"),
        ],
        &report_body("activity"),
    )
    .await?;
    ensure!(cross.status == StatusCode::FORBIDDEN, "{}", cross.status);
    let evil = post(
        &tab_url(&gw),
        &[
            ("content-type", "application/json"),
            ("origin", "http://evil.example"),
        ],
        &report_body("activity"),
    )
    .await?;
    ensure!(evil.status == StatusCode::FORBIDDEN, "{}", evil.status);
    let unmarked = post(
        &tab_url(&gw),
        &[("content-type", "application/json")],
        &report_body("activity"),
    )
    .await?;
    ensure!(
        unmarked.status == StatusCode::FORBIDDEN,
        "{}",
        unmarked.status
    );
    let form = post(
        &tab_url(&gw),
        &[
            ("content-type", "text/plain"),
            ("sec-fetch-site", "same-origin"),
        ],
        &report_body("activity"),
    )
    .await?;
    ensure!(
        form.status == StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        form.status
    );
    let bad = post(&tab_url(&gw), SAME_ORIGIN, &report_body("nap")).await?;
    ensure!(bad.status == StatusCode::BAD_REQUEST, "{}", bad.status);

    let hidden = post(&tab_url(&gw), SAME_ORIGIN, &report_body("hidden")).await?;
    let hidden_at = Instant::now();
    let hidden = json(&hidden)?;
    ensure!(
        hidden["hidden"] == true && hidden["reason"] == "hidden_idle",
        "{hidden}"
    );

    let ended = gw.wait_for_end(id, EVENT).await?;
    ensure!(ended.end.reason == EndReason::HiddenIdle, "{:?}", ended.end);
    ended.on_time()?;
    ended.by(hidden_at + secs(3))?;
    let took = ended.at - hidden_at;
    ensure!(
        took >= Duration::from_millis(2900),
        "a tab hidden with a 3s limit ended after {took:?}"
    );
    let redirect = tab.wait_for_auth_redirect(secs(5)).await?;
    ensure!(
        redirect.contains("/_idlegate/ended?reason=hidden_idle"),
        "{redirect}"
    );
    let ended = check(&gw).await?;
    ensure!(ended.status == StatusCode::GONE, "{}", ended.status);
    let ended = json(&ended)?;
    ensure!(ended["reason"] == "hidden_idle", "{ended}");
    ensure!(
        ended["endedUrl"] == "/_idlegate/ended?reason=hidden_idle",
        "{ended}"
    );
    let late = post(&tab_url(&gw), SAME_ORIGIN, &report_body("activity")).await?;
    ensure!(
        late.status == StatusCode::GONE,
        "reports for ended tabs are refused"
    );
    Ok(())
}

#[tokio::test]
async fn activity_reports_keep_a_tab_whose_page_sends_nothing_else() -> Result<()> {
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let gw = TestGateway::start(
        &app.base_url(),
        Config::builder().idle_timeout(Some(secs(3))),
    )
    .await?;
    let mut tab = StClient::connect_as_page(&gw.url(), TOKEN).await?;
    tab.send_rerun(false).await?;
    tab.run_until_finished(RUN).await?;
    let id = gw.wait_for_tab(1, EVENT).await?;
    // Someone typing a long text: only the script's reports say so.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        let report = post(&tab_url(&gw), SAME_ORIGIN, &report_body("activity")).await?;
        ensure!(
            report.status == StatusCode::OK,
            "tab ended while reported active: {}",
            report.text()
        );
        // A report every second, as the script sends them while someone types: the
        // scenario's input.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let last = Instant::now();
    let ended = gw.wait_for_end(id, EVENT).await?;
    ensure!(ended.end.reason == EndReason::Idle, "{:?}", ended.end);
    ended.on_time()?;
    // The last report came a second before `last`.
    ended.by(last + secs(2))?;
    let after = ended.at - last;
    ensure!(
        after >= Duration::from_millis(1900),
        "ended {after:?} after the last report"
    );
    let redirect = tab.wait_for_auth_redirect(secs(5)).await?;
    ensure!(redirect.contains("reason=idle"), "{redirect}");
    Ok(())
}

/// An app that compresses its page whatever the request asks for: a fault Streamlit itself
/// does not produce (it honours `Accept-Encoding: identity`).
async fn always_gzip_upstream() -> Result<FakeUpstream> {
    use async_compression::tokio::bufread::GzipEncoder;
    use tokio::io::AsyncReadExt;
    let page = b"<!doctype html><html><head><title>t</title></head><body>hello</body></html>";
    let mut gz = Vec::new();
    GzipEncoder::new(&page[..]).read_to_end(&mut gz).await?;
    let app = FakeUpstream::start().await?;
    app.reply(
        "/report",
        Reply::ok(gz)
            .header("content-type", "text/html; charset=utf-8")
            .header("content-encoding", "gzip")
            .header("etag", "\"page1\""),
    );
    Ok(app)
}

#[tokio::test]
async fn a_page_compressed_against_the_request_is_decoded_and_injected() -> Result<()> {
    let app = always_gzip_upstream().await?;
    let gw = TestGateway::start(&app.url(), Config::builder()).await?;
    let page = get(&format!("{}/report", gw.url()), NAVIGATION).await?;
    ensure!(page.status == StatusCode::OK, "{}", page.status);
    ensure!(
        page.header("content-encoding").is_none(),
        "still compressed"
    );
    let html = page.text();
    ensure!(
        html.starts_with("<!doctype html><html><head><script src=\"/_idlegate/client.js?v="),
        "{html}"
    );
    ensure!(
        html.ends_with("<title>t</title></head><body>hello</body></html>"),
        "{html}"
    );
    ensure!(page.header("content-length") == Some(page.body.len().to_string().as_str()));
    ensure!(page
        .header("etag")
        .is_some_and(|e| e.starts_with("\"page1-ig")));
    // What the app was asked for.
    let asked = app.received_at("/report");
    ensure!(asked.len() == 1, "{asked:?}");
    ensure!(
        asked[0].header("sec-fetch-dest") == Some("document"),
        "{asked:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_ended_page_returns_only_to_pages_of_the_app() -> Result<()> {
    // idlegate's own page: any app behind it will do.
    let app = FakeUpstream::start().await?;
    let gw = TestGateway::start(&app.url(), Config::builder()).await?;
    let restart = |html: &str| -> Result<String> {
        const LINK: &str = "id=\"idlegate-restart\" href=\"";
        let at = html.find(LINK).context("no restart link")? + LINK.len();
        let end = at + html[at..].find('"').context("unterminated href")?;
        Ok(html[at..end].to_owned())
    };
    let back = get(
        &format!(
            "{}/_idlegate/ended?reason=idle&return=%2Fsecond%3Fx%3D1",
            gw.url()
        ),
        &[],
    )
    .await?;
    let link = restart(&back.text())?;
    ensure!(link == "/second?x=1", "the restart link is {link:?}");
    for evil in [
        "%2F%2Fevil.example",
        "https%3A%2F%2Fevil.example",
        "https:evil",
        "%2F%5Cevil.example",
    ] {
        let page = get(
            &format!("{}/_idlegate/ended?reason=idle&return={evil}", gw.url()),
            &[],
        )
        .await?;
        let link = restart(&page.text())?;
        ensure!(link == "/", "return={evil} was followed: {link:?}");
    }
    Ok(())
}
