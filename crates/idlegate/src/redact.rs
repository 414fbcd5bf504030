//! Short, salted hashes that stand in for secrets in logs.
//!
//! App session ids let anyone who knows them resume a session, so they never appear in logs in
//! clear. The salt is random per process: equal ids give equal hashes within one process (so a
//! session can be followed through its log lines) but cannot be looked up or matched across
//! processes.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

fn salt() -> &'static [u8; 16] {
    static SALT: OnceLock<[u8; 16]> = OnceLock::new();
    SALT.get_or_init(rand::random)
}

/// The first 8 hex digits of a salted SHA-256 of `secret`.
pub fn short_hash(secret: &str) -> String {
    let digest = Sha256::new()
        .chain_update(salt())
        .chain_update(secret.as_bytes())
        .finalize();
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_short_stable_and_hides_the_input() {
        let id = "a6d10ebe-1988-4e2e-ab73-16d4649c3f08";
        let h = short_hash(id);
        assert_eq!(h.len(), 8);
        assert_eq!(h, short_hash(id));
        assert_ne!(h, short_hash("another"));
        assert!(!id.contains(&h));
    }
}
