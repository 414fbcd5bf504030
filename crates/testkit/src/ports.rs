//! Ephemeral loopback ports for test servers.
//!
//! Tests never use fixed ports: parallel test processes (nextest runs each
//! test in its own process) would collide, and a developer's machine may
//! already use any well-known port.

use std::net::{Ipv4Addr, TcpListener};

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is found by binding port 0 and letting the kernel choose; the
/// listener is closed before returning so that a child process can bind it.
/// There is an unavoidable window in which another process could take the
/// port; the kernel hands out ephemeral ports round-robin, which makes this
/// rare enough for tests.
///
/// # Panics
///
/// Panics if the loopback interface cannot be bound at all, which means the
/// test environment itself is broken.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("binding 127.0.0.1:0 must succeed to allocate a test port");
    listener
        .local_addr()
        .expect("a bound listener has a local address")
        .port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("port should be free again");
    }
}
