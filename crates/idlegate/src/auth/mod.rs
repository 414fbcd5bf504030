//! Signing in: who may use the app, their login session, and signing out.
//!
//! A login session spans all tabs of one signed-in browser. Its time to live slides with the
//! person's activity in any of those tabs (`login.idle_timeout`) up to `login.max_lifetime`;
//! when it runs out, the tracker ends every tab of it (reason `login_expired`) and the next
//! request shows the sign-in page. The browser holds only an opaque id in a signed cookie
//! ([`cookie`]); the state is in the [`crate::store`]. Identity reaches the app in headers that
//! idlegate sets and that browsers can never set themselves ([`identity`]).

pub mod access;
pub mod cookie;
pub mod identity;
pub mod oidc;
pub mod password;

pub use crate::store::{Identity, LoginSession};
pub use access::{Access, Auth, NotSignedIn};
