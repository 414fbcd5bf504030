//! Streaming classifiers for Streamlit 1.67 WebSocket messages.
//!
//! Streamlit exchanges one protobuf message per binary WebSocket message:
//! `BackMsg` from browser to server and `ForwardMsg` from server to browser.
//! The proxy needs only a few facts from them (is a rerun automatic, which
//! session was created, is a script running), so [`BackMsgScanner`] and
//! [`ForwardMsgScanner`] walk the wire format as bytes arrive and descend
//! only into the handful of nested messages that carry those facts;
//! everything else, including multi-megabyte deltas, is skipped by length.
//!
//! Decoding follows protobuf semantics so that the classification matches
//! what the Streamlit server itself will decode: for scalars the last
//! occurrence wins, repeated occurrences of a message field are merged, the
//! last member of a oneof wins and switching the oneof member discards what
//! the previous member carried. A known field with an unexpected wire type is
//! treated as an unknown field, as protobuf parsers do.
//!
//! This module must not allocate per byte or per message (apart from the
//! returned session id), keep more than a fixed small amount of state, or
//! depend on any generated protobuf code.

mod back;
mod encode;
mod forward;

pub use super::protowire::ProtoError;
pub use back::*;
pub use encode::*;
pub use forward::*;

#[cfg(test)]
mod tests;
