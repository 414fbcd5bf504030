//! idlegate: session time-to-live for Streamlit and other interactive data apps.
//!
//! One gateway in front of an unmodified app. It relays the app's HTTP and WebSocket
//! traffic, tells a person's activity from automatic traffic, ends tab sessions nobody is
//! using (telling the browser why), and makes the app free their memory.
//!
//! The data path, in module order: [`server`] (accept) → [`dispatch`] (route) →
//! [`proxy`] (forward, HTML injection, WebSocket relay) → [`tracker`] (tab sessions, deadline
//! policy, reaper) → [`store`] (what replicas will share); the tracker and [`auth`] publish
//! [`lifecycle`] events to subscribers. [`apps`] holds what idlegate knows about each
//! framework; [`routes`] are idlegate's own pages and APIs, built with [`web`]; [`client`] is
//! the script idlegate adds to the app's pages; [`launcher`] starts the app as a child
//! process. `docs/architecture.md` draws the layers and their rules.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod admin;
pub mod apps;
pub mod audit;
pub mod auth;
pub mod capacity;
pub mod cli;
pub mod client;
pub mod config;
pub mod csrf;
pub mod dispatch;
pub mod error;
pub mod launcher;
pub mod lifecycle;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod pages;
pub mod paths;
pub mod procfs;
pub mod proxy;
pub(crate) mod redact;
pub mod routes;
pub mod server;
pub mod store;
pub mod tracker;
pub mod web;
pub mod ws;

pub use config::Config;
pub use server::{Reloaded, Reloader, Server};
