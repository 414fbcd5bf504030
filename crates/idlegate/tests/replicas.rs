//! Two replicas of idlegate, each in front of its own real Streamlit, sharing a real
//! `redis-server` (`store.url`): sign-out, the login's idle time, the tab caps and the admin
//! API hold across both, and Redis going away and coming back changes nothing for open tabs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use http::{Method, StatusCode};
use idlegate::config::{Config, ConfigBuilder, OnLimit};
use idlegate::tracker::{EndReason, TabId};
use serde_json::Value;
use testkit::gateway::TestGateway;
use testkit::http::Response;
use testkit::proc::wait_until;
use testkit::redis::RedisServer;
use testkit::signin::{login_cookie, post_sign_in, request};
use testkit::stclient::Upgrade;
use testkit::{StClient, StreamlitApp};
use tokio::time::Instant;

const RUN: Duration = Duration::from_secs(20);
const PASSWORD: &str = "correct horse battery";
const OPS: &str = "ops-token-0123456789abcdef0123456789";

/// What both replicas share: the users, the cookie keys, Redis.
struct Cluster {
    dir: tempfile::TempDir,
    redis: RedisServer,
    prefix: String,
}

impl Cluster {
    async fn start(prefix: &str) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let hash = idlegate::auth::password::hash(PASSWORD).map_err(anyhow::Error::msg)?;
        std::fs::write(
            dir.path().join("users"),
            format!("alice:{hash}\nbob:{hash}\n"),
        )?;
        // One key, 32 random-looking bytes in base64, the same for every replica.
        std::fs::write(
            dir.path().join("cookie-keys"),
            "c2hhcmVkLWJ5LWV2ZXJ5LXJlcGxpY2Etb2YtdGhpcy1hcHAtMDEyMzQ1Njc4OQ==\n",
        )?;
        Ok(Self {
            dir,
            redis: RedisServer::start().await?,
            prefix: prefix.to_owned(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A replica in front of `app`, with `config` and what every replica shares.
    async fn replica(&self, app: &StreamlitApp, config: ConfigBuilder) -> Result<TestGateway> {
        let config = config
            .users_file(&self.path("users"))
            .cookie_keys_file(&self.path("cookie-keys"))
            .store(self.redis.url(), self.prefix.clone())
            .admin(SocketAddr::from(([127, 0, 0, 1], 0)), &format!("ops:{OPS}"));
        let gw = TestGateway::start(&app.base_url(), config).await?;
        wait_until(
            Duration::from_secs(10),
            Duration::from_millis(50),
            async || {
                ensure!(gw.tracker().stores().cluster.available(), "not connected");
                Ok(())
            },
        )
        .await?;
        Ok(gw)
    }
}

async fn sign_in(gw: &TestGateway, user: &str) -> Result<Response> {
    post_sign_in(&gw.url(), user, PASSWORD, "/").await
}

async fn signed_in(gw: &TestGateway, user: &str) -> Result<String> {
    let response = sign_in(gw, user).await?;
    ensure!(
        response.status == StatusCode::SEE_OTHER,
        "{}: {}",
        response.status,
        response.text()
    );
    login_cookie(&response).context("no login cookie set")
}

/// Opens a tab with the login cookie and waits for its first run.
async fn open_tab(gw: &TestGateway, cookie: &str) -> Result<StClient> {
    match StClient::connect_adding(&gw.url(), &[("Cookie", cookie)]).await? {
        Upgrade::Accepted(tab) => {
            let mut tab = *tab;
            tab.send_rerun(false).await?;
            tab.run_until_finished(RUN).await?;
            Ok(tab)
        }
        Upgrade::Refused { status, body } => anyhow::bail!("upgrade refused: {status} {body}"),
    }
}

async fn admin(gw: &TestGateway, method: Method, path: &str) -> Result<Response> {
    let url = format!("{}{path}", gw.admin_url().context("no admin listener")?);
    let bearer = format!("Bearer {OPS}");
    request(method, &url, &[("authorization", &bearer)], "").await
}

async fn tabs_listed(gw: &TestGateway) -> Result<Value> {
    let response = admin(gw, Method::GET, "/api/v1/tabs").await?;
    ensure!(response.status == StatusCode::OK, "{}", response.status);
    Ok(serde_json::from_slice(&response.body)?)
}

async fn apps() -> Result<(StreamlitApp, StreamlitApp)> {
    let (a, b) = tokio::join!(
        StreamlitApp::test_app("counter.py", None),
        StreamlitApp::test_app("counter.py", None)
    );
    Ok((a?, b?))
}

/// Where a new tab of `cookie`'s user is sent when it is refused (its socket is answered with
/// a redirect, as the page is told).
async fn refused(gw: &TestGateway, cookie: &str) -> Result<String> {
    let Upgrade::Accepted(mut tab) =
        StClient::connect_adding(&gw.url(), &[("Cookie", cookie)]).await?
    else {
        anyhow::bail!("expected the socket to be answered with a redirect");
    };
    tab.wait_for_auth_redirect(Duration::from_secs(5)).await
}

fn only_tab(gw: &TestGateway) -> Result<TabId> {
    gw.only_tab()
}

#[tokio::test]
async fn signing_out_on_one_replica_ends_the_users_tabs_on_the_other_within_a_second() -> Result<()>
{
    let cluster = Cluster::start("signout:").await?;
    let (app_a, app_b) = apps().await?;
    let a = cluster.replica(&app_a, Config::builder()).await?;
    let b = cluster.replica(&app_b, Config::builder()).await?;
    let cookie = signed_in(&a, "alice").await?;
    let bobs = signed_in(&b, "bob").await?;
    let _on_a = open_tab(&a, &cookie).await?;
    // The login made on A is known on B a moment later.
    let mut on_b = wait_until(RUN, Duration::from_millis(50), async || {
        open_tab(&b, &cookie).await
    })
    .await?;
    let _bobs_tab = open_tab(&b, &bobs).await?;
    let out = request(
        Method::POST,
        &format!("{}/_idlegate/logout", a.url()),
        &[("cookie", &cookie), ("origin", &a.url())],
        "",
    )
    .await?;
    ensure!(out.status == StatusCode::SEE_OTHER, "{}", out.status);
    let signed_out = Instant::now();
    let redirect = on_b.wait_for_auth_redirect(Duration::from_secs(5)).await?;
    let took = signed_out.elapsed();
    ensure!(redirect.contains("reason=logout"), "{redirect}");
    ensure!(
        took <= Duration::from_secs(1),
        "B's tab ended {took:?} after"
    );
    ensure!(a.tracker().is_empty(), "alice's tab on A must end");
    ensure!(b.tracker().len() == 1, "bob's tab on B must stay");
    // The cookie is worthless on both.
    for gw in [&a, &b] {
        let page = request(
            Method::GET,
            &format!("{}/", gw.url()),
            &[
                ("cookie", &cookie),
                ("sec-fetch-dest", "document"),
                ("accept", "text/html"),
            ],
            "",
        )
        .await?;
        let to = page.header("location").unwrap_or_default().to_owned();
        ensure!(
            to.contains("/_idlegate/login"),
            "{}: {} {to}",
            gw.url(),
            page.status
        );
    }
    Ok(())
}

#[tokio::test]
async fn activity_on_one_replica_keeps_the_login_alive_on_the_other_then_idle_ends_both(
) -> Result<()> {
    let cluster = Cluster::start("sliding:").await?;
    let (app_a, app_b) = apps().await?;
    let config = || Config::builder().login_idle_timeout(Duration::from_secs(4));
    let a = cluster.replica(&app_a, config()).await?;
    let b = cluster.replica(&app_b, config()).await?;
    let cookie = signed_in(&a, "alice").await?;
    let mut quiet = open_tab(&a, &cookie).await?;
    let mut busy = wait_until(RUN, Duration::from_millis(50), async || {
        open_tab(&b, &cookie).await
    })
    .await?;
    let quiet_tab = only_tab(&a)?;
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        busy.send_rerun(false).await?;
        busy.run_until_finished(RUN).await?;
        // A click every 0.8 s or so: the person's pace, the scenario's input.
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    ensure!(
        a.tracker().len() == 1,
        "A's tab ended while the login was in use on B"
    );
    let last = Instant::now();
    let ended = a.wait_for_end(quiet_tab, RUN).await?;
    ensure!(
        ended.end.reason == EndReason::LoginExpired,
        "{:?}",
        ended.end
    );
    // 4 s after the last click, judged up to the store's lag (3 s) later.
    let after = ended.at - last;
    ensure!(
        after >= Duration::from_secs(3) && after <= Duration::from_secs(9),
        "{after:?}"
    );
    for tab in [&mut quiet, &mut busy] {
        let redirect = tab.wait_for_auth_redirect(Duration::from_secs(10)).await?;
        ensure!(redirect.contains("reason=login_expired"), "{redirect}");
    }
    Ok(())
}

#[tokio::test]
async fn tab_caps_count_both_replicas_and_either_admin_api_lists_and_ends_every_tab() -> Result<()>
{
    let cluster = Cluster::start("caps:").await?;
    let (app_a, app_b) = apps().await?;
    let config = || {
        Config::builder()
            .max_per_user(2, OnLimit::Refuse)
            .max_total(3)
            .on_limit(OnLimit::Refuse)
    };
    let a = cluster.replica(&app_a, config()).await?;
    let b = cluster.replica(&app_b, config()).await?;
    let alice = signed_in(&a, "alice").await?;
    let bob = signed_in(&b, "bob").await?;
    let _a1 = open_tab(&a, &alice).await?;
    let mut a2 = wait_until(RUN, Duration::from_millis(50), async || {
        open_tab(&b, &alice).await
    })
    .await?;
    // Alice's third tab, on either replica, is over her limit of 2.
    wait_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        async || {
            ensure!(a.tracker().stores().tabs.count_of("alice") == 2);
            Ok(())
        },
    )
    .await?;
    ensure!(
        refused(&a, &alice).await?.ends_with("/_idlegate/refused"),
        "alice's third tab must be refused"
    );
    // Bob's first tab makes three; his second, on A, is over the server-wide limit.
    let _b1 = open_tab(&b, &bob).await?;
    wait_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        async || {
            ensure!(a.tracker().stores().tabs.total() == 3);
            Ok(())
        },
    )
    .await?;
    ensure!(
        refused(&a, &bob).await?.ends_with("/_idlegate/busy"),
        "a fourth tab must be refused"
    );
    // Either replica's admin API lists all three.
    for (gw, elsewhere) in [(&a, 2), (&b, 1)] {
        let listed = tabs_listed(gw).await?;
        ensure!(listed["total"] == 3, "{listed}");
        let remote = listed["items"]
            .as_array()
            .context("items")?
            .iter()
            .filter(|tab| tab["state"] == "remote")
            .count();
        ensure!(remote == elsewhere, "{listed}");
    }
    // A's admin API ends alice's tab on B.
    let listed = tabs_listed(&a).await?;
    let handle = listed["items"]
        .as_array()
        .context("items")?
        .iter()
        .find(|tab| tab["state"] == "remote" && tab["user"] == "alice")
        .and_then(|tab| tab["handle"].as_str())
        .context("alice's tab on B")?
        .to_owned();
    let ended = admin(&a, Method::DELETE, &format!("/api/v1/tabs/{handle}")).await?;
    ensure!(ended.status == StatusCode::OK, "{}", ended.status);
    let redirect = a2.wait_for_auth_redirect(Duration::from_secs(5)).await?;
    ensure!(redirect.contains("reason=admin"), "{redirect}");
    Ok(())
}

#[tokio::test]
async fn without_redis_open_tabs_go_on_and_end_on_time_and_sign_ins_come_back_with_it() -> Result<()>
{
    let mut cluster = Cluster::start("fault:").await?;
    let (app_a, _) = apps().await?;
    let config = Config::builder().idle_timeout(Some(Duration::from_secs(5)));
    let a = cluster.replica(&app_a, config).await?;
    let cookie = signed_in(&a, "alice").await?;
    let mut tab = open_tab(&a, &cookie).await?;
    let id = only_tab(&a)?;
    cluster.redis.kill().await?;
    wait_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        async || {
            ensure!(!a.tracker().stores().cluster.available(), "still up");
            Ok(())
        },
    )
    .await?;
    // New sign-ins are refused with a page saying so; readiness says why, and stays.
    let refused = sign_in(&a, "bob").await?;
    ensure!(
        refused.status == StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.status
    );
    ensure!(refused
        .text()
        .contains("Signing in is not possible just now"));
    let ready = request(
        Method::GET,
        &format!("{}/_idlegate/readyz", a.url()),
        &[],
        "",
    )
    .await?;
    ensure!(
        ready.status == StatusCode::OK,
        "readiness stays: {}",
        ready.status
    );
    ensure!(
        ready.text().contains("the shared store cannot be reached"),
        "{}",
        ready.text()
    );
    // The open tab still works, and ends on time.
    tab.send_rerun(false).await?;
    tab.run_until_finished(RUN).await?;
    let ended = a.wait_for_end(id, RUN).await?;
    ensure!(ended.end.reason == EndReason::Idle, "{:?}", ended.end);
    ended.on_time()?;
    // Redis is back (empty): sign-ins work again, with no restart.
    cluster.redis.restart().await?;
    wait_until(
        Duration::from_secs(15),
        Duration::from_millis(100),
        async || {
            let response = sign_in(&a, "bob").await?;
            ensure!(
                response.status == StatusCode::SEE_OTHER,
                "{}",
                response.status
            );
            Ok(())
        },
    )
    .await?;
    Ok(())
}

/// The admin listing's only tab: its age and how long until it ends, in seconds.
async fn only_listed(admin: &str) -> Result<(f64, f64)> {
    let bearer = format!("Bearer {OPS}");
    let response = request(
        Method::GET,
        &format!("{admin}/api/v1/tabs"),
        &[("authorization", &bearer)],
        "",
    )
    .await?;
    let listed: Value = serde_json::from_slice(&response.body)?;
    ensure!(listed["total"] == 1, "{listed}");
    let tab = &listed["items"][0];
    Ok((
        tab["age_seconds"].as_f64().context("age")?,
        tab["ends_in_seconds"].as_f64().context("ends_in")?,
    ))
}

#[tokio::test]
async fn a_restarted_replica_takes_its_tab_over_with_its_deadline_and_the_login_survives(
) -> Result<()> {
    use testkit::gateway::GatewayProcess;
    use testkit::ports::free_port;

    let cluster = Cluster::start("restart:").await?;
    let app = StreamlitApp::test_app("counter.py", None).await?;
    let admin_port = free_port();
    let config = cluster.path("idlegate.toml");
    std::fs::write(
        &config,
        format!(
            "[login]\nmode = \"password\"\nusers_file = {:?}\ncookie_keys_file = {:?}\n\
             cookie_secure = false\n[tabs]\nidle_timeout = \"40s\"\n\
             [shutdown]\ngrace = \"0s\"\n[store]\nurl = \"{}\"\nkey_prefix = \"restart:\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntokens = \"ops:{OPS}\"\n",
            cluster.path("users"),
            cluster.path("cookie-keys"),
            cluster.redis.url(),
        ),
    )?;
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_idlegate"));
    let port = free_port();
    let args = [
        "--config",
        config.to_str().context("path")?,
        "--upstream",
        &app.base_url(),
        "--log-format",
        "json",
    ];
    let admin = format!("http://127.0.0.1:{admin_port}");
    let mut first = GatewayProcess::start_on(bin, port, &args, &[]).await?;
    let url = first.url();
    let response = post_sign_in(&url, "alice", PASSWORD, "/").await?;
    let cookie = login_cookie(&response).context("no login cookie")?;
    let token = "ReplicaRestartPageToken01";
    let mut headers = StClient::default_headers(&url, None)?;
    headers[1].1.push_str(&format!(", idlegate.tab.{token}"));
    headers.push(("Cookie".to_owned(), cookie.clone()));
    let mut tab = connect_page(&url, &headers).await?;
    tab.send_rerun(false).await?;
    tab.run_until_finished(RUN).await?;
    let session = tab.session_id().context("no session id")?.to_owned();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (age, ends_in) = only_listed(&admin).await?;
    let before = Instant::now();
    // A rolling update: SIGTERM, and the next process on the same address.
    GatewayProcess::signal(first.pid(), "TERM")?;
    first.wait_exit(Duration::from_secs(20)).await?;
    tab.wait_for_close(Duration::from_secs(10)).await?;
    let second = GatewayProcess::start_on(bin, port, &args, &[]).await?;
    let mut headers = StClient::default_headers(&second.url(), Some(&session))?;
    headers[1].1.push_str(&format!(", idlegate.tab.{token}"));
    headers.push(("Cookie".to_owned(), cookie.clone()));
    let mut again = connect_page(&second.url(), &headers)
        .await
        .context(second.output())?;
    let (age_after, ends_in_after) = only_listed(&admin).await.context(second.output())?;
    let passed = before.elapsed().as_secs_f64();
    ensure!(
        (age_after - (age + passed)).abs() < 1.5,
        "the tab's age went on: {age} then {age_after} after {passed:.1} s"
    );
    ensure!(
        (ends_in_after - (ends_in - passed)).abs() < 1.5,
        "the tab keeps its deadline: {ends_in} then {ends_in_after} after {passed:.1} s"
    );
    ensure!(
        again
            .wait_for_auth_redirect(Duration::from_secs(2))
            .await
            .is_err(),
        "the page must go on, not be sent away"
    );
    // The login survived the restart.
    let page = request(
        Method::GET,
        &format!("{}/", second.url()),
        &[
            ("cookie", &cookie),
            ("sec-fetch-dest", "document"),
            ("accept", "text/html"),
        ],
        "",
    )
    .await?;
    ensure!(page.status == StatusCode::OK, "{}", page.status);
    Ok(())
}

/// Opens a session socket with exactly these headers.
async fn connect_page(url: &str, headers: &[(String, String)]) -> Result<StClient> {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    match StClient::connect_with_headers(url, &headers).await? {
        Upgrade::Accepted(tab) => Ok(*tab),
        Upgrade::Refused { status, body } => anyhow::bail!("refused: {status} {body}"),
    }
}

#[tokio::test]
async fn a_new_tab_on_one_replica_evicts_the_users_tab_on_the_other_within_a_second() -> Result<()>
{
    let cluster = Cluster::start("evict:").await?;
    let (app_a, app_b) = apps().await?;
    let config = || Config::builder().max_per_user(1, OnLimit::EndLeastRecentlyActive);
    let a = cluster.replica(&app_a, config()).await?;
    let b = cluster.replica(&app_b, config()).await?;
    let cookie = signed_in(&a, "alice").await?;
    let mut first = open_tab(&a, &cookie).await?;
    wait_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        async || {
            ensure!(b.tracker().stores().tabs.count_of("alice") == 1);
            Ok(())
        },
    )
    .await?;
    // Alice's second tab, on B: her only other tab is on A, which ends it.
    let _second = wait_until(RUN, Duration::from_millis(50), async || {
        open_tab(&b, &cookie).await
    })
    .await?;
    let opened = Instant::now();
    let redirect = first.wait_for_auth_redirect(Duration::from_secs(5)).await?;
    let took = opened.elapsed();
    ensure!(redirect.contains("reason=evicted_user_cap"), "{redirect}");
    ensure!(
        took <= Duration::from_secs(1),
        "A's tab ended {took:?} after"
    );
    ensure!(b.tracker().len() == 1, "the new tab stays");
    Ok(())
}
