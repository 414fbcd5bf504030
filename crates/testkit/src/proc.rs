//! Process inspection through `/proc`, and a polling helper for tests.
//!
//! Tests observe real processes: the memory a Streamlit server holds, or the
//! Streamlit child that idlegate's launcher spawned. Everything here reads
//! Linux's `/proc` directly, which is cheap and needs no extra tools.
//!
//! [`wait_until`] is the one way tests wait for something to happen. Fixed
//! sleeps are either too short on a loaded CI machine or needlessly slow on a
//! fast one; polling against a deadline is both robust and quick.

use std::future::Future;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::time::Instant;

/// Resident set size (`VmRSS`) of process `pid`, in bytes.
///
/// # Panics
///
/// Panics if the process does not exist or its status cannot be read; use
/// [`try_rss_bytes`] where the process may legitimately be gone.
pub fn rss_bytes(pid: u32) -> u64 {
    try_rss_bytes(pid).unwrap_or_else(|e| panic!("reading RSS of pid {pid}: {e:#}"))
}

/// Resident set size (`VmRSS`) of process `pid`, in bytes.
///
/// Fails if the process does not exist (or is a zombie, which has no `VmRSS`).
pub fn try_rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_vm_rss(&status).ok_or_else(|| anyhow!("no VmRSS line for pid {pid} (exited?)"))
}

/// Extracts `VmRSS` (reported by the kernel in KiB) from a `/proc/<pid>/status` text.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Whether a process with id `pid` currently exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => parse_stat(&stat).is_some_and(|(state, _)| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// Ids of the live direct children of process `pid`, in ascending order.
///
/// Linux has no per-process child list that includes grandchildren's parents
/// reliably across kernels, so this scans every `/proc/<n>/stat` for a
/// matching parent id. Processes that exit during the scan are skipped.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: Vec<u32> = entries
        .filter_map(|entry| {
            let child: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            let (state, ppid) = parse_stat(&stat)?;
            (ppid == pid && state != 'Z' && state != 'X').then_some(child)
        })
        .collect();
    children.sort_unstable();
    children
}

/// All live descendants of `pid` (children, grandchildren, ...), in
/// breadth-first order.
pub fn descendants_of(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for child in children_of(parent) {
            found.push(child);
            frontier.push(child);
        }
    }
    found
}

/// The command line of process `pid`, split into arguments.
pub fn cmdline(pid: u32) -> Result<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline"))
        .with_context(|| format!("reading /proc/{pid}/cmdline"))?;
    Ok(raw
        .split(|b| *b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect())
}

/// Parses the state and parent pid out of a `/proc/<pid>/stat` line.
///
/// The second field, the command name, is in parentheses and may itself
/// contain spaces and parentheses, so parsing starts after the *last* `)`.
fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Calls `check` every `poll` until it returns `Ok`, or fails once `deadline`
/// has passed.
///
/// An `Err` from `check` means "not yet"; on timeout, the last such error is
/// returned with the elapsed time as context, so a failing test says what it
/// was still waiting for. `check` is always called at least once, and once
/// more right at the deadline.
///
/// ```no_run
/// # async fn demo() -> anyhow::Result<()> {
/// use std::time::Duration;
/// let pid = 1234;
/// let rss = testkit::wait_until(Duration::from_secs(10), Duration::from_millis(100), async || {
///     let rss = testkit::proc::try_rss_bytes(pid)?;
///     anyhow::ensure!(rss < 100 << 20, "RSS still {rss} bytes");
///     Ok(rss)
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn wait_until<T, F>(deadline: Duration, poll: Duration, mut check: F) -> Result<T>
where
    F: AsyncFnMut() -> Result<T>,
{
    let start = Instant::now();
    let end = start + deadline;
    loop {
        let last_err = match check().await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        let now = Instant::now();
        if now >= end {
            return Err(last_err.context(format!(
                "condition not met within {:.1?}",
                now.duration_since(start)
            )));
        }
        // Never sleep past the deadline, so the final check happens on time.
        tokio::time::sleep(poll.min(end - now)).await;
    }
}

/// Like [`wait_until`], for a check that is a plain future factory; handy when
/// the condition is a single async call.
pub async fn wait_for<T, F, Fut>(deadline: Duration, poll: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    wait_until(deadline, poll, async || check().await).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_rss() {
        let status = "Name:\tpython\nVmPeak:\t  999 kB\nVmRSS:\t   2048 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(2048 * 1024));
        assert_eq!(parse_vm_rss("Name:\tzombie\n"), None);
    }

    #[test]
    fn parses_stat_with_odd_command_names() {
        let stat = "4242 (a) b (c)) S 17 4242 4242 0 -1 4194560";
        assert_eq!(parse_stat(stat), Some(('S', 17)));
    }

    #[test]
    fn finds_own_process() {
        let me = std::process::id();
        assert!(is_alive(me));
        assert!(rss_bytes(me) > 0);
        let parent = std::os::unix::process::parent_id();
        assert!(children_of(parent).contains(&me));
    }

    #[tokio::test]
    async fn wait_until_reports_last_error() {
        let mut calls = 0;
        let err = wait_until(
            Duration::from_millis(50),
            Duration::from_millis(10),
            async || {
                calls += 1;
                Err::<(), _>(anyhow!("still waiting ({calls})"))
            },
        )
        .await
        .unwrap_err();
        assert!(calls >= 2);
        let msg = format!("{err:#}");
        assert!(msg.contains("still waiting"), "{msg}");
        assert!(msg.contains("condition not met"), "{msg}");
    }
}
