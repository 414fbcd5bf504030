//! What sign-in limits are keyed by, and how long sign-in fields may be.
//!
//! A client address is the IPv4 address, or the IPv6 /64 (RFC 4291 §2.5.4: the interface id
//! is the low 64 bits, which a client picks freely, so a /128 costs nothing to change). A
//! username is keyed by its SHA-256 (after trimming and lowercasing), so a key takes 32
//! bytes whatever was sent; sign-in fields longer than their limits are refused before any
//! other work.

use std::net::{IpAddr, Ipv6Addr};

use sha2::{Digest, Sha256};

/// Longest username accepted, in bytes.
pub const MAX_USERNAME_BYTES: usize = 256;
/// Longest password accepted, in bytes (NIST SP 800-63B asks for at least 64 characters).
pub const MAX_PASSWORD_BYTES: usize = 4096;
/// Largest sign-in form body accepted, in bytes: both fields at their limits, percent-encoded
/// (×3), and a return path.
/// Largest body of a page script's report, in bytes: reports are a few hundred.
pub const MAX_SMALL_BODY: usize = 4096;
/// How long a request to idlegate's own routes may take in all, its body included (a sign-in
/// waits at most 2 s for a password check, which takes well under a second).
pub const OWN_ROUTE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);
pub const MAX_SIGN_IN_BODY: usize = 3 * (MAX_USERNAME_BYTES + MAX_PASSWORD_BYTES) + 8192;

/// A client address as rate limits see it: IPv4 (an IPv4-mapped IPv6 address as its IPv4
/// address), or the /64 of an IPv6 address.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(network))
            }
        },
        v4 => v4,
    }
}

/// A username as rate limits see it: the SHA-256 of its trimmed, lowercased form.
pub fn username_key(user: &str) -> [u8; 32] {
    Sha256::digest(user.trim().to_lowercase().as_bytes()).into()
}

/// A sign-in field over its length limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormTooLong {
    #[error("the username is longer than {MAX_USERNAME_BYTES} bytes")]
    Username,
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    Password,
}

/// Checks the sign-in fields' lengths.
///
/// # Errors
/// [`FormTooLong`] naming the first field over its limit.
pub fn check_form(username: &str, password: &str) -> Result<(), FormTooLong> {
    if username.len() > MAX_USERNAME_BYTES {
        return Err(FormTooLong::Username);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(FormTooLong::Password);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_its_64_and_ipv4_is_itself() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            address_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            address_key(ip("2001:db8:1:2::7"))
        );
        assert_ne!(address_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(address_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(address_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn usernames_are_hashed_case_and_space_blind() {
        assert_eq!(username_key(" Alice"), username_key("alice"));
        assert_ne!(username_key("alice"), username_key("bob"));
        assert_eq!(username_key(&"x".repeat(1_500_000)).len(), 32);
    }

    #[test]
    fn long_fields_are_refused() {
        assert_eq!(check_form("alice", "pw"), Ok(()));
        let at_limit = "u".repeat(MAX_USERNAME_BYTES);
        assert_eq!(check_form(&at_limit, "pw"), Ok(()));
        assert_eq!(
            check_form(&format!("{at_limit}u"), "pw"),
            Err(FormTooLong::Username)
        );
        assert_eq!(
            check_form("alice", &"p".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(FormTooLong::Password)
        );
    }
}
