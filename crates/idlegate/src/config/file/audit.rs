//! `[audit]`: the audit log.

use serde::{Deserialize, Serialize};

/// `[audit]`: one JSON line per lifecycle event that matters to an audit.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAudit {
    /// Where the audit log goes: a file path (appended to, created with mode 0600, reopened
    /// on SIGHUP for log rotation) or `"-"` for standard output. One JSON line per tab start,
    /// warning, "keep working", tab end (with its reason and human idle time), sign-in,
    /// failed sign-in, login end and administrator action. Session ids appear only as short
    /// hashes. Default: unset (no audit log).
    pub path: Option<String>,
}
