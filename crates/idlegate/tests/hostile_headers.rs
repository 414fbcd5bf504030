//! Hostile request headers against a real gateway: `Connection` options naming what idlegate
//! keeps or sets, identity headers a browser or a half-configured proxy sends, idlegate's own
//! cookies and split cookie fields, forged `X-Forwarded-For` chains, sign-in over HTTP/2
//! (no `Host`), and client-chosen text in the log. A `FakeUpstream` records what reached
//! the app; one test reads `st.context.cookies` in a real Streamlit.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use http::{Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use idlegate::config::{Config, ConfigBuilder, SignIn};
use testkit::gateway::TestGateway;
use testkit::http::{self as web, Response};
use testkit::stclient::Upgrade;
use testkit::upstream::{FakeUpstream, Received};
use testkit::{StClient, StreamlitApp};

const PASSWORD: &str = "correct horse battery";
const LOGIN: &str = "__Host-idlegate-login";
const REACH: Duration = Duration::from_secs(10);

/// Everything the gateways of this test process log, as text.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

/// The log so far (a subscriber is installed on first use).
fn log() -> String {
    static LOG: OnceLock<LogBuffer> = OnceLock::new();
    let buffer = LOG.get_or_init(|| {
        let buffer = LogBuffer::default();
        let _ = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .try_init();
        buffer
    });
    String::from_utf8_lossy(&buffer.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

fn users_file(dir: &tempfile::TempDir) -> Result<PathBuf> {
    let hash = idlegate::auth::password::hash(PASSWORD).map_err(anyhow::Error::msg)?;
    let path = dir.path().join("users");
    std::fs::write(&path, format!("alice:{hash}\n"))?;
    Ok(path)
}

/// A gateway signing in with passwords (alice) in front of `upstream`.
async fn password_gateway(
    upstream: &str,
    dir: &tempfile::TempDir,
    config: ConfigBuilder,
) -> Result<TestGateway> {
    TestGateway::start(upstream, config.users_file(&users_file(dir)?)).await
}

fn build(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Request<Full<Bytes>>> {
    let mut req = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    Ok(req.body(Full::new(Bytes::from(body.to_owned())))?)
}

async fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Response> {
    web::send(build(method, url, headers, body)?).await
}

/// Sends a request over HTTP/2 with prior knowledge (h2c), as a browser's HTTP/2 request
/// arrives once TLS is off: `:authority` and no `Host`, cookies in separate fields.
async fn h2(req: Request<Full<Bytes>>) -> Result<Response> {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new());
    let exchange = async {
        let response = client.request(req).await?;
        ensure!(
            response.version() == Version::HTTP_2,
            "{:?}",
            response.version()
        );
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(REACH, exchange)
        .await
        .context("HTTP/2 request timed out")?
}

fn sign_in_body() -> Result<String> {
    Ok(serde_urlencoded::to_string([
        ("username", "alice"),
        ("password", PASSWORD),
        ("return", "/"),
    ])?)
}

/// The `name=value` of the login cookie a response set.
fn login_cookie(response: &Response) -> Result<String> {
    response
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{LOGIN}=")))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
        .with_context(|| format!("no login cookie: {} {}", response.status, response.text()))
}

/// Signs alice in over HTTP/1.1 and returns her login cookie.
async fn signed_in(gw: &TestGateway) -> Result<String> {
    let response = request(
        Method::POST,
        &format!("{}/_idlegate/login", gw.url()),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", &gw.url()),
        ],
        &sign_in_body()?,
    )
    .await?;
    ensure!(
        response.status == StatusCode::SEE_OTHER,
        "{}",
        response.status
    );
    login_cookie(&response)
}

/// Asserts that the app got exactly one identity header, idlegate's, naming alice.
fn only_alice(reached: &Received) -> Result<()> {
    ensure!(
        reached.header_all("x-forwarded-user") == ["alice"],
        "{reached:?}"
    );
    // The display name is idlegate's (the key, for a password login), never the client's.
    ensure!(
        reached.header_all("x-forwarded-preferred-username") == ["alice"],
        "{reached:?}"
    );
    for name in ["x-forwarded-groups", "x-forwarded-email"] {
        ensure!(
            reached.header(name).is_none(),
            "{name} reached the app: {reached:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn connection_options_cannot_remove_identity_cookie_or_origin() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = FakeUpstream::start().await?;
    let gw = password_gateway(&app.url(), &dir, Config::builder()).await?;
    let cookie = format!("app=1; {}", signed_in(&gw).await?);
    let response = request(
        Method::GET,
        &format!("{}/plain", gw.url()),
        &[
            (
                "connection",
                "X-Forwarded-User, Cookie, Origin, Host, X-Forwarded-Groups, x-drop",
            ),
            ("x-forwarded-user", "mallory"),
            ("x-forwarded-groups", "admins"),
            ("x-forwarded-preferred-username", "root"),
            ("origin", &gw.url()),
            ("cookie", &cookie),
            ("x-drop", "for the next hop only"),
        ],
        "",
    )
    .await?;
    ensure!(response.status == StatusCode::OK, "{}", response.status);
    let reached = app.wait_for_request(REACH, |r| r.path == "/plain").await?;
    only_alice(&reached)?;
    ensure!(
        reached.header("origin") == Some(gw.url().as_str()),
        "{reached:?}"
    );
    ensure!(reached.header_all("cookie") == ["app=1"], "{reached:?}");
    ensure!(
        reached.header("host").is_some() && reached.header("x-drop").is_none(),
        "{reached:?}"
    );
    Ok(())
}

#[tokio::test]
async fn connection_options_cannot_remove_them_from_websocket_upgrades() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = FakeUpstream::start().await?;
    let gw = password_gateway(&app.url(), &dir, Config::builder()).await?;
    let cookie = format!("app=1; {}", signed_in(&gw).await?);
    let response = request(
        Method::GET,
        &format!("{}/_stcore/stream", gw.url()),
        &[
            (
                "connection",
                "Upgrade, X-Forwarded-User, Cookie, Origin, Sec-WebSocket-Key",
            ),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "streamlit"),
            ("x-forwarded-user", "mallory"),
            ("origin", &gw.url()),
            ("cookie", &cookie),
        ],
        "",
    )
    .await?;
    ensure!(
        response.status == StatusCode::SWITCHING_PROTOCOLS,
        "{}",
        response.status
    );
    let reached = app
        .wait_for_request(REACH, |r| r.path == "/_stcore/stream")
        .await?;
    ensure!(reached.is_upgrade(), "{reached:?}");
    only_alice(&reached)?;
    ensure!(
        reached.header("origin") == Some(gw.url().as_str()),
        "{reached:?}"
    );
    ensure!(reached.header_all("cookie") == ["app=1"], "{reached:?}");
    ensure!(reached.header("sec-websocket-key").is_some(), "{reached:?}");
    Ok(())
}

#[tokio::test]
async fn header_mode_passes_on_only_the_headers_the_proxy_sets() -> Result<()> {
    let app = FakeUpstream::start().await?;
    let proxy = |sets: &[&str]| {
        Config::builder()
            .login(SignIn::Header)
            .trusted_proxies(["127.0.0.1"])
            .proxy_headers(sets.iter().copied())
    };
    // The proxy sets only the user header and passes the browser's others on.
    let from_proxy = [
        ("x-forwarded-user", "carol"),
        ("x-forwarded-groups", "admins"),
        ("x-forwarded-email", "boss@example.com"),
        ("x-forwarded-preferred-username", "root"),
    ];
    let user_only = TestGateway::start(&app.url(), proxy(&["user"])).await?;
    let response = request(
        Method::GET,
        &format!("{}/user-only", user_only.url()),
        &from_proxy,
        "",
    )
    .await?;
    ensure!(response.status == StatusCode::OK, "{}", response.status);
    let reached = app
        .wait_for_request(REACH, |r| r.path == "/user-only")
        .await?;
    ensure!(
        reached.header_all("x-forwarded-user") == ["carol"],
        "{reached:?}"
    );
    ensure!(
        reached.header_all("x-forwarded-preferred-username") == ["carol"],
        "{reached:?}"
    );
    for name in ["x-forwarded-groups", "x-forwarded-email"] {
        ensure!(reached.header(name).is_none(), "{name}: {reached:?}");
    }
    // A proxy said to set groups too: those are the login's.
    let with_groups = TestGateway::start(&app.url(), proxy(&["user", "groups"])).await?;
    request(
        Method::GET,
        &format!("{}/with-groups", with_groups.url()),
        &from_proxy,
        "",
    )
    .await?;
    let reached = app
        .wait_for_request(REACH, |r| r.path == "/with-groups")
        .await?;
    ensure!(
        reached.header_all("x-forwarded-groups") == ["admins"],
        "{reached:?}"
    );
    ensure!(reached.header("x-forwarded-email").is_none(), "{reached:?}");
    Ok(())
}

#[tokio::test]
async fn idlegate_cookies_never_reach_the_app_and_cookies_arrive_on_one_line() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = FakeUpstream::start().await?;
    let gw = password_gateway(&app.url(), &dir, Config::builder()).await?;
    let login = signed_in(&gw).await?;
    // HTTP/1.1 with two fields, idlegate's OpenID attempt cookie among them.
    let req = build(Method::GET, &format!("{}/h1", gw.url()), &[], "")?;
    let (mut parts, body) = req.into_parts();
    for field in [
        "a=1; idlegate-oidc=xyz",
        &format!("{login}; b=\"two\""),
        "__Host-idlegate-other=1",
    ] {
        parts.headers.append("cookie", field.parse()?);
    }
    web::send(Request::from_parts(parts, body)).await?;
    let reached = app.wait_for_request(REACH, |r| r.path == "/h1").await?;
    ensure!(
        reached.header_all("cookie") == ["a=1; b=\"two\""],
        "{reached:?}"
    );
    only_alice(&reached)?;
    // HTTP/2: a browser sends each cookie in a field of its own (RFC 9113 §8.2.3).
    let req = build(Method::GET, &format!("{}/h2", gw.url()), &[], "")?;
    let (mut parts, body) = req.into_parts();
    for field in ["a=1", login.as_str(), "c=3"] {
        parts.headers.append("cookie", field.parse()?);
    }
    let response = h2(Request::from_parts(parts, body)).await?;
    ensure!(response.status == StatusCode::OK, "{}", response.status);
    let reached = app.wait_for_request(REACH, |r| r.path == "/h2").await?;
    ensure!(reached.header_all("cookie") == ["a=1; c=3"], "{reached:?}");
    only_alice(&reached)?;
    Ok(())
}

#[tokio::test]
async fn the_client_address_is_the_first_untrusted_hop_from_the_right() -> Result<()> {
    log(); // capture from the start
    let dir = tempfile::tempdir()?;
    let app = FakeUpstream::start().await?;
    let config = || {
        Config::builder()
            .trusted_proxies(["127.0.0.1"])
            .attempts_per_minute(2)
    };
    let attempt = |gw: String, user: String, chain: String| async move {
        let body =
            serde_urlencoded::to_string([("username", user.as_str()), ("password", "wrong")])?;
        request(
            Method::POST,
            &format!("{gw}/_idlegate/login"),
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", &gw),
                ("x-forwarded-for", &chain),
            ],
            &body,
        )
        .await
    };
    // The proxy appends the address it saw with a port; the client writes its own entry to
    // the left, a new one each time: the limit must still hold for the proxy's entry.
    let gw = password_gateway(&app.url(), &dir, config()).await?;
    let mut statuses = Vec::new();
    for i in 0..3 {
        let chain = format!("192.0.2.{i}, 198.51.100.7:5555");
        statuses.push(attempt(gw.url(), format!("user{i}"), chain).await?.status);
    }
    ensure!(statuses == [401, 401, 429], "{statuses:?}");
    let logged = log();
    ensure!(
        logged
            .lines()
            .any(|l| l.contains("over the limit") && l.contains("client=198.51.100.7")),
        "{logged}"
    );
    // `unknown` (or any non-address) stops the walk: the client is the nearest trusted hop.
    let gw = password_gateway(&app.url(), &dir, config()).await?;
    let mut statuses = Vec::new();
    for i in 0..3 {
        let chain = format!("192.0.2.{i}, unknown");
        statuses.push(attempt(gw.url(), format!("other{i}"), chain).await?.status);
    }
    ensure!(statuses == [401, 401, 429], "{statuses:?}");
    Ok(())
}

#[tokio::test]
async fn sign_in_and_sign_out_work_over_http2() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = FakeUpstream::start().await?;
    let gw = password_gateway(&app.url(), &dir, Config::builder()).await?;
    let origin = gw.url();
    let form = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("origin", origin.as_str()),
    ];
    let login_url = format!("{}/_idlegate/login", gw.url());
    let signed = h2(build(Method::POST, &login_url, &form, &sign_in_body()?)?).await?;
    ensure!(
        signed.status == StatusCode::SEE_OTHER,
        "{} {}",
        signed.status,
        signed.text()
    );
    let cookie = login_cookie(&signed)?;
    let page = h2(build(
        Method::GET,
        &format!("{}/after", gw.url()),
        &[("cookie", &cookie)],
        "",
    )?)
    .await?;
    ensure!(page.status == StatusCode::OK, "{}", page.status);
    only_alice(&app.wait_for_request(REACH, |r| r.path == "/after").await?)?;
    // Another site's page is still refused.
    let forged = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("origin", "http://evil.example"),
    ];
    let refused = h2(build(Method::POST, &login_url, &forged, &sign_in_body()?)?).await?;
    ensure!(
        refused.status == StatusCode::FORBIDDEN,
        "{}",
        refused.status
    );
    let mut out: Vec<(&str, &str)> = vec![("cookie", &cookie)];
    out.extend(form.iter().copied());
    let signed_out = h2(build(
        Method::POST,
        &format!("{}/_idlegate/logout", gw.url()),
        &out,
        "",
    )?)
    .await?;
    ensure!(
        signed_out.status == StatusCode::SEE_OTHER,
        "{} {}",
        signed_out.status,
        signed_out.text()
    );
    let after = h2(build(
        Method::GET,
        &format!("{}/after", gw.url()),
        &[("cookie", &cookie)],
        "",
    )?)
    .await?;
    ensure!(after.status == StatusCode::UNAUTHORIZED, "{}", after.status);
    Ok(())
}

/// Behind a trusted proxy that ends TLS, the site is HTTPS: a page served over plain HTTP on
/// the same host (anyone on the network can forge one) may not sign in or out; the HTTPS
/// page may.
#[tokio::test]
async fn a_plain_http_page_cannot_sign_in_to_the_https_site() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = FakeUpstream::start().await?;
    let config = Config::builder().trusted_proxies(["127.0.0.1"]);
    let gw = password_gateway(&app.url(), &dir, config).await?;
    let login_url = format!("{}/_idlegate/login", gw.url());
    let from = |origin: &'static str| {
        [
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", origin),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "apps.example"),
        ]
    };
    let body = sign_in_body()?;
    let plain = request(
        Method::POST,
        &login_url,
        &from("http://apps.example"),
        &body,
    )
    .await?;
    ensure!(plain.status == StatusCode::FORBIDDEN, "{}", plain.status);
    let secure = request(
        Method::POST,
        &login_url,
        &from("https://apps.example"),
        &body,
    )
    .await?;
    ensure!(
        secure.status == StatusCode::SEE_OTHER,
        "{} {}",
        secure.status,
        secure.text()
    );
    let cookie = login_cookie(&secure)?;
    let logout_url = format!("{}/_idlegate/logout", gw.url());
    let mut out = from("http://apps.example").to_vec();
    out.push(("cookie", &cookie));
    let refused = request(Method::POST, &logout_url, &out, "").await?;
    ensure!(
        refused.status == StatusCode::FORBIDDEN,
        "{}",
        refused.status
    );
    Ok(())
}

#[tokio::test]
async fn proxy_error_logs_name_the_route_not_the_upload_session() -> Result<()> {
    log(); // capture from the start
           // Nothing listens on the upstream's port: every request fails and is logged.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let gw = TestGateway::start(&format!("http://{closed}"), Config::builder()).await?;
    let session = "5f0c7a1e-3b9d-4c2a-8e6f-1d2b3c4d5e6f";
    let path = format!("/_stcore/upload_file/{session}/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d");
    let response = request(Method::PUT, &format!("{}{path}", gw.url()), &[], "file").await?;
    ensure!(
        response.status == StatusCode::BAD_GATEWAY,
        "{}",
        response.status
    );
    let hostile = format!("/{}", "%0Afake=line".repeat(2000));
    request(Method::GET, &format!("{}{hostile}", gw.url()), &[], "").await?;
    let logged = log();
    let failures: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("request failed"))
        .collect();
    ensure!(failures.len() == 2, "{logged}");
    ensure!(
        !logged.contains(session) && !logged.contains("fake=line"),
        "{logged}"
    );
    ensure!(
        failures[0].contains("/_stcore/upload_file/{id}/{id}"),
        "{}",
        failures[0]
    );
    ensure!(failures.iter().all(|l| l.len() < 600), "{failures:?}");
    Ok(())
}

#[tokio::test]
async fn openid_errors_are_logged_from_a_fixed_vocabulary() -> Result<()> {
    log(); // capture from the start
    let app = FakeUpstream::start().await?;
    // The callback's `error` is answered before the provider is asked anything.
    let provider = idlegate::config::OidcProvider {
        issuer: "https://idp.invalid".into(),
        client_id: "idlegate".into(),
        client_secret: None,
        redirect_url: None,
        reauthenticate: idlegate::config::login::Reauthenticate::AfterSignOut,
    };
    let gw =
        TestGateway::start(&app.url(), Config::builder().login(SignIn::Oidc(provider))).await?;
    let callback = format!("{}/_idlegate/oidc/callback", gw.url());
    let known = request(
        Method::GET,
        &format!("{callback}?error=access_denied"),
        &[],
        "",
    )
    .await?;
    ensure!(known.status == StatusCode::FORBIDDEN, "{}", known.status);
    let junk = format!("%0A{}", "injected".repeat(4000));
    request(Method::GET, &format!("{callback}?error={junk}"), &[], "").await?;
    let logged = log();
    let refusals: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("refused a sign-in"))
        .collect();
    ensure!(refusals.len() == 2, "{logged}");
    ensure!(
        refusals[0].contains("error=access_denied"),
        "{}",
        refusals[0]
    );
    ensure!(
        refusals[1].contains("/32001") && !refusals[1].contains("injected"),
        "{}",
        refusals[1]
    );
    ensure!(refusals.iter().all(|l| l.len() < 300), "{refusals:?}");
    Ok(())
}

#[tokio::test]
async fn a_streamlit_app_never_sees_idlegate_cookies() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = StreamlitApp::test_app("cookies.py", None).await?;
    let gw = password_gateway(&app.base_url(), &dir, Config::builder()).await?;
    let login = signed_in(&gw).await?;
    let cookie = format!("theirs=1; {login}; idlegate-oidc=x; second=2");
    let Upgrade::Accepted(mut tab) =
        StClient::connect_adding(&gw.url(), &[("Cookie", &cookie)]).await?
    else {
        anyhow::bail!("the tab was refused");
    };
    tab.send_rerun(false).await?;
    let text = tab
        .run_until_finished(Duration::from_secs(20))
        .await?
        .markdown()
        .join("\n");
    ensure!(text.contains("cookies: second,theirs"), "{text}");
    Ok(())
}
