//! `wsload`: a WebSocket load generator for Streamlit-style app connections.
//!
//! * `wsload rtt` measures round-trip latency and throughput: each connection sends
//!   valid `BackMsg.rerun_script` messages (marked `is_auto_rerun`, so a gateway does not
//!   count them as a person's activity; with `--person` unmarked, so it does) and waits for
//!   each to come back from an echoing server (`fakeapp --echo`), directly or through a
//!   proxy.
//! * `wsload hold` opens many connections like browser tabs (Streamlit's subprotocols and
//!   an `Origin`), sends the page-load rerun on each, then stays idle, answering pings
//!   (or, with `--activity-every`, sends a person's rerun now and then), and records when
//!   and how each connection is ended (a `ForwardMsg.auth_redirect`, a close, an error)
//!   against an expected session lifetime.
//!
//! * `wsload churn` opens and ends tabs in churn for a soak (see `benchkit::churn`): up to
//!   `--connections` at once, `--total` in all over `--duration`, some closing themselves,
//!   the rest ended by the server's idle timeout.
//!
//! `rtt` and `hold` also time each WebSocket handshake (from the TCP connect until the
//! upgrade's `101` has been read; waiting for `--connect-concurrency` not included) and
//! report it as `connect_us`.
//!
//! Summaries are human-readable by default, or one JSON object with `--json`.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use benchkit::proto;
use benchkit::stats::{summarize, Summary};
use bytes::Bytes;
use clap::{Args as ClapArgs, Parser, Subcommand};
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Serialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use benchkit::Ws;

/// WebSocket load generator for Streamlit-style app connections.
#[derive(Debug, Parser)]
#[command(name = "wsload", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Round-trip latency and throughput against an echoing server (`fakeapp --echo`).
    Rtt(RttArgs),
    /// Hold many idle browser-like connections and record when each is ended.
    Hold(HoldArgs),
    /// Open and end tabs in churn (a soak): up to --connections at once, --total in all.
    Churn(ChurnArgs),
}

/// Options shared by every subcommand.
#[derive(Debug, ClapArgs)]
struct Common {
    /// WebSocket URL, e.g. ws://127.0.0.1:8501/_stcore/stream.
    #[arg(long)]
    url: String,

    /// Number of concurrent connections.
    #[arg(long, default_value_t = 1)]
    connections: usize,

    /// At most this many WebSocket handshakes in flight at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,

    /// Give up on a connection whose handshake takes longer than SECS.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    connect_timeout: f64,

    /// Print one JSON object instead of a human-readable summary.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, ClapArgs)]
struct RttArgs {
    #[command(flatten)]
    common: Common,

    /// Messages each connection sends (one at a time, each waiting for its echo).
    #[arg(long, default_value_t = 100)]
    messages: usize,

    /// Size of each message in bytes (a valid rerun_script padded to this size; the
    /// minimum is 4).
    #[arg(long, value_name = "BYTES", default_value_t = 256)]
    size: usize,

    /// Send at most this many messages per second on each connection (default: as fast
    /// as the echoes come back).
    #[arg(long, value_name = "PER_SEC_PER_CONN")]
    rate: Option<f64>,

    /// Count a message as an error if its echo takes longer than SECS.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    timeout: f64,

    /// Send reruns a person would send (`is_auto_rerun` unset), which a gateway counts as
    /// activity; by default they are marked automatic (a fragment timer).
    #[arg(long)]
    person: bool,
}

#[derive(Debug, ClapArgs)]
struct HoldArgs {
    #[command(flatten)]
    common: Common,

    /// How long to hold the connections, in seconds, counted from when every connection
    /// has been opened (or has failed to open).
    #[arg(long, value_name = "SECS")]
    duration: f64,

    /// The session lifetime the server is expected to enforce: report each redirect's
    /// lateness relative to this many seconds after the page load's script run finished (its
    /// first `script_finished` message; the first message sent, if none arrives). Idle time
    /// starts there: a tab is busy while its run goes on.
    #[arg(long, value_name = "SECS")]
    expect_end_after: Option<f64>,

    /// Open connections at this many per second (default: as fast as
    /// --connect-concurrency allows).
    #[arg(long, value_name = "PER_SEC")]
    ramp: Option<f64>,

    /// With --expect-end-after: include every connection's lateness in the JSON report, in
    /// milliseconds (for histograms).
    #[arg(long)]
    samples: bool,

    /// Instead of staying idle, send a person's rerun (`is_auto_rerun` unset) on every
    /// connection every SECS seconds after its page load, until the hold ends.
    #[arg(long, value_name = "SECS")]
    activity_every: Option<f64>,
}

#[derive(Debug, ClapArgs)]
struct ChurnArgs {
    /// WebSocket URL, e.g. ws://127.0.0.1:8501/_stcore/stream.
    #[arg(long)]
    url: String,

    /// Most tabs open at once.
    #[arg(long, default_value_t = 1000)]
    connections: usize,

    /// Tabs to open in all (paced evenly over --duration).
    #[arg(long, default_value_t = 10_000)]
    total: usize,

    /// Longest the run may take, in seconds; tabs still open then are closed.
    #[arg(long, value_name = "SECS")]
    duration: f64,

    /// Mean seconds a tab stays active (uniform from 0 to twice this), sending a person's
    /// rerun every --activity-every seconds.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    active_mean: f64,

    /// Seconds between a person's reruns while a tab is active.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    activity_every: f64,

    /// The server's idle timeout in seconds: a closing tab closes within this long after
    /// its active period.
    #[arg(long, value_name = "SECS")]
    idle_timeout: f64,

    /// Share of tabs (0 to 1) that close themselves instead of waiting to be ended.
    #[arg(long, default_value_t = 0.3)]
    close_share: f64,

    /// Give up on a connection whose handshake takes longer than SECS.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    connect_timeout: f64,

    /// Print one JSON object instead of a human-readable summary.
    #[arg(long)]
    json: bool,
}

async fn churn(args: ChurnArgs) -> Result<()> {
    if args.connections == 0 || args.total == 0 {
        bail!("--connections and --total must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.close_share) {
        bail!("--close-share must be between 0 and 1");
    }
    let plan = benchkit::churn::Plan {
        url: args.url.clone(),
        tabs_at_once: args.connections,
        total: args.total,
        duration: secs(args.duration, "--duration")?,
        active_mean: secs(args.active_mean, "--active-mean")?,
        activity_every: secs(args.activity_every, "--activity-every")?
            .max(Duration::from_millis(100)),
        idle_timeout: secs(args.idle_timeout, "--idle-timeout")?,
        close_share: args.close_share,
        connect_timeout: secs(args.connect_timeout, "--connect-timeout")?,
    };
    let report = benchkit::churn::run(plan, |t, open, opened| {
        eprintln!("wsload churn: t={t:.0}s open={open} opened={opened}");
    })
    .await;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let r = &report;
        println!("wsload churn {}", r.url);
        println!(
            "  tabs    {} opened, {} failed of {} requested; peak {} at once",
            r.opened, r.failed, r.total_requested, r.peak_open
        );
        println!(
            "  time    {:.1} s ({:.1} s opening); {} activity messages",
            r.elapsed_s, r.open_phase_s, r.activity_messages
        );
        for (reason, n) in &r.ended {
            println!("  ended   {n} {reason}");
        }
        for (error, n) in &r.top_errors {
            println!("  error   {n} x {error}");
        }
    }
    Ok(())
}

fn secs(value: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("invalid {what}: {value}"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let nofile = benchkit::raise_nofile_limit();
    match cli.command {
        Command::Rtt(args) => {
            check_nofile(&nofile, args.common.connections);
            rtt(args).await
        }
        Command::Hold(args) => {
            check_nofile(&nofile, args.common.connections);
            hold(args).await
        }
        Command::Churn(args) => {
            check_nofile(&nofile, args.connections);
            churn(args).await
        }
    }
}

fn check_nofile(limit: &Result<u64, nix::Error>, connections: usize) {
    match limit {
        Ok(limit) if (*limit as usize) < connections + 64 => eprintln!(
            "wsload: warning: the open-file limit ({limit}) is below the {connections} \
             connections requested"
        ),
        Ok(_) => {}
        Err(err) => eprintln!("wsload: warning: could not raise the open-file limit: {err}"),
    }
}

/// Short, groupable description of an error (its innermost cause).
fn error_kind(err: &anyhow::Error) -> String {
    err.root_cause().to_string()
}

/// Counts error descriptions, for the summary's top errors.
#[derive(Debug, Default)]
struct ErrorTally(BTreeMap<String, u64>);

impl ErrorTally {
    fn add(&mut self, kind: String) {
        *self.0.entry(kind).or_default() += 1;
    }

    /// Most frequent first, at most five.
    fn top(&self) -> Vec<ErrorCount> {
        let mut all: Vec<ErrorCount> = self
            .0
            .iter()
            .map(|(error, count)| ErrorCount {
                error: error.clone(),
                count: *count,
            })
            .collect();
        all.sort_by_key(|e| std::cmp::Reverse(e.count));
        all.truncate(5);
        all
    }
}

#[derive(Debug, Serialize)]
struct ErrorCount {
    error: String,
    count: u64,
}

// ---------------------------------------------------------------------------- rtt

#[derive(Debug, Serialize)]
struct RttReport {
    mode: &'static str,
    url: String,
    connections: usize,
    connected: usize,
    messages_per_connection: usize,
    size: usize,
    /// Round trips completed (RTT samples).
    count: usize,
    /// Failed connections plus messages not echoed (send failure, close, timeout,
    /// mismatched echo).
    errors: u64,
    elapsed_s: f64,
    msgs_per_s: f64,
    /// Payload megabytes (10^6) per second, each direction.
    mb_per_s: f64,
    rtt_us: Summary,
    top_errors: Vec<ErrorCount>,
    /// Whether the reruns were a person's (`--person`: `is_auto_rerun` unset).
    person: bool,
    /// Each opened connection's WebSocket handshake, in microseconds.
    connect_us: Summary,
}

struct ConnOutcome {
    samples: Vec<f64>,
    errors: u64,
    error_kinds: Vec<String>,
}

async fn rtt(args: RttArgs) -> Result<()> {
    let common = &args.common;
    if common.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let connect_timeout = secs(common.connect_timeout, "--connect-timeout")?;
    let timeout = secs(args.timeout, "--timeout")?;
    let period = match args.rate {
        Some(rate) if rate > 0.0 => Some(secs(1.0 / rate, "--rate")?),
        Some(rate) => bail!("--rate must be positive, got {rate}"),
        None => None,
    };
    let payload = Bytes::from(proto::rerun_script(args.size, !args.person));

    // Open every connection first, so the measurement covers messaging only.
    let gate = Arc::new(Semaphore::new(common.connect_concurrency.max(1)));
    let mut opening = JoinSet::new();
    for _ in 0..common.connections {
        let url = common.url.clone();
        let gate = Arc::clone(&gate);
        opening.spawn(async move {
            let _permit = gate.acquire_owned().await;
            timed_connect(&url, connect_timeout).await
        });
    }
    let mut sockets = Vec::with_capacity(common.connections);
    let mut connect_us = Vec::with_capacity(common.connections);
    let mut tally = ErrorTally::default();
    let mut errors = 0u64;
    while let Some(joined) = opening.join_next().await {
        match joined.context("connection task failed")? {
            Ok((ws, us)) => {
                sockets.push(ws);
                connect_us.push(us);
            }
            Err(err) => {
                errors += 1;
                tally.add(error_kind(&err));
            }
        }
    }
    let connected = sockets.len();

    let started = Instant::now();
    let mut running = JoinSet::new();
    for ws in sockets {
        let payload = payload.clone();
        running.spawn(rtt_connection(ws, payload, args.messages, period, timeout));
    }
    let mut samples = Vec::with_capacity(connected * args.messages);
    while let Some(joined) = running.join_next().await {
        let outcome = joined.context("connection task failed")?;
        samples.extend(outcome.samples);
        errors += outcome.errors;
        for kind in outcome.error_kinds {
            tally.add(kind);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();

    let count = samples.len();
    let rate = |n: f64| if elapsed > 0.0 { n / elapsed } else { 0.0 };
    let report = RttReport {
        mode: "rtt",
        url: common.url.clone(),
        connections: common.connections,
        connected,
        messages_per_connection: args.messages,
        size: payload.len(),
        count,
        errors,
        elapsed_s: elapsed,
        msgs_per_s: rate(count as f64),
        mb_per_s: rate(count as f64 * payload.len() as f64) / 1e6,
        rtt_us: summarize(&samples),
        top_errors: tally.top(),
        person: args.person,
        connect_us: summarize(&connect_us),
    };
    if common.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let r = &report;
        println!("wsload rtt {}", r.url);
        println!(
            "  connections  {} requested, {} connected; {} messages of {} B each",
            r.connections, r.connected, r.messages_per_connection, r.size
        );
        println!(
            "  round trips  {} ok, {} errors in {:.3} s",
            r.count, r.errors, r.elapsed_s
        );
        println!(
            "  throughput   {:.0} msgs/s, {:.3} MB/s each way",
            r.msgs_per_s, r.mb_per_s
        );
        println!(
            "  rtt (us)     p50 {:.0}  p90 {:.0}  p99 {:.0}  max {:.0}  mean {:.0}{}",
            r.rtt_us.p50,
            r.rtt_us.p90,
            r.rtt_us.p99,
            r.rtt_us.max,
            r.rtt_us.mean,
            if r.person { " (a person's reruns)" } else { "" }
        );
        print_connect(&r.connect_us);
        print_errors(&r.top_errors);
    }
    Ok(())
}

/// Sends `messages` copies of `payload` one at a time, timing each echo in microseconds.
async fn rtt_connection(
    mut ws: Ws,
    payload: Bytes,
    messages: usize,
    period: Option<Duration>,
    timeout: Duration,
) -> ConnOutcome {
    let mut out = ConnOutcome {
        samples: Vec::with_capacity(messages),
        errors: 0,
        error_kinds: Vec::new(),
    };
    let mut pacing = period.map(|p| {
        let mut interval = tokio::time::interval(p);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    for sent in 0..messages {
        if let Some(pacing) = pacing.as_mut() {
            pacing.tick().await;
        }
        let t0 = Instant::now();
        let result = async {
            ws.send(Message::Binary(payload.clone())).await?;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(data))) if data == payload => return Ok(()),
                    Some(Ok(Message::Binary(_) | Message::Text(_))) => {
                        bail!("echo differs from the message sent")
                    }
                    Some(Ok(Message::Close(_))) | None => bail!("connection closed"),
                    Some(Ok(_)) => continue, // ping/pong
                    Some(Err(err)) => return Err(err.into()),
                }
            }
        };
        match tokio::time::timeout(timeout, result).await {
            Ok(Ok(())) => out.samples.push(t0.elapsed().as_secs_f64() * 1e6),
            Ok(Err(err)) => {
                out.errors += (messages - sent) as u64;
                out.error_kinds.push(error_kind(&err));
                return out;
            }
            Err(_) => {
                out.errors += (messages - sent) as u64;
                out.error_kinds.push("echo timed out".to_owned());
                return out;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    out
}

// ---------------------------------------------------------------------------- hold

/// How one held connection ended.
enum HoldOutcome {
    /// The connection could not be opened, or the page-load message not sent.
    Failed(String),
    /// The server sent `auth_redirect` this long after the page-load message.
    Redirected(Duration, SystemTime),
    /// The server closed the connection without a redirect.
    Closed(Duration),
    /// The connection broke (reset, protocol error).
    Broken(String),
    /// Still open when the hold ended.
    StillOpen,
}

#[derive(Debug, Serialize)]
struct HoldReport {
    mode: &'static str,
    url: String,
    connections: usize,
    opened: usize,
    failed: usize,
    /// Connections the server ended during the hold: redirected + closed + broken.
    ended: usize,
    redirected: usize,
    closed_without_redirect: usize,
    broken: usize,
    still_open: usize,
    /// Seconds from the first connection attempt until all had opened or failed.
    open_phase_s: f64,
    hold_s: f64,
    /// Time from the end of each connection's page-load run to its redirect, in ms.
    time_to_redirect_ms: Summary,
    /// Wall-clock time of the last redirect, in seconds since the Unix epoch.
    last_redirect_unix_s: Option<f64>,
    /// Time from the end of each connection's page-load run to a close without redirect, in ms.
    time_to_close_ms: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    lateness: Option<Lateness>,
    top_errors: Vec<ErrorCount>,
    /// Each opened connection's WebSocket handshake, in microseconds.
    connect_us: Summary,
    /// A person's reruns sent with --activity-every (page loads not counted).
    activity_messages: u64,
}

#[derive(Debug, Serialize)]
struct Lateness {
    expect_end_after_s: f64,
    /// Redirect time minus the expected lifetime, in ms (negative: early).
    lateness_ms: Summary,
    /// Redirects that came before the expected lifetime.
    early: usize,
    /// Share of opened connections redirected within 1 s either side of the expected
    /// lifetime, in percent.
    pct_within_1s: f64,
    /// Every redirect's lateness in ms, when asked for with --samples.
    #[serde(skip_serializing_if = "Option::is_none")]
    samples_ms: Option<Vec<f64>>,
}

async fn hold(args: HoldArgs) -> Result<()> {
    let common = &args.common;
    if common.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let connect_timeout = secs(common.connect_timeout, "--connect-timeout")?;
    let duration = secs(args.duration, "--duration")?;
    let spacing = match args.ramp {
        Some(rate) if rate > 0.0 => Some(secs(1.0 / rate, "--ramp")?),
        Some(rate) => bail!("--ramp must be positive, got {rate}"),
        None => None,
    };
    if let Some(s) = args.expect_end_after {
        secs(s, "--expect-end-after")?;
    }
    let activity_every = match args.activity_every {
        Some(every) if every > 0.0 => Some(secs(every, "--activity-every")?),
        Some(every) => bail!("--activity-every must be positive, got {every}"),
        None => None,
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    // Each task reports once it has opened (or failed to open) its connection.
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel::<Option<f64>>();
    let plan = Arc::new(HoldPlan {
        url: common.url.clone(),
        connect_timeout,
        gate: Semaphore::new(common.connect_concurrency.max(1)),
        activity_every,
        activity_sent: AtomicU64::new(0),
    });
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..common.connections {
        if let Some(spacing) = spacing {
            tokio::time::sleep_until(started + spacing.mul_f64(i as f64)).await;
        }
        let plan = Arc::clone(&plan);
        let stop = stop_rx.clone();
        let opened = opened_tx.clone();
        tasks.spawn(async move { hold_connection(plan, opened, stop).await });
    }
    drop(opened_tx);
    let mut reported = 0;
    let mut opened_ok = 0;
    let mut connect_us = Vec::with_capacity(common.connections);
    while let Some(connect) = opened_rx.recv().await {
        reported += 1;
        if let Some(us) = connect {
            opened_ok += 1;
            connect_us.push(us);
        }
        if reported == common.connections {
            break;
        }
    }
    let open_phase = started.elapsed();
    // On standard error with --json too: a caller can tell when the hold starts.
    eprintln!(
        "wsload: {opened_ok} of {} connections open after {:.2} s; holding {:.1} s",
        common.connections,
        open_phase.as_secs_f64(),
        duration.as_secs_f64()
    );
    tokio::time::sleep(duration).await;
    let _ = stop_tx.send(true);

    let mut report = HoldReport {
        mode: "hold",
        url: common.url.clone(),
        connections: common.connections,
        opened: 0,
        failed: 0,
        ended: 0,
        redirected: 0,
        closed_without_redirect: 0,
        broken: 0,
        still_open: 0,
        open_phase_s: open_phase.as_secs_f64(),
        hold_s: duration.as_secs_f64(),
        time_to_redirect_ms: Summary::default(),
        last_redirect_unix_s: None,
        time_to_close_ms: Summary::default(),
        lateness: None,
        top_errors: Vec::new(),
        connect_us: summarize(&connect_us),
        activity_messages: 0,
    };
    let mut redirect_ms = Vec::new();
    let mut close_ms = Vec::new();
    let mut tally = ErrorTally::default();
    while let Some(joined) = tasks.join_next().await {
        match joined.context("connection task failed")? {
            HoldOutcome::Failed(kind) => {
                report.failed += 1;
                tally.add(kind);
            }
            HoldOutcome::Redirected(after, at) => {
                report.redirected += 1;
                redirect_ms.push(after.as_secs_f64() * 1e3);
                let unix = at
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                report.last_redirect_unix_s = Some(
                    report
                        .last_redirect_unix_s
                        .map_or(unix, |l: f64| l.max(unix)),
                );
            }
            HoldOutcome::Closed(after) => {
                report.closed_without_redirect += 1;
                close_ms.push(after.as_secs_f64() * 1e3);
            }
            HoldOutcome::Broken(kind) => {
                report.broken += 1;
                tally.add(kind);
            }
            HoldOutcome::StillOpen => report.still_open += 1,
        }
    }
    report.opened = common.connections - report.failed;
    report.ended = report.redirected + report.closed_without_redirect + report.broken;
    report.time_to_redirect_ms = summarize(&redirect_ms);
    report.time_to_close_ms = summarize(&close_ms);
    report.top_errors = tally.top();
    report.activity_messages = plan.activity_sent.load(Ordering::Relaxed);
    if let Some(expected) = args.expect_end_after {
        let expected_ms = expected * 1e3;
        let late: Vec<f64> = redirect_ms.iter().map(|ms| ms - expected_ms).collect();
        let within = late.iter().filter(|ms| ms.abs() <= 1_000.0).count();
        report.lateness = Some(Lateness {
            expect_end_after_s: expected,
            lateness_ms: summarize(&late),
            early: late.iter().filter(|ms| **ms < 0.0).count(),
            pct_within_1s: if report.opened > 0 {
                100.0 * within as f64 / report.opened as f64
            } else {
                0.0
            },
            samples_ms: args.samples.then(|| late.clone()),
        });
    }

    if common.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let r = &report;
        println!("wsload hold {}", r.url);
        println!(
            "  connections  {} requested, {} opened, {} failed (open phase {:.2} s, held {:.1} s)",
            r.connections, r.opened, r.failed, r.open_phase_s, r.hold_s
        );
        println!(
            "  ended        {} ({} redirected, {} closed without redirect, {} broken); {} still open",
            r.ended, r.redirected, r.closed_without_redirect, r.broken, r.still_open
        );
        if r.activity_messages > 0 {
            println!(
                "  activity     {} reruns of a person sent",
                r.activity_messages
            );
        }
        if r.redirected > 0 {
            let t = &r.time_to_redirect_ms;
            println!(
                "  redirect after (ms)  p50 {:.0}  p90 {:.0}  p99 {:.0}  max {:.0}",
                t.p50, t.p90, t.p99, t.max
            );
        }
        if r.closed_without_redirect > 0 {
            let t = &r.time_to_close_ms;
            println!(
                "  close after (ms)     p50 {:.0}  p90 {:.0}  p99 {:.0}  max {:.0}",
                t.p50, t.p90, t.p99, t.max
            );
        }
        if let Some(l) = &r.lateness {
            println!(
                "  lateness vs {:.1} s (ms)  p50 {:.0}  p99 {:.0}  max {:.0}; {} early; {:.1}% of opened within 1 s",
                l.expect_end_after_s,
                l.lateness_ms.p50,
                l.lateness_ms.p99,
                l.lateness_ms.max,
                l.early,
                l.pct_within_1s
            );
        }
        print_connect(&r.connect_us);
        print_errors(&r.top_errors);
    }
    Ok(())
}

/// What every held connection shares.
struct HoldPlan {
    url: String,
    connect_timeout: Duration,
    /// Handshakes in flight at once.
    gate: Semaphore,
    /// Send a person's rerun this often, instead of staying idle.
    activity_every: Option<Duration>,
    activity_sent: AtomicU64,
}

/// Opens one connection, sends the page-load rerun, then idles (or sends a person's reruns
/// every `plan.activity_every`) until the server ends the connection or `stop` turns true.
/// Pings are answered by tungstenite while reading.
async fn hold_connection(
    plan: Arc<HoldPlan>,
    opened: tokio::sync::mpsc::UnboundedSender<Option<f64>>,
    mut stop: watch::Receiver<bool>,
) -> HoldOutcome {
    let connected = {
        let _permit = plan.gate.acquire().await;
        timed_connect(&plan.url, plan.connect_timeout).await
    };
    let (mut ws, connect_us) = match connected {
        Ok(opened) => opened,
        Err(err) => {
            let _ = opened.send(None);
            return HoldOutcome::Failed(error_kind(&err));
        }
    };
    // The page load: a rerun a person caused (is_auto_rerun = false).
    let page_load = Bytes::from_static(&[proto::RERUN_SCRIPT_TAG, 0x00]);
    if let Err(err) = ws.send(Message::Binary(page_load)).await {
        let _ = opened.send(None);
        return HoldOutcome::Failed(err.to_string());
    }
    // Idle time starts when the page load's run finishes, or now if the app never says so.
    let mut idle_from = Instant::now();
    let mut run_finished = false;
    let _ = opened.send(Some(connect_us));
    drop(opened);
    let mut activity = plan.activity_every.map(|every| {
        let mut interval = tokio::time::interval_at(Instant::now() + every, every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });

    let outcome = loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(data))) if proto::is_auth_redirect(&data) => {
                    break HoldOutcome::Redirected(idle_from.elapsed(), SystemTime::now());
                }
                Some(Ok(Message::Binary(data)))
                    if !run_finished && proto::has_field(&data, proto::SCRIPT_FINISHED_FIELD) =>
                {
                    run_finished = true;
                    idle_from = Instant::now();
                    continue;
                }
                Some(Ok(Message::Close(_))) | None => {
                    return HoldOutcome::Closed(idle_from.elapsed());
                }
                Some(Ok(_)) => continue,
                Some(Err(err)) => return HoldOutcome::Broken(err.to_string()),
            },
            () = next_tick(&mut activity) => {}
            _ = stop.wait_for(|stop| *stop) => break HoldOutcome::StillOpen,
        }
        // Only the activity branch gets here (the others break, return or continue); the
        // send is outside `select!`, which holds the stop signal's guard until it ends.
        let rerun = Bytes::from_static(&[proto::RERUN_SCRIPT_TAG, 0x00]);
        if let Err(err) = ws.send(Message::Binary(rerun)).await {
            return HoldOutcome::Broken(err.to_string());
        }
        plan.activity_sent.fetch_add(1, Ordering::Relaxed);
    };
    // Leave like a browser tab: after a redirect let the server finish closing; at
    // the end of the hold, close from this side. Either way, don't wait long.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        if matches!(outcome, HoldOutcome::StillOpen) {
            let _ = ws.close(None).await;
        }
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    outcome
}

/// Opens one browser-like connection and times its handshake, in microseconds.
async fn timed_connect(url: &str, timeout: Duration) -> Result<(Ws, f64)> {
    let t0 = Instant::now();
    let ws = benchkit::connect_tab(url, timeout).await?;
    Ok((ws, t0.elapsed().as_secs_f64() * 1e6))
}

fn print_connect(connect: &Summary) {
    if connect.count > 0 {
        println!(
            "  connect (us) p50 {:.0}  p90 {:.0}  p99 {:.0}  max {:.0}  ({} handshakes)",
            connect.p50, connect.p90, connect.p99, connect.max, connect.count
        );
    }
}

fn print_errors(errors: &[ErrorCount]) {
    for e in errors {
        println!("  error        {} x {}", e.count, e.error);
    }
}

/// The next tick of `interval`; never, when there is none.
async fn next_tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
