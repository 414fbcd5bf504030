//! Test support for idlegate's integration tests.
//!
//! Every helper here drives a *real* component: Streamlit from the project's
//! virtualenv, Debian's Chromium through chromedriver, and the idlegate gateway
//! itself. The one stand-in is [`upstream::FakeUpstream`], a small HTTP app for
//! tests of HTTP relaying alone, which need no Streamlit. Each spawned process
//! listens on an ephemeral port and is killed when its guard is dropped, so
//! tests can run in parallel and never leak processes.
//!
//! Modules:
//! - [`ports`]: ephemeral loopback ports.
//! - [`venv`]: locating the Python virtualenv and repository files.
//! - [`proc`]: `/proc` inspection and the [`proc::wait_until`] polling helper.
//! - [`http`]: a minimal HTTP/1.1 client for plain requests in tests.
//! - [`streamlit`]: a Streamlit server running a given app.
//! - [`pyapp`]: an app of another Python framework (Shiny) from its own virtualenv.
//! - [`stclient`]: a protocol-level Streamlit WebSocket client.
//! - [`stproto`]: the few Streamlit protobuf messages tests need, hand-coded.
//! - [`browser`]: headless Chromium driven over WebDriver.
//! - [`gateway`]: an idlegate gateway for tests, with its lifecycle events.
//! - [`upstream`]: a small in-process HTTP app that echoes what reached it.
//! - [`upload`]: uploading a file as Streamlit's file uploader does, at a set rate.
//! - [`idp`]: a real OpenID provider (npm `oidc-provider`) on loopback.
//! - [`netfault`]: a TCP relay that cuts connections, like a load balancer that drops them.
//! - [`redis`]: a real `redis-server` on loopback, to kill and start again.
//! - [`signin`]: requests as a browser makes them to idlegate's routes; the sign-in form.

pub mod browser;
pub mod gateway;
pub mod http;
pub mod idp;
pub mod netfault;
pub mod ports;
pub mod proc;
pub mod pyapp;
pub mod redis;
pub mod signin;
pub mod stclient;
pub mod stproto;
pub mod streamlit;
pub mod upload;
pub mod upstream;
pub mod venv;

pub use browser::Browser;
pub use fantoccini;
pub use ports::free_port;
pub use proc::wait_until;
pub use pyapp::PyApp;
pub use stclient::{StClient, StEvent};
pub use streamlit::{StreamlitApp, StreamlitOptions};
pub use upstream::{FakeUpstream, Reply};
