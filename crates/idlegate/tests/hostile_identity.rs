//! Identity under hostile conditions, end to end with a real OpenID provider (npm
//! `oidc-provider`, `tests/idp`) and a real idlegate: who the app is told signed in comes
//! from stable, verified claims; the provider's rotated keys are fetched again without a
//! restart; a flood of anonymous sign-in starts breaks nobody's sign-in; and header mode
//! makes one login per person, not one per request without a cookie.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use futures_util::stream::{self, StreamExt};
use http::StatusCode;
use idlegate::config::login::Reauthenticate;
use idlegate::config::{Config, OidcProvider, SignIn};
use idlegate::lifecycle::Event;
use serde_json::json;
use testkit::gateway::TestGateway;
use testkit::idp::{Browserless, Idp, CLIENT_ID, CLIENT_SECRET};
use testkit::upstream::{FakeUpstream, Received};

const LOAD: Duration = Duration::from_secs(20);

/// A gateway signing in at a provider on `idp_port`, in front of a fake app.
async fn oidc_gateway(app: &FakeUpstream, idp_port: u16) -> Result<TestGateway> {
    TestGateway::start(
        &app.url(),
        Config::builder()
            .login(SignIn::Oidc(OidcProvider {
                issuer: format!("http://127.0.0.1:{idp_port}"),
                client_id: CLIENT_ID.to_owned(),
                client_secret: Some(CLIENT_SECRET.to_owned()),
                redirect_url: None,
                reauthenticate: Reauthenticate::Never,
            }))
            .oidc_scopes(["openid", "email", "profile", "groups"])
            .cookie_secure(false),
    )
    .await
}

/// Signs in as `login` from a fresh client, starting at `<gw>/_idlegate/login?return=<to>`,
/// and returns the request the app received at the end.
async fn sign_in(
    gw: &TestGateway,
    app: &FakeUpstream,
    idp: &Idp,
    login: &str,
    to: &str,
) -> Result<Received> {
    let start = format!("{}/_idlegate/login?return={to}", gw.url());
    let (url, response) = Browserless::new()
        .follow(&start, login)
        .await
        .with_context(|| idp.output())?;
    ensure!(
        response.status == StatusCode::OK,
        "{login}: {} at {url}: {}",
        response.status,
        response.text()
    );
    app.received_at(to)
        .pop()
        .with_context(|| format!("{login} did not reach {to}"))
}

#[tokio::test]
async fn the_app_is_told_the_stable_key_and_only_a_verified_email() -> Result<()> {
    let app = FakeUpstream::start().await?;
    let idp_port = Idp::reserve_port();
    let gw = oidc_gateway(&app, idp_port).await?;
    // Two people who both call themselves "alice" (preferred_username is theirs to choose at
    // many providers); one with an email the provider has not verified.
    // The provider's account ids (`sub`) are opaque; "alice" is what each person chose to
    // be called.
    let accounts = json!({
        "u-1001": {"preferred_username": "alice", "name": "Alice",
                   "email": "alice@corp.example", "email_verified": true},
        "u-6666": {"preferred_username": "alice", "name": "Alice",
                   "email": "alice@corp.example", "email_verified": false},
    });
    let callback = format!("{}/_idlegate/oidc/callback", gw.url());
    let idp = Idp::start_with_accounts(idp_port, &callback, accounts).await?;
    let alice = sign_in(&gw, &app, &idp, "u-1001", "/alice").await?;
    ensure!(
        alice.header("x-forwarded-user") == Some("u-1001"),
        "{alice:?}"
    );
    ensure!(
        alice.header("x-forwarded-email") == Some("alice@corp.example"),
        "{alice:?}"
    );
    // Both may show as "alice": the display name is only for display.
    ensure!(
        alice.header("x-forwarded-preferred-username") == Some("alice"),
        "{alice:?}"
    );
    let mallory = sign_in(&gw, &app, &idp, "u-6666", "/mallory").await?;
    ensure!(
        mallory.header("x-forwarded-user") == Some("u-6666"),
        "the display name must not be the key: {mallory:?}"
    );
    ensure!(
        mallory.header("x-forwarded-email").is_none(),
        "an unverified email reached the app: {mallory:?}"
    );
    ensure!(
        mallory.header("x-forwarded-preferred-username") == Some("alice"),
        "{mallory:?}"
    );
    // Per-user state goes by the key too.
    let started: Vec<String> = gw
        .history()
        .into_iter()
        .filter_map(|a| match a.event {
            Event::LoginStarted { user } => Some(user),
            _ => None,
        })
        .collect();
    ensure!(started == ["u-1001", "u-6666"], "{started:?}");
    Ok(())
}

#[tokio::test]
async fn a_sign_in_after_the_provider_rotates_its_keys_succeeds_without_a_restart() -> Result<()> {
    let app = FakeUpstream::start().await?;
    let idp_port = Idp::reserve_port();
    let gw = oidc_gateway(&app, idp_port).await?;
    let callback = format!("{}/_idlegate/oidc/callback", gw.url());
    let mut idp = Idp::start(idp_port, &callback).await?;
    let before = sign_in(&gw, &app, &idp, "alice", "/before").await?;
    ensure!(before.header("x-forwarded-user") == Some("alice"));
    // The provider now signs with a key idlegate has never seen.
    idp.rotate_keys().await?;
    let after = sign_in(&gw, &app, &idp, "bob", "/after").await?;
    ensure!(after.header("x-forwarded-user") == Some("bob"), "{after:?}");
    Ok(())
}

#[tokio::test]
async fn a_flood_of_sign_in_starts_does_not_break_a_sign_in_under_way() -> Result<()> {
    let app = FakeUpstream::start().await?;
    let idp_port = Idp::reserve_port();
    let gw = oidc_gateway(&app, idp_port).await?;
    let callback = format!("{}/_idlegate/oidc/callback", gw.url());
    let _idp = Idp::start(idp_port, &callback).await?;
    // A person starts signing in...
    let mut person = Browserless::new();
    let start = format!("{}/_idlegate/login?return=/report", gw.url());
    let begun = person.send(http::Method::GET, &start, None).await?;
    ensure!(begun.status == StatusCode::SEE_OTHER, "{}", begun.status);
    let at_provider = begun
        .header("location")
        .context("no provider URL")?
        .to_owned();
    // ...while anonymous clients start more sign-ins than the old store held (10,000),
    // some with 60 KB return paths.
    let long = format!("/{}", "a".repeat(60_000));
    let flood = (0..10_500).map(|i| {
        let to = if i % 500 == 0 {
            long.clone()
        } else {
            format!("/x{i}")
        };
        format!("{}/_idlegate/login?return={to}", gw.url())
    });
    let longest_cookie = stream::iter(flood)
        .map(|url| async move {
            let response = testkit::http::get(&url).await?;
            ensure!(
                response.status == StatusCode::SEE_OTHER,
                "{}",
                response.status
            );
            let cookie = response.header("set-cookie").unwrap_or_default();
            Ok(cookie.len())
        })
        .buffer_unordered(32)
        .collect::<Vec<Result<usize>>>()
        .await
        .into_iter()
        .collect::<Result<Vec<usize>>>()?
        .into_iter()
        .max()
        .unwrap_or_default();
    // A 60 KB return path is dropped (back to the app's root), so the cookie stays small.
    ensure!(
        longest_cookie < 1024,
        "an attempt cookie of {longest_cookie} bytes"
    );
    // The person finishes: their attempt is in their own browser, and nothing pushed it out.
    let (url, done) = person.follow(&at_provider, "alice").await?;
    ensure!(done.status == StatusCode::OK, "{} at {url}", done.status);
    let seen = app
        .received_at("/report")
        .pop()
        .context("did not reach /report")?;
    ensure!(seen.header("x-forwarded-user") == Some("alice"));
    // A callback without the browser's attempt cookie is refused (login CSRF).
    let forged = format!("{}/_idlegate/oidc/callback?code=c&state=s", gw.url());
    let refused = testkit::http::get(&forged).await?;
    ensure!(
        refused.status == StatusCode::FORBIDDEN,
        "{}",
        refused.status
    );
    Ok(())
}

#[tokio::test]
async fn header_mode_makes_one_login_per_person_not_per_request_without_a_cookie() -> Result<()> {
    let app = FakeUpstream::start().await?;
    let gw = TestGateway::start(
        &app.url(),
        Config::builder()
            .login(SignIn::Header)
            .trusted_proxies(["127.0.0.1"])
            .cookie_secure(false),
    )
    .await?;
    let call = |user: &'static str| {
        let url = format!("{}/api/data", gw.url());
        async move {
            let request = http::Request::get(url)
                .header("x-forwarded-user", user)
                .body(http_body_util::Full::new(bytes::Bytes::new()))?;
            let response = testkit::http::send(request).await?;
            ensure!(response.status == StatusCode::OK, "{}", response.status);
            Ok(())
        }
    };
    // API clients and probes never send the cookie back.
    stream::iter(0..1000)
        .map(|_| call("carol"))
        .buffer_unordered(16)
        .collect::<Vec<Result<()>>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>>>()?;
    // Events arrive in order: once dave's login is seen, every one of carol's is too.
    call("dave").await?;
    gw.wait_for_event(
        LOAD,
        |e| matches!(e, Event::LoginStarted { user } if user == "dave"),
    )
    .await?;
    let carols = gw
        .history()
        .into_iter()
        .filter(|a| matches!(&a.event, Event::LoginStarted { user } if user == "carol"))
        .count();
    ensure!(
        carols == 1,
        "{carols} logins for 1,000 requests without a cookie"
    );
    Ok(())
}
