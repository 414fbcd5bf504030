//! The wheel, installed into a brand-new venv (`pip install 'idlegate-….whl[streamlit]'`):
//! its `idlegate` command runs the example app and ends an idle tab. Run by
//! `scripts/test-wheel.sh`, which builds the wheel, makes the venv and names it in
//! `TESTKIT_WHEEL_VENV`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use testkit::gateway::GatewayProcess;
use testkit::venv::repo_path;
use testkit::StClient;

fn venv() -> Result<PathBuf> {
    let venv = std::env::var_os("TESTKIT_WHEEL_VENV")
        .context("TESTKIT_WHEEL_VENV names the venv the wheel is installed in")?;
    Ok(PathBuf::from(venv))
}

#[tokio::test]
#[ignore = "needs the installed wheel: scripts/test-wheel.sh runs it"]
async fn the_installed_command_runs_the_app_and_ends_an_idle_tab() -> Result<()> {
    let venv = venv()?;
    let bin = venv.join("bin");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let app = repo_path("examples/app.py").display().to_string();
    // As a person types it: `streamlit` is found on the venv's PATH.
    let args = ["--idle-timeout", "5s", "--", "streamlit", "run", &app];
    let gateway =
        GatewayProcess::start_with_env(&bin.join("idlegate"), &args, &[("PATH", &path)]).await?;

    let mut tab = StClient::connect(&gateway.url(), None).await?;
    tab.send_rerun(false).await?;
    tab.run_until_finished(Duration::from_secs(60)).await?;
    let redirect = tab.wait_for_auth_redirect(Duration::from_secs(30)).await?;
    assert_eq!(redirect, "/_idlegate/ended?reason=idle");

    // The app's own banner names idlegate's address, never the app's private port.
    let output = gateway.output();
    let public = format!("URL: {}", gateway.url());
    ensure!(output.contains(&public), "{public:?} in:\n{output}");
    ensure!(
        output.contains(&format!("idlegate: open {}/", gateway.url())),
        "idlegate's own line in:\n{output}"
    );
    Ok(())
}

#[test]
#[ignore = "needs the installed wheel: scripts/test-wheel.sh runs it"]
fn the_wheel_installs_the_man_pages_and_completions() -> Result<()> {
    let venv = venv()?;
    for file in [
        "share/man/man1/idlegate.1",
        "share/man/man1/idlegate-hash-password.1",
        "share/bash-completion/completions/idlegate",
        "share/zsh/site-functions/_idlegate",
        "share/fish/vendor_completions.d/idlegate.fish",
    ] {
        let path = venv.join(file);
        let shipped = std::fs::read(&path).with_context(|| path.display().to_string())?;
        let committed = std::fs::read(repo_path("packaging/wheel-data/data").join(file))?;
        ensure!(shipped == committed, "{} differs", path.display());
    }
    let python = venv.join("bin/python");
    let out = std::process::Command::new(&python)
        .args(["-m", "idlegate", "--version"])
        .output()?;
    ensure!(out.status.success(), "{out:?}");
    let version = String::from_utf8(out.stdout)?;
    ensure!(
        version.starts_with(&format!("idlegate {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    ensure!(Path::new(&venv.join("bin/idlegate")).is_file());
    Ok(())
}
