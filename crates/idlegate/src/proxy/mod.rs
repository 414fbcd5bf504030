//! Relaying requests to the app: plain HTTP ([`forward`]) with the page script added to HTML
//! pages ([`inject`]), WebSocket upgrades ([`websocket`]) and the tab session relay
//! ([`relay`]) that watches frames ([`crate::ws`]), the requests and event streams of
//! request-shaped tab sessions ([`requests`], [`sse`]), all given one shared [`Context`].

mod context;
pub mod forward;
pub mod headers;
pub mod inject;
pub mod outgoing;
pub mod relay;
pub mod release;
pub mod requests;
pub mod sse;
pub mod websocket;

pub use crate::web::Body;
pub use context::Context;

/// The pooled HTTP/1.1 client for requests to the app.
pub type UpstreamClient =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

/// Builds the client for requests to the app.
pub fn upstream_client(connect_timeout: std::time::Duration) -> UpstreamClient {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .build(connector)
}
