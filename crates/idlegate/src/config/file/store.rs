//! `[store]`: where the state several replicas share is kept.

use serde::{Deserialize, Serialize};

/// `[store]`: where login sessions, revocations, ended tab sessions and the tab directory
/// are kept. One idlegate keeps them in its memory; several replicas of one app share them
/// through Redis or Valkey (docs/deploy.md).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    /// `"memory"` (this process only: a restart signs everyone out), or a Redis/Valkey URL
    /// shared by every replica: `"redis://host:6379/0"`, with a password
    /// `"redis://:PASSWORD@host:6379"` or an ACL user `"redis://USER:PASSWORD@host:6379"`,
    /// and `"rediss://…"` for TLS (checked against the system's CA certificates). Holds a
    /// secret: give it with `IDLEGATE_STORE__URL` from a secret, not in a file others read.
    /// With Redis, `login.cookie_keys_file` is required. Default `"memory"`.
    pub url: String,
    /// Prefix of every key and channel idlegate uses in Redis, so several apps can share one
    /// database: give each app its own (every replica of one app the same). 1 to 64 printable
    /// characters without spaces. Default `"idlegate:"`.
    pub key_prefix: String,
    /// While Redis cannot be reached: `"refuse"` shows new sign-ins a page saying the server
    /// cannot sign anyone in now (open tabs keep working, and still end on time), `"local"`
    /// signs people in on this replica alone (their login is written to Redis once it is
    /// back, but other replicas do not know it until then). Default `"refuse"`.
    pub on_unavailable: String,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            url: "memory".to_owned(),
            key_prefix: "idlegate:".to_owned(),
            on_unavailable: "refuse".to_owned(),
        }
    }
}
