//! The `idlegate` binary: flags and config in, then the gateway (and the app, in launcher
//! mode). Exit codes: 0 after a clean stop, 2 for bad flags or config, 1 when idlegate
//! cannot start, and the app's own code when the app it started dies.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use idlegate::cli::{Action, Cli};
use idlegate::config::{Config, LogFormat, RawConfig, Sources};
use idlegate::launcher::{self, LaunchError, LaunchedApp};
use idlegate::tracker::EndReason;
use idlegate::Server;
use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.action {
        Some(Action::HashPassword) => return hash_password(),
        Some(Action::Completions { shell }) => return print_completions(shell),
        Some(Action::CheckConfig { file }) => return check_config(file),
        None => {}
    }
    let sources = Sources {
        file: cli.config.clone(),
        toml: None,
        env: std::env::vars().collect(),
        flags: cli.flag_values(),
    };
    // The merged sources are kept with the config: a reload (SIGHUP) loads the same sources
    // again and names the keys that changed since.
    let loaded = Config::merge(&sources)
        .and_then(|raw| Config::from_raw(raw.clone()).map(|config| (raw, config)));
    let (started, mut config) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return usage_error(&e.to_string()),
    };
    match (config.upstream.is_some(), cli.command.is_empty()) {
        (true, false) => {
            return usage_error("give either --upstream or a command after --, not both")
        }
        (false, true) => {
            return usage_error("give --upstream URL, or the command that starts the app after --, like: idlegate -- streamlit run app.py")
        }
        _ => {}
    }
    if config.app.detect && !cli.command.is_empty() {
        match idlegate::apps::detect(&cli.command) {
            Ok(kind) => config.app.kind = kind,
            Err(e) => return usage_error(&e),
        }
    }
    // Checked on this machine before the app starts: a setting that cannot work here is a
    // configuration error.
    if let Err(e) = idlegate::capacity::check(&config.capacity, !cli.command.is_empty()) {
        return usage_error(&e.to_string());
    }
    let rust_log = std::env::var("RUST_LOG").ok();
    if let Err(e) = idlegate::logging::init(&config.log, rust_log.as_deref()) {
        return usage_error(&idlegate::error::chain(&e));
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("idlegate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let reload = Reload { sources, started };
    match runtime.block_on(run(cli.command, config, reload)) {
        Ok(code) => code,
        Err(e) => {
            // One line on standard error, as for configuration errors (the log goes there
            // too in text format, so logging it as well would print it twice).
            eprintln!("idlegate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `idlegate completions SHELL`: the script on standard output. A reader that stops early
/// (`| head`) is not an error.
fn print_completions(shell: clap_complete::Shell) -> ExitCode {
    use std::io::Write;
    let script = idlegate::cli::completions(shell);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&script).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idlegate: cannot write the completions: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `idlegate check-config FILE`: the effective config on standard output, or the error.
fn check_config(file: std::path::PathBuf) -> ExitCode {
    if !file.is_file() {
        return usage_error(&format!("{} is not a file", file.display()));
    }
    let sources = Sources {
        file: Some(file),
        toml: None,
        env: std::env::vars().collect(),
        flags: Vec::new(),
    };
    match Config::effective_toml(&sources) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(&e.to_string()),
    }
}

/// `idlegate hash-password`: one line from standard input in, its hash out.
fn hash_password() -> ExitCode {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password (shown as you type; or pipe it in): ");
    }
    let mut line = String::new();
    if let Err(e) = stdin.lock().read_line(&mut line) {
        return usage_error(&format!("cannot read the password: {e}"));
    }
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return usage_error("the password is empty");
    }
    match idlegate::auth::password::hash(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("idlegate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Checks, for up to 10 s while the app is not answering yet, that the app serves under
/// `app.base_path`: an app that serves elsewhere would get no tracking at all. An app that
/// still does not answer is left to readiness (`/_idlegate/readyz`).
async fn check_upstream_base_path(config: &Config) -> Result<(), String> {
    use idlegate::apps::{self, BasePathCheck};
    let Some(upstream) = &config.upstream else {
        return Ok(());
    };
    let kind = apps::kind(config.app.kind);
    let base = &config.app.base_path;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match kind.check_base_path(upstream, base).await {
            BasePathCheck::Serves => return Ok(()),
            BasePathCheck::Elsewhere(why) if config.app.detect => {
                return Err(other_framework(upstream, why).await)
            }
            BasePathCheck::Elsewhere(why) => return Err(why),
            BasePathCheck::Unreachable(why) => {
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!(%upstream, error = %why, "the app does not answer yet; serving anyway (readiness fails until it does)");
                    return Ok(());
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
    }
}

/// The message for an app that does not answer as Streamlit does with `app.kind = "auto"`
/// (Streamlit, with `--upstream`): the kind it answers as, when one can tell
/// ([`idlegate::apps::identify`]), else `why` and the reminder.
async fn other_framework(upstream: &idlegate::config::Upstream, why: String) -> String {
    if let Some(kind) = idlegate::apps::identify(upstream).await {
        let name = kind.name();
        return format!(
            "the app at {upstream} answers as a {name} app does, but app.kind is \"auto\", \
             which means Streamlit with --upstream: set --app-kind {name}"
        );
    }
    format!(
        "{why} (with --upstream, app.kind = \"auto\" means Streamlit: for Shiny, Panel, \
         Bokeh or Gradio set --app-kind)"
    )
}

/// What a reload (SIGHUP) loads again: the sources the config came from, and what they
/// merged to at start.
struct Reload {
    sources: Sources,
    started: RawConfig,
}

/// The gateway on `listener`, announced by [`banner`]. SIGHUP reloads its configuration (and
/// reopens the audit log, after logrotate moved it).
fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    runtime: Option<std::sync::Arc<dyn idlegate::apps::Runtime>>,
    reload: Reload,
) -> anyhow::Result<Server> {
    let banner = banner(&config);
    let server = Server::with_app_runtime(listener, config, runtime)?;
    let reloader = server.reloader(reload.sources, reload.started);
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration and reopening the audit log");
            let reloader = reloader.clone();
            // It logs and counts its outcome itself; a refused file changes nothing.
            let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
        }
    });
    if let Some(banner) = banner {
        eprintln!("{banner}");
    }
    Ok(server)
}

/// The line people read first in text logs, once idlegate serves: the one address to open
/// (the app's own address bypasses idlegate). `None` with JSON logs, where the "idlegate is
/// serving" event says it.
fn banner(config: &Config) -> Option<String> {
    if !matches!(config.log.format, LogFormat::Text) {
        return None;
    }
    let url = format!(
        "http://{}{}/",
        launcher::output::public_host_port(config.listen),
        config.app.base_path.trim_end_matches('/')
    );
    let idle = match config.tabs.idle_timeout {
        Some(limit) => format!(
            "tabs end after {} without a person's activity",
            idlegate::config::human_duration(limit)
        ),
        None => "tabs.idle_timeout is off".to_owned(),
    };
    Some(format!("idlegate: open {url} ({idle}; Ctrl-C to stop)"))
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("idlegate: {message}");
    ExitCode::from(2)
}

/// SIGTERM and SIGINT, counted: the first starts a graceful shutdown, the second hurries it.
struct StopSignals {
    count: tokio::sync::watch::Receiver<(u32, Option<Signal>)>,
}

impl StopSignals {
    fn listen() -> anyhow::Result<Self> {
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let (tx, count) = tokio::sync::watch::channel((0, None));
        tokio::spawn(async move {
            loop {
                let which = tokio::select! {
                    _ = terminate.recv() => Signal::SIGTERM,
                    _ = interrupt.recv() => Signal::SIGINT,
                };
                tx.send_modify(|(n, first)| {
                    *n += 1;
                    first.get_or_insert(which);
                });
            }
        });
        Ok(Self { count })
    }

    /// When a graceful shutdown must end at once: at a second signal, or right away when the
    /// first was SIGINT (Ctrl-C in a terminal also reaches the app, so there is nothing to
    /// wait for).
    async fn hurry(&self) {
        if self.nth(1).await != Signal::SIGINT {
            self.nth(2).await;
        }
    }

    /// The `n`th signal (1 or 2); resolves to the first one's kind.
    async fn nth(&self, n: u32) -> Signal {
        let mut count = self.count.clone();
        let first = count
            .wait_for(|(seen, _)| *seen >= n)
            .await
            .map(|seen| seen.1.unwrap_or(Signal::SIGTERM));
        match first {
            Ok(which) => which,
            // The listener task never stops; should it, nothing will come.
            Err(_) => std::future::pending().await,
        }
    }
}

async fn run(command: Vec<String>, mut config: Config, reload: Reload) -> anyhow::Result<ExitCode> {
    let signals = StopSignals::listen()?;
    // Bind first: a busy port should fail before the app is started.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;

    if command.is_empty() {
        if let Err(message) = check_upstream_base_path(&config).await {
            return Ok(usage_error(&message));
        }
        let server = serve(listener, config, None, reload)?;
        server
            .run_graceful(
                async {
                    signals.nth(1).await;
                    EndReason::Shutdown
                },
                signals.hurry(),
            )
            .await;
        return Ok(ExitCode::SUCCESS);
    }

    let shutdown_timeout = config.launcher.shutdown_timeout;
    let mut app: LaunchedApp = tokio::select! {
        app = launcher::launch(&command, &config) => match app {
            Ok(app) => app,
            Err(LaunchError::Command(message)) => return Ok(usage_error(&message)),
            Err(e) => return Err(e.into()),
        },
        _ = signals.nth(1) => return Ok(ExitCode::SUCCESS),
    };
    config.upstream = Some(app.upstream.clone());
    config.app.base_path = app.base_path.clone();
    config.app.launched = true;
    let server = serve(listener, config, app.runtime(), reload)?;

    enum Stop {
        Signal(Signal),
        AppExited(std::io::Result<std::process::ExitStatus>),
    }
    let mut stop = None;
    server
        .run_graceful(
            async {
                let (why, reason) = tokio::select! {
                    which = signals.nth(1) => (Stop::Signal(which), EndReason::Shutdown),
                    status = app.exited() => (Stop::AppExited(status), EndReason::UpstreamGone),
                };
                stop = Some(why);
                reason
            },
            signals.hurry(),
        )
        .await;

    match stop {
        Some(Stop::Signal(signal)) => {
            tracing::info!(%signal, "stopping the app");
            let status = app.stop(signal, shutdown_timeout).await?;
            // An app that exits because of the signal it was sent stopped cleanly.
            Ok(match status.code() {
                Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
                None => ExitCode::SUCCESS,
            })
        }
        Some(Stop::AppExited(status)) => {
            let status = status.context("cannot wait for the app")?;
            tracing::error!(%status, "the app exited; stopping");
            let code = launcher::exit_code(status);
            Ok(ExitCode::from(if code == 0 { 1 } else { code }))
        }
        None => Ok(ExitCode::FAILURE),
    }
}
