//! idlegate gateways for tests: in-process ([`TestGateway`]) and as the real binary
//! ([`GatewayProcess`], for launcher mode, signals and exit codes).
//!
//! A [`TestGateway`] records every lifecycle event it publishes (tab opened, activity,
//! ended, …) with the instant the event reached the test, so tests wait for what happens
//! instead of sleeping, and check *when* it happened against the tracker's own deadline.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use idlegate::config::ConfigBuilder;
use idlegate::lifecycle::{Event, Feed, Subscriber, TabEnd};
use idlegate::server::Extras;
use idlegate::tracker::{Deadline, EndReason, TabId, Tracker};
use idlegate::Server;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::ports::free_port;

/// How late after its deadline a tab may end, measured at the arrival of its
/// [`Event::TabEnded`] in the test: the reaper's timer, one publish and one hop to the
/// test's task, on a loaded two-core machine.
pub const ON_TIME: Duration = Duration::from_millis(500);

/// How much earlier than the deadline the test may see an end: none for a tab's own limits,
/// but a login's deadline is kept in wall-clock milliseconds and converted to the monotonic
/// clock each time it is read, so two reads of it may differ by a millisecond or so.
const CLOCK_SLACK: Duration = Duration::from_millis(5);

/// How many events the gateway's feed keeps for the test's reader (which drains it at
/// once); a test that loses events fails loudly rather than waiting wrongly.
const FEED_CAPACITY: usize = 1 << 16;

/// A lifecycle event as it reached the test, and when.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The event.
    pub event: Event,
    /// When the test's reader received it (just after the gateway published it).
    pub at: Instant,
}

/// How a tab ended, as [`TestGateway::wait_for_end`] saw it.
#[derive(Debug, Clone)]
pub struct Ended {
    /// What the tracker published.
    pub end: TabEnd,
    /// When the end reached the test.
    pub at: Instant,
    /// The tab's deadline as the tracker last gave it before the end (read when the wait
    /// began and again after every event that arrived meanwhile), if the tab was still open
    /// when the wait began.
    pub deadline: Option<Deadline>,
}

impl Ended {
    /// Fails unless the tab ended for the reason of the deadline the tracker gave, no
    /// earlier than that deadline (give or take a few milliseconds of clock conversion for a
    /// login's) and at most [`ON_TIME`] after it.
    pub fn on_time(&self) -> Result<()> {
        self.on_time_for(self.tracked_deadline()?)
    }

    /// The deadline the tracker last gave the tab before it ended (see [`Ended::deadline`]).
    pub fn tracked_deadline(&self) -> Result<Deadline> {
        self.deadline.with_context(|| {
            format!(
                "tab {} had already ended when the wait began: no deadline to check against",
                self.end.tab
            )
        })
    }

    /// Fails unless the tracker's deadline for the tab was no later than `latest`: the
    /// latest instant the scenario allows (the last thing a person did, plus the limit).
    pub fn by(&self, latest: Instant) -> Result<()> {
        let deadline = self.tracked_deadline()?;
        ensure!(
            deadline.at <= latest,
            "tab {}'s deadline was {:?} later than the scenario allows",
            self.end.tab,
            deadline.at - latest
        );
        Ok(())
    }

    /// Like [`Ended::on_time`], against a `deadline` the test read itself (say, when the
    /// tab was left alone, to check that nothing after that moved it).
    pub fn on_time_for(&self, deadline: Deadline) -> Result<()> {
        ensure!(
            self.end.reason == deadline.reason,
            "tab {} ended as {}, but its deadline was for {}",
            self.end.tab,
            self.end.reason,
            deadline.reason
        );
        ensure!(
            self.at + CLOCK_SLACK >= deadline.at,
            "tab {} ended {:?} before its deadline",
            self.end.tab,
            deadline.at - self.at
        );
        ensure!(
            self.at <= deadline.at + ON_TIME,
            "tab {} ended {:?} after its deadline (allowed: {ON_TIME:?})",
            self.end.tab,
            self.at - deadline.at
        );
        Ok(())
    }
}

/// Everything a gateway published since it started, in order.
#[derive(Default)]
struct EventLog {
    events: Mutex<Vec<Arrival>>,
    /// Events the reader lost (it fell more than the feed's capacity behind).
    lost: Mutex<u64>,
}

impl EventLog {
    fn snapshot_from(&self, from: usize) -> Vec<Arrival> {
        self.events
            .lock()
            .map(|events| events.get(from..).map(<[_]>::to_vec).unwrap_or_default())
            .unwrap_or_default()
    }

    fn len(&self) -> usize {
        self.events.lock().map(|events| events.len()).unwrap_or(0)
    }

    fn lost(&self) -> u64 {
        self.lost.lock().map(|lost| *lost).unwrap_or(0)
    }
}

/// A reader of a [`TestGateway`]'s events, from a position in its log on: see
/// [`TestGateway::events`].
pub struct Events {
    log: Arc<EventLog>,
    grown: watch::Receiver<usize>,
    next: usize,
}

impl Events {
    /// Waits up to `limit` for the next event (after the ones this reader has already
    /// passed) that `matches`, and returns it. Events that do not match are passed over.
    pub async fn next_matching(
        &mut self,
        limit: Duration,
        mut matches: impl FnMut(&Event) -> bool,
    ) -> Result<Arrival> {
        let by = Instant::now() + limit;
        loop {
            if let Some(found) = self.scan(&mut matches)? {
                return Ok(found);
            }
            match tokio::time::timeout_at(by, self.grown.changed()).await {
                Ok(Ok(())) => {}
                // Time ran out, or the gateway is gone and no more events will come.
                Ok(Err(_)) | Err(_) => {
                    // One last look: an event may have arrived just as time ran out.
                    if let Some(found) = self.scan(&mut matches)? {
                        return Ok(found);
                    }
                    bail!("no matching event within {limit:?}");
                }
            }
        }
    }

    /// Fails if an event that `matches` arrives before `until` (or has arrived since this
    /// reader's position); otherwise returns at `until`. For "nothing happens in this
    /// window" checks, where the window itself is part of the scenario.
    pub async fn none_until(
        &mut self,
        until: Instant,
        mut matches: impl FnMut(&Event) -> bool,
    ) -> Result<()> {
        let limit = until.saturating_duration_since(Instant::now());
        match self.next_matching(limit, &mut matches).await {
            Ok(found) => bail!("unexpected event: {:?}", found.event),
            Err(_) if self.log.lost() == 0 => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn scan(&mut self, matches: &mut impl FnMut(&Event) -> bool) -> Result<Option<Arrival>> {
        let lost = self.log.lost();
        ensure!(lost == 0, "the test's event reader lost {lost} events");
        for arrival in self.log.snapshot_from(self.next) {
            self.next += 1;
            if matches(&arrival.event) {
                return Ok(Some(arrival));
            }
        }
        Ok(None)
    }
}

/// A gateway running inside the test process on `127.0.0.1:<ephemeral>`. Stops when dropped.
pub struct TestGateway {
    addr: SocketAddr,
    admin: Option<SocketAddr>,
    tracker: Tracker,
    log: Arc<EventLog>,
    grown: watch::Receiver<usize>,
    reader: JoinHandle<()>,
    shutdown: Option<oneshot::Sender<EndReason>>,
    task: Option<JoinHandle<()>>,
}

impl TestGateway {
    /// Starts a gateway in front of `upstream` (like `http://127.0.0.1:8501`) with `config`
    /// (built with [`idlegate::config::Config::builder`]); the gateway sets `listen` to
    /// `127.0.0.1:0` and `upstream` itself. Its lifecycle events are recorded from the
    /// start: see [`TestGateway::events`].
    pub async fn start(upstream: &str, config: ConfigBuilder) -> Result<TestGateway> {
        let config = config
            .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
            .upstream(upstream)
            .build()
            .context("test gateway config")?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .context("binding the test gateway")?;
        let feed = Arc::new(Feed::new(FEED_CAPACITY));
        let mut receiver = feed.subscribe();
        let server = Server::with_extras(
            listener,
            config,
            Extras {
                app_runtime: None,
                subscribers: vec![feed as Arc<dyn Subscriber>],
            },
        )
        .context("building the test gateway")?;
        let addr = server.local_addr()?;
        let admin = server.admin_addr();
        let tracker = server.tracker();
        let log = Arc::new(EventLog::default());
        let (grew, grown) = watch::channel(0);
        let reader = tokio::spawn({
            let log = log.clone();
            async move {
                loop {
                    match receiver.recv().await {
                        Ok(event) => {
                            let at = Instant::now();
                            if let Ok(mut events) = log.events.lock() {
                                events.push(Arrival { event, at });
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(lost)) => {
                            if let Ok(mut total) = log.lost.lock() {
                                *total += lost;
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                    grew.send_replace(log.len());
                }
            }
        });
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server.run(async move { rx.await.unwrap_or(EndReason::Shutdown) }));
        Ok(TestGateway {
            addr,
            admin,
            tracker,
            log,
            grown,
            reader,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The gateway's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` of the admin listener, when the config set one.
    pub fn admin_url(&self) -> Option<String> {
        self.admin.map(|addr| format!("http://{addr}"))
    }

    /// The admin listener's `/metrics` text, asked for with the bearer `token`.
    pub async fn metrics_text(&self, token: &str) -> Result<String> {
        let admin = self.admin_url().context("no admin listener")?;
        let request = http::Request::get(format!("{admin}/metrics"))
            .header("authorization", format!("Bearer {token}"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))?;
        let response = crate::http::send(request).await?;
        ensure!(response.status == 200, "/metrics: {}", response.status);
        Ok(response.text())
    }

    /// The gateway's tab registry.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// A reader of the events published from now on.
    pub fn events(&self) -> Events {
        Events {
            log: self.log.clone(),
            grown: self.grown.clone(),
            next: self.log.len(),
        }
    }

    /// A reader of every event published since the gateway started.
    pub fn all_events(&self) -> Events {
        Events {
            log: self.log.clone(),
            grown: self.grown.clone(),
            next: 0,
        }
    }

    /// Every event published so far, with when each reached the test.
    pub fn history(&self) -> Vec<Arrival> {
        self.log.snapshot_from(0)
    }

    /// The first event since the gateway started that `matches`, waiting up to `limit` for
    /// it if it has not happened yet.
    pub async fn wait_for_event(
        &self,
        limit: Duration,
        matches: impl FnMut(&Event) -> bool,
    ) -> Result<Arrival> {
        self.all_events().next_matching(limit, matches).await
    }

    /// The id of the `n`th tab opened since the gateway started (`n` from 1), waiting up to
    /// `limit` for it.
    pub async fn wait_for_tab(&self, n: usize, limit: Duration) -> Result<TabId> {
        let mut events = self.all_events();
        let mut id = None;
        for _ in 0..n {
            let opened = events
                .next_matching(limit, |e| matches!(e, Event::TabOpened { .. }))
                .await
                .with_context(|| format!("waiting for tab number {n} to open"))?;
            if let Event::TabOpened { tab, .. } = opened.event {
                id = Some(tab);
            }
        }
        id.context("no tab")
    }

    /// The id of the gateway's only open tab; fails unless exactly one is open.
    pub fn only_tab(&self) -> Result<TabId> {
        let tabs = self.tracker.open_tabs();
        ensure!(tabs.len() == 1, "{} open tabs, expected one", tabs.len());
        Ok(tabs[0])
    }

    /// The tab's current deadline; fails if it has none (or has ended).
    pub fn deadline(&self, tab: TabId) -> Result<Deadline> {
        self.tracker
            .deadline_of(tab)
            .with_context(|| format!("tab {tab} has no deadline (ended, or no limit applies)"))
    }

    /// Waits up to `limit` for tab `tab` to end and returns how and when, with the last
    /// deadline the tracker gave it before (see [`Ended::on_time`]). Call it before the test
    /// waits for anything else the end causes, so the deadline is read while the tab is open.
    pub async fn wait_for_end(&self, tab: TabId, limit: Duration) -> Result<Ended> {
        let mut events = self.all_events();
        let mut deadline = self.tracker.deadline_of(tab);
        let by = Instant::now() + limit;
        loop {
            let arrival = events
                .next_matching(by.saturating_duration_since(Instant::now()), |_| true)
                .await
                .with_context(|| format!("tab {tab} did not end within {limit:?}"))?;
            if let Event::TabEnded(end) = &arrival.event {
                if end.tab == tab {
                    return Ok(Ended {
                        end: (**end).clone(),
                        at: arrival.at,
                        deadline,
                    });
                }
            }
            // Whatever just happened may have moved the deadline (activity, a run, a login
            // touched in another tab): read it again while the tab is open.
            if let Some(now) = self.tracker.deadline_of(tab) {
                deadline = Some(now);
            }
        }
    }

    /// Shuts down, ending every tab with `reason`, and waits until the server has stopped.
    pub async fn stop(mut self, reason: EndReason) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(reason);
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(EndReason::Shutdown);
        }
        self.reader.abort();
    }
}

/// The `idlegate` binary running as a child process, killed when dropped.
pub struct GatewayProcess {
    child: Child,
    port: u16,
    output: Arc<Mutex<String>>,
    /// The tasks reading its standard output and error, done at end of file.
    readers: Vec<JoinHandle<()>>,
}

impl GatewayProcess {
    /// Runs `binary --listen 127.0.0.1:<free> ARGS…` and waits until `/_idlegate/readyz`
    /// answers 200 (so in launcher mode the app is up too).
    pub async fn start(binary: &Path, args: &[&str]) -> Result<GatewayProcess> {
        Self::start_with_env(binary, args, &[]).await
    }

    /// [`GatewayProcess::start`] with `env` added to its environment.
    pub async fn start_with_env(
        binary: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<GatewayProcess> {
        Self::start_on(binary, free_port(), args, env).await
    }

    /// [`GatewayProcess::start_with_env`] listening on `127.0.0.1:<port>`: a port chosen by
    /// the test, say the one of an idlegate it stopped, to start it again where its pages
    /// reconnect.
    pub async fn start_on(
        binary: &Path,
        port: u16,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<GatewayProcess> {
        let mut process = Self::spawn_on(binary, port, args, env)?;
        let url = format!("{}/_idlegate/readyz", process.url());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        // Ready, or exited (a bad flag or config): no need to wait out the deadline then.
        let why = loop {
            let answer = match crate::http::get(&url).await {
                Ok(response) if response.status == 200 => return Ok(process),
                Ok(response) => format!("readyz answered {}", response.status),
                Err(e) => format!("{e:#}"),
            };
            if let Some(status) = process.child.try_wait().ok().flatten() {
                break format!("it exited ({status}) before it was ready");
            }
            if tokio::time::Instant::now() >= deadline {
                break format!("not ready within 90 s: {answer}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        for reader in process.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
        }
        bail!(
            "idlegate did not become ready: {why}; output:\n{}",
            process.output()
        )
    }

    /// Runs the binary without waiting for readiness (for tests of failing starts).
    pub fn spawn(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<GatewayProcess> {
        Self::spawn_on(binary, free_port(), args, env)
    }

    /// [`GatewayProcess::spawn`] listening on `127.0.0.1:<port>`.
    pub fn spawn_on(
        binary: &Path,
        port: u16,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<GatewayProcess> {
        let mut command = Command::new(binary);
        // Its own process group: the app it launches inherits it, so dropping the guard can
        // stop both even though idlegate, killed outright, cannot stop its child itself.
        command
            .process_group(0)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(collect(out, output.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(collect(err, output.clone()));
        }
        Ok(GatewayProcess {
            child,
            port,
            output,
            readers,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (on `127.0.0.1`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Process id of idlegate.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Everything it printed so far (stdout and stderr, interleaved by line).
    pub fn output(&self) -> String {
        self.output.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Sends a signal by name (`"TERM"`, `"INT"`, `"KILL"`) to a process.
    pub fn signal(pid: u32, name: &str) -> Result<()> {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{name} {pid} failed");
        }
        Ok(())
    }

    /// Kills idlegate's process group at once (idlegate and, in launcher mode, its app: a
    /// crash, with no goodbye to the pages) and waits for idlegate to be gone, so its port
    /// is free again. Returns what it printed.
    pub async fn kill(mut self, limit: Duration) -> Result<String> {
        if let Some(pid) = self.child.id().and_then(|id| i32::try_from(id).ok()) {
            nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .context("killing idlegate's process group")?;
        }
        self.wait_exit(limit).await?;
        Ok(self.output())
    }

    /// Waits for idlegate to exit, and for everything it printed to be read (so
    /// [`GatewayProcess::output`] is complete afterwards).
    pub async fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        let status = tokio::time::timeout_at(deadline, self.child.wait())
            .await
            .with_context(|| {
                format!(
                    "idlegate did not exit within {limit:?}; output:\n{}",
                    self.output()
                )
            })?
            .context("waiting for idlegate")?;
        // A child of idlegate (the app) may still hold the pipes open; its output is not
        // waited for past the deadline.
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout_at(deadline, reader).await;
        }
        Ok(status)
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn collect<R: AsyncRead + Unpin + Send + 'static>(
    reader: R,
    sink: Arc<Mutex<String>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let echo = std::env::var_os(crate::streamlit::ECHO_ENV).is_some();
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if echo {
                eprintln!("[idlegate] {line}");
            }
            if let Ok(mut s) = sink.lock() {
                s.push_str(&line);
                s.push('\n');
            }
        }
    })
}
