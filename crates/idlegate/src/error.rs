//! The one error type of the request path, and its one mapping to an HTTP response.
//!
//! Each error says where the fault is ([`Fault`]): in the app behind idlegate, in the request,
//! or in idlegate itself. Logs use that to tell an operator where to look.

use std::fmt;

use http::StatusCode;

/// Where a fault is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The app: down, slow, or answering nonsense.
    Upstream,
    /// The browser's request.
    Client,
    /// idlegate itself.
    Internal,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Upstream => "upstream",
            Self::Client => "client",
            Self::Internal => "internal",
        })
    }
}

/// A request that could not be relayed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot connect to the app at {upstream}")]
    Connect {
        upstream: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the app at {upstream} did not accept a connection within {timeout_ms} ms")]
    ConnectTimeout { upstream: String, timeout_ms: u128 },
    #[error("the app's response failed")]
    Upstream(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// A WebSocket upgrade to a path where the app serves no socket idlegate can track.
    #[error("no WebSocket is served at this path")]
    NoSocket,
    /// A session socket naming a session it may not have: another login's tab's, or one
    /// idlegate cannot read.
    #[error("this session cannot be opened here")]
    ForeignSession,
    /// A path outside the app's base path, for an app that serves only under it.
    #[error("nothing is served at this path")]
    NotServed,
    /// A request whose body idlegate must read (a request-shaped session names its session
    /// in it) is larger than `proxy.max_message_bytes`.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// A request body idlegate must read did not arrive within `proxy.header_read_timeout`.
    #[error("the request body did not arrive within {timeout_ms} ms")]
    SlowBody { timeout_ms: u128 },
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl ProxyError {
    /// Where the fault is.
    pub fn fault(&self) -> Fault {
        match self {
            Self::Connect { .. } | Self::ConnectTimeout { .. } | Self::Upstream(_) => {
                Fault::Upstream
            }
            Self::BadRequest(_)
            | Self::NoSocket
            | Self::NotServed
            | Self::ForeignSession
            | Self::TooLarge { .. }
            | Self::SlowBody { .. } => Fault::Client,
            Self::Internal(_) => Fault::Internal,
        }
    }

    /// For a fault of the app: `connect` (refused or unreachable), `timeout` (no connection
    /// within `proxy.connect_timeout`) or `response` (the answer broke off); `None` for
    /// other faults. The label of `idlegate_upstream_errors_total`.
    pub fn upstream_fault(&self) -> Option<&'static str> {
        match self {
            Self::Connect { .. } => Some("connect"),
            Self::ConnectTimeout { .. } => Some("timeout"),
            Self::Upstream(_) => Some("response"),
            _ => None,
        }
    }

    /// The status the browser gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Connect { .. } | Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::ConnectTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NoSocket | Self::NotServed => StatusCode::NOT_FOUND,
            Self::ForeignSession => StatusCode::FORBIDDEN,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::SlowBody { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the app could not be reached at all (as opposed to failing mid-response).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Connect { .. } | Self::ConnectTimeout { .. })
    }
}

/// The error and all its causes on one line.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
