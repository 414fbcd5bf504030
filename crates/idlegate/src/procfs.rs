//! Reading memory from Linux: a process tree's resident set from `/proc` (proc(5)), for the
//! metrics and memory pressure in launcher mode, and the container's from its cgroup.

use std::collections::HashMap;

/// The resident memory, in bytes, of process `pid` and all its descendants (`VmRSS` of each,
/// from `/proc/PID/status`); `None` when `pid` is gone or `/proc` cannot be read. Shared
/// pages count once per process, as `VmRSS` does.
pub fn tree_resident_bytes(pid: u32) -> Option<u64> {
    let root = resident_bytes(pid)?;
    let parents = parents();
    let mut total = root;
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (&child, &ppid) in &parents {
            if ppid == parent {
                total += resident_bytes(child).unwrap_or(0);
                frontier.push(child);
            }
        }
    }
    Some(total)
}

/// `VmRSS` of one process, in bytes (absent for kernel threads and zombies: 0).
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    Some(kib * 1024)
}

/// Every process's parent, from `/proc/PID/stat` (the field after the command name, which
/// may itself hold spaces and parentheses: read after its last `)`).
fn parents() -> HashMap<u32, u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let after = &stat[stat.rfind(')')? + 1..];
            let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect()
}

/// The memory limit of this process's cgroup, in bytes: cgroup v2's `memory.max`, else
/// v1's `memory.limit_in_bytes` (Linux, Documentation/admin-guide/cgroup-v2.rst); `None`
/// when unlimited (`max`, or v1's near-2^63 "no limit") or unreadable. In a container this is
/// the container's limit, which the app shares in launcher mode.
pub fn cgroup_memory_limit() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let text = read("/sys/fs/cgroup/memory.max")
        .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))?;
    parse_limit(&text)
}

/// The working set of this process's cgroup, in bytes: memory in use less the page cache the
/// kernel can drop at once, as the kubelet counts it for evictions and `kubectl top` shows
/// it. cgroup v2: `memory.current` less `inactive_file` of `memory.stat`; v1:
/// `memory.usage_in_bytes` less `total_inactive_file`. `None` when unreadable (no cgroup
/// memory controller here).
pub fn cgroup_working_set() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    if let (Some(current), Some(stat)) = (
        read("/sys/fs/cgroup/memory.current"),
        read("/sys/fs/cgroup/memory.stat"),
    ) {
        return working_set(&current, &stat, "inactive_file");
    }
    working_set(
        &read("/sys/fs/cgroup/memory/memory.usage_in_bytes")?,
        &read("/sys/fs/cgroup/memory/memory.stat")?,
        "total_inactive_file",
    )
}

/// `usage` (a counter file's text) less the `inactive` line of `stat` (a `memory.stat`
/// text), never below zero.
fn working_set(usage: &str, stat: &str, inactive: &str) -> Option<u64> {
    let usage: u64 = usage.trim().parse().ok()?;
    let inactive: u64 = stat
        .lines()
        .find_map(|line| line.strip_prefix(inactive)?.strip_prefix(' '))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    Some(usage.saturating_sub(inactive))
}

/// A cgroup memory limit file's bytes; `None` for `max` (v2) or the near-2^63 value v1
/// writes for "no limit".
fn parse_limit(text: &str) -> Option<u64> {
    let limit: u64 = text.trim().parse().ok()?;
    (limit < 1 << 62).then_some(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_holds_at_least_its_root_and_its_children() {
        let own = std::process::id();
        let alone = tree_resident_bytes(own).expect("this process");
        assert!(alone > 1024 * 1024, "{alone}");
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let with_child = tree_resident_bytes(own).unwrap();
        let child_rss = resident_bytes(child.id()).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(child_rss > 0);
        assert!(
            with_child + 4 * 1024 * 1024 >= alone + child_rss,
            "{with_child} {alone} {child_rss}"
        );
        assert_eq!(tree_resident_bytes(u32::MAX), None);
    }

    #[test]
    fn a_working_set_is_usage_less_inactive_file() {
        let stat = "anon 5000\nactive_file 300\ninactive_file 2000\ninactive_anon 1\n";
        assert_eq!(working_set("10000\n", stat, "inactive_file"), Some(8000));
        // v1 names it total_inactive_file; inactive_file alone is not that line.
        let v1 = "inactive_file 1\ntotal_inactive_file 4000\n";
        assert_eq!(working_set("10000", v1, "total_inactive_file"), Some(6000));
        assert_eq!(working_set("100", stat, "inactive_file"), Some(0));
        assert_eq!(working_set("100", "anon 5\n", "inactive_file"), Some(100));
        assert_eq!(working_set("max", stat, "inactive_file"), None);
    }

    #[test]
    fn a_cgroup_limit_is_its_bytes_and_no_limit_is_none() {
        assert_eq!(parse_limit("536870912\n"), Some(536_870_912));
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None, "v1's no limit");
        assert_eq!(parse_limit(""), None);
    }
}
