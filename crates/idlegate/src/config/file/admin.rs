//! `[admin]`: the operators' listener (the API, the admin page and `/metrics`).

use serde::{Deserialize, Serialize};

/// `[admin]`: a listener of its own for operators, off unless `listen` is set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAdmin {
    /// Address and port of the admin listener (the JSON API under `/api/v1/`, its OpenAPI
    /// document, the admin page and Prometheus `/metrics`), like `"127.0.0.1:9090"`. Keep it
    /// inside the cluster: it is not meant for browsers on the internet. Needs at least one
    /// token (`tokens_file` or `tokens`). Default: unset (no admin listener).
    pub listen: Option<String>,
    /// A file of bearer tokens, one `name:token` per line (`#` starts a comment). The name
    /// says who called in the audit log; a token is at least 32 characters. Several lines
    /// let tokens be rotated without downtime. Default: unset.
    pub tokens_file: Option<String>,
    /// Bearer tokens as `name:token[,name:token…]`, for an environment variable set from a
    /// Kubernetes Secret (`IDLEGATE_ADMIN__TOKENS`); prefer `tokens_file` in files. Both may
    /// be set. Default: unset.
    pub tokens: Option<String>,
    /// Whether `/metrics` answers without a token (for a Prometheus inside the cluster that
    /// scrapes the admin port). The API and the page always need one. Default `false`.
    pub metrics_without_token: bool,
}
