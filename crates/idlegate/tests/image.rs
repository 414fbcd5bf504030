//! The container images and the Kubernetes manifests.
//!
//! The ignored tests talk to containers that `scripts/test-image.sh` builds and starts: the
//! example app image (launcher mode) at `TEST_IMAGE_URL`, and the sidecar image in front of
//! an app on the host at `TEST_SIDECAR_URL`. (Not `IDLEGATE_*` names: idlegate reads every
//! such variable as a setting.) The script runs them with
//! `cargo nextest run -p idlegate --test image --run-ignored only`.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use idlegate::config::{Config, Sources};
use testkit::venv::repo_path;
use testkit::StClient;

fn url_from(var: &str) -> Result<String> {
    let url = std::env::var(var).with_context(|| {
        format!("{var} is not set; scripts/test-image.sh starts the container and sets it")
    })?;
    Ok(url.trim_end_matches('/').to_owned())
}

/// What a person gets through idlegate in a container: the app's page with the page script,
/// readiness, and a tab that nobody uses ending for idleness (the containers run with
/// `IDLEGATE_TABS__IDLE_TIMEOUT=5s`).
async fn serves_the_app_and_ends_an_idle_tab(url: &str) -> Result<()> {
    let ready = testkit::http::get(&format!("{url}/_idlegate/readyz")).await?;
    ensure!(
        ready.status == 200,
        "readyz: {} {}",
        ready.status,
        ready.text()
    );

    let page = testkit::http::send(
        http::Request::get(format!("{url}/"))
            .header("accept", "text/html")
            .body(Full::new(Bytes::new()))?,
    )
    .await?;
    ensure!(page.status == 200, "the app's page: {}", page.status);
    ensure!(
        page.text().contains("/_idlegate/client.js"),
        "the page has no page script: {}",
        page.text()
    );

    let mut tab = StClient::connect(url, None).await?;
    tab.send_rerun(false).await?;
    tab.run_until_finished(Duration::from_secs(30)).await?;
    let ended = tab.wait_for_auth_redirect(Duration::from_secs(30)).await?;
    assert_eq!(ended, "/_idlegate/ended?reason=idle");

    let page = testkit::http::get(&format!("{url}{ended}")).await?;
    ensure!(page.status == 200, "the ended page: {}", page.status);
    Ok(())
}

#[tokio::test]
#[ignore = "needs the containers that scripts/test-image.sh starts"]
async fn launcher_image_serves_the_app_and_ends_an_idle_tab() -> Result<()> {
    let url = url_from("TEST_IMAGE_URL")?;
    serves_the_app_and_ends_an_idle_tab(&url).await
}

#[tokio::test]
#[ignore = "needs the containers that scripts/test-image.sh starts"]
async fn sidecar_image_serves_the_app_and_ends_an_idle_tab() -> Result<()> {
    let url = url_from("TEST_SIDECAR_URL")?;
    serves_the_app_and_ends_an_idle_tab(&url).await
}

/// The `idlegate.toml` block of the ConfigMap, without its indentation.
fn configmap_toml() -> Result<String> {
    let path = repo_path("deploy/kubernetes/configmap.yaml");
    let yaml = std::fs::read_to_string(&path)?;
    let mut lines = yaml.lines().skip_while(|l| l.trim() != "idlegate.toml: |");
    ensure!(
        lines.next().is_some(),
        "no idlegate.toml in {}",
        path.display()
    );
    let block: Vec<&str> = lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .collect();
    ensure!(
        !block.is_empty(),
        "an empty idlegate.toml in {}",
        path.display()
    );
    Ok(block
        .iter()
        .map(|l| l.get(4..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n"))
}

#[test]
fn the_kubernetes_config_map_holds_a_valid_config() -> Result<()> {
    let toml = configmap_toml()?;
    let image_env = ("IDLEGATE_LISTEN".to_owned(), "0.0.0.0:8080".to_owned());
    // Launcher mode: the image's environment and the file.
    let launcher = Config::load(&Sources {
        toml: Some(toml.clone()),
        env: vec![image_env.clone()],
        ..Sources::default()
    })
    .map_err(|e| anyhow::anyhow!("configmap.yaml: {e}"))?;
    assert!(launcher.upstream.is_none());
    // The sidecar: the same, and the app's address from the Deployment.
    let sidecar = Config::load(&Sources {
        toml: Some(toml),
        env: vec![
            image_env,
            (
                "IDLEGATE_UPSTREAM".to_owned(),
                "http://127.0.0.1:8501".to_owned(),
            ),
        ],
        ..Sources::default()
    })
    .map_err(|e| anyhow::anyhow!("configmap.yaml with the sidecar's upstream: {e}"))?;
    assert!(sidecar.upstream.is_some());
    Ok(())
}

#[test]
fn the_replicas_layout_holds_a_valid_config_with_its_secrets() -> Result<()> {
    let toml = std::fs::read_to_string(repo_path("deploy/kubernetes/replicas/idlegate.toml"))?;
    // The Secrets' files, where the Deployment mounts them.
    let dir = tempfile::tempdir()?;
    let keys = dir.path().join("cookie-keys");
    std::fs::write(
        &keys,
        "c2hhcmVkLWJ5LWV2ZXJ5LXJlcGxpY2Etb2YtdGhpcy1hcHAtMDEyMzQ1Njc4OQ==\n",
    )?;
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "prometheus:0123456789abcdef0123456789abcdef\n")?;
    let toml = toml
        .replace(
            "/var/run/secrets/idlegate/cookie-keys",
            &keys.display().to_string(),
        )
        .replace(
            "/var/run/secrets/idlegate-admin/tokens",
            &tokens.display().to_string(),
        );
    let env = |url: &str| {
        vec![
            ("IDLEGATE_LISTEN".to_owned(), "0.0.0.0:8080".to_owned()),
            ("IDLEGATE_STORE__URL".to_owned(), url.to_owned()),
        ]
    };
    let config = Config::load(&Sources {
        toml: Some(toml.clone()),
        env: env("redis://streamlit-app:secret@redis.example.internal:6379/0"),
        ..Sources::default()
    })
    .map_err(|e| anyhow::anyhow!("replicas/idlegate.toml: {e}"))?;
    ensure!(
        config.store.shared(),
        "the Secret's URL makes the store shared"
    );
    ensure!(config.store.key_prefix == "streamlit-app:");
    ensure!(config.admin.is_some(), "the admin listener is on");
    Ok(())
}
