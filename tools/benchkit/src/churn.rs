//! Tabs opened and ended in churn, for soak tests: [`run`].
//!
//! Up to `tabs_at_once` browser-like tabs are open at a time; new ones open at a steady
//! rate (`total / duration`, or faster to make up for a slow start) while others end. Each
//! tab sends the page-load rerun, then stays active for a random time (a person's rerun every
//! `activity_every` seconds), then goes quiet; a share of the tabs (`close_share`) closes
//! itself a random time into its quiet period, like a person closing the tab, and the rest
//! wait until the server ends them for being idle (`auth_redirect`) or close them. When
//! `total` tabs have been opened or `duration` is over, no more open; tabs still open when
//! `duration` is over are closed from this side.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Serialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::{connect_tab, proto};

/// What a churn run does. Times in seconds.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `ws://HOST:PORT/_stcore/stream`.
    pub url: String,
    /// Most tabs open at once.
    pub tabs_at_once: usize,
    /// Tabs to open in all.
    pub total: usize,
    /// Longest the run may take; opening stops then and open tabs are closed.
    pub duration: Duration,
    /// Mean of each tab's active period (uniform between 0 and twice this).
    pub active_mean: Duration,
    /// A person's rerun every this long while active.
    pub activity_every: Duration,
    /// The server's idle timeout: a closing tab closes uniformly within this long after
    /// its active period.
    pub idle_timeout: Duration,
    /// Share of tabs (0 to 1) that close themselves instead of waiting to be ended.
    pub close_share: f64,
    /// Give up on a handshake after this long.
    pub connect_timeout: Duration,
}

/// How one tab ended.
enum Fate {
    /// It could not open (handshake or page-load send failed).
    Failed(String),
    /// The server sent `auth_redirect` (the idle end).
    Redirected,
    /// The server closed it without a redirect.
    ServerClosed,
    /// This side closed it, as a person closing the tab.
    ClientClosed,
    /// The connection broke (reset, protocol error).
    Broken(String),
    /// Still open when the run's duration was over; closed from this side.
    Outlived,
}

/// What a churn run did.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub url: String,
    pub tabs_at_once: usize,
    pub total_requested: usize,
    pub duration_s: f64,
    /// Tabs whose handshake and page load succeeded.
    pub opened: usize,
    /// Tabs that could not open.
    pub failed: usize,
    /// Tabs ended, by how.
    pub ended: BTreeMap<&'static str, usize>,
    /// Most tabs open at the same moment.
    pub peak_open: usize,
    /// Seconds from the first open to the last tab's end.
    pub elapsed_s: f64,
    /// Seconds until the last tab was opened.
    pub open_phase_s: f64,
    /// Person's reruns sent, in all.
    pub activity_messages: u64,
    /// Most frequent error descriptions (failed and broken tabs), at most five.
    pub top_errors: Vec<(String, u64)>,
}

struct Shared {
    open: AtomicUsize,
    peak: AtomicUsize,
    activity: AtomicUsize,
}

/// Runs the churn and reports. `progress` is called about every 5 s with (seconds since
/// start, tabs open now, tabs opened so far).
pub async fn run(plan: Plan, mut progress: impl FnMut(f64, usize, usize)) -> Report {
    let started = Instant::now();
    let end_at = started + plan.duration;
    let spacing = plan.duration.div_f64(plan.total.max(1) as f64);
    let slots = Arc::new(Semaphore::new(plan.tabs_at_once.max(1)));
    let shared = Arc::new(Shared {
        open: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        activity: AtomicUsize::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tabs = JoinSet::new();
    let mut report = Report {
        mode: "churn",
        url: plan.url.clone(),
        tabs_at_once: plan.tabs_at_once,
        total_requested: plan.total,
        duration_s: plan.duration.as_secs_f64(),
        ..Report::default()
    };
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut next_progress = started;
    let mut launched = 0usize;
    while launched < plan.total {
        // Pace: the i-th tab opens no earlier than i × spacing after the start.
        let due = started + spacing.mul_f64(launched as f64);
        let permit = tokio::select! {
            permit = async {
                tokio::time::sleep_until(due).await;
                Arc::clone(&slots).acquire_owned().await
            } => permit,
            _ = tokio::time::sleep_until(end_at) => break,
        };
        let Ok(permit) = permit else { break };
        launched += 1;
        let (plan, tab_shared, stop) = (plan.clone(), Arc::clone(&shared), stop_rx.clone());
        tabs.spawn(async move {
            let end = tab(&plan, &tab_shared, stop).await;
            drop(permit);
            end
        });
        // Collect finished tabs as we go, so the set stays small.
        while let Some(done) = tabs.try_join_next() {
            tally(&mut report, &mut errors, done);
        }
        if Instant::now() >= next_progress {
            progress(
                started.elapsed().as_secs_f64(),
                shared.open.load(Ordering::Relaxed),
                launched,
            );
            next_progress += Duration::from_secs(5);
        }
    }
    report.open_phase_s = started.elapsed().as_secs_f64();
    // Let the last tabs live out their plan, but not past the duration.
    loop {
        tokio::select! {
            done = tabs.join_next() => match done {
                Some(done) => tally(&mut report, &mut errors, done),
                None => break,
            },
            _ = tokio::time::sleep_until(end_at), if !*stop_rx.borrow() => {
                let _ = stop_tx.send(true);
            }
            _ = tokio::time::sleep_until(next_progress) => {
                progress(started.elapsed().as_secs_f64(), shared.open.load(Ordering::Relaxed), launched);
                next_progress += Duration::from_secs(5);
            }
        }
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    report.peak_open = shared.peak.load(Ordering::Relaxed);
    report.activity_messages = shared.activity.load(Ordering::Relaxed) as u64;
    let mut top: Vec<(String, u64)> = errors.into_iter().collect();
    top.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    top.truncate(5);
    report.top_errors = top;
    report
}

fn tally(
    report: &mut Report,
    errors: &mut BTreeMap<String, u64>,
    done: Result<Fate, tokio::task::JoinError>,
) {
    let end = done.unwrap_or_else(|e| Fate::Broken(format!("tab task failed: {e}")));
    let reason = match end {
        Fate::Failed(kind) => {
            report.failed += 1;
            *errors.entry(kind).or_default() += 1;
            return;
        }
        Fate::Redirected => "idle_redirect",
        Fate::ServerClosed => "server_closed",
        Fate::ClientClosed => "closed_by_tab",
        Fate::Broken(kind) => {
            *errors.entry(kind).or_default() += 1;
            "broken"
        }
        Fate::Outlived => "open_at_end",
    };
    report.opened += 1;
    *report.ended.entry(reason).or_default() += 1;
}

/// Counts a tab as open for as long as it lives.
struct OpenGuard<'a>(&'a Shared);

impl<'a> OpenGuard<'a> {
    fn new(shared: &'a Shared) -> Self {
        let now = shared.open.fetch_add(1, Ordering::Relaxed) + 1;
        shared.peak.fetch_max(now, Ordering::Relaxed);
        OpenGuard(shared)
    }
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One tab's life; see the module documentation.
async fn tab(plan: &Plan, shared: &Shared, mut stop: watch::Receiver<bool>) -> Fate {
    let mut ws = match connect_tab(&plan.url, plan.connect_timeout).await {
        Ok(ws) => ws,
        Err(err) => return Fate::Failed(err.root_cause().to_string()),
    };
    let page_load = Bytes::from_static(&[proto::RERUN_SCRIPT_TAG, 0x00]);
    if let Err(err) = ws.send(Message::Binary(page_load.clone())).await {
        return Fate::Failed(err.to_string());
    }
    let _open = OpenGuard::new(shared);
    let now = Instant::now();
    let active_until = now + plan.active_mean.mul_f64(2.0 * rand::random::<f64>());
    let closes = rand::random::<f64>() < plan.close_share;
    let close_at = closes.then(|| active_until + plan.idle_timeout.mul_f64(rand::random()));
    let mut next_activity = now + plan.activity_every;
    let end = loop {
        let activity_due = next_activity < active_until;
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(data))) if proto::is_auth_redirect(&data) => {
                    break Fate::Redirected;
                }
                Some(Ok(Message::Close(_))) | None => return Fate::ServerClosed,
                Some(Ok(_)) => {}
                Some(Err(err)) => return Fate::Broken(err.to_string()),
            },
            _ = tokio::time::sleep_until(next_activity), if activity_due => {
                if let Err(err) = ws.send(Message::Binary(page_load.clone())).await {
                    return Fate::Broken(err.to_string());
                }
                shared.activity.fetch_add(1, Ordering::Relaxed);
                next_activity += plan.activity_every;
            }
            _ = sleep_until_opt(close_at) => break Fate::ClientClosed,
            () = stopped(&mut stop) => break Fate::Outlived,
        }
    };
    // Leave like a browser tab: after a redirect let the server finish closing; else close
    // from this side. Either way, don't wait long.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        if !matches!(end, Fate::Redirected) {
            let _ = ws.close(None).await;
        }
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    end
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
