//! The web layer's shared pieces, below every handler: idlegate's own URLs ([`urls`]), its
//! responses and the one mapping of errors to responses ([`respond`]), and every cookie it
//! reads or writes ([`cookies`]). Handlers of idlegate's routes and the proxied path both use
//! these, so a status, a `Cache-Control` or a `Set-Cookie` is decided in one place.

pub mod cookies;
pub mod respond;
pub mod urls;

use std::net::SocketAddr;

pub use respond::{error_response, html, see_other, text, uncached, Form};
pub use urls::{
    busy_url, ended_url, ended_url_returning, is_app_path, refused_url, sign_in_url, PREFIX,
    TAB_API,
};

/// Body type of every response idlegate sends.
pub type Body = axum::body::Body;

/// The TCP peer of a request to idlegate's routes (the proxy in front, or the browser), as
/// opposed to the client address `ConnectInfo` carries.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The scheme the browser used: `https` when a trusted proxy in front says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheme(pub &'static str);
