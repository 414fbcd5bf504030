//! Who may try a password, and what a failed try costs.
//!
//! The rule, built so that nobody can lock another person out:
//!
//! 1. Every attempt is charged to its client address ([`super::keys::address_key`]) at
//!    `login.attempts_per_minute`. An address over it gets 429 and nothing else is charged or
//!    looked at: a flood from one address costs nobody else anything.
//! 2. Only a *failed* password charges the username, and the (username, address) pair.
//! 3. A username whose failures are over `login.attempts_per_minute` is refused (429) only
//!    from addresses that failed for it in the last minute. Its owner, from any address
//!    that did not fail for it, still signs in; a guesser spread over many addresses gets one
//!    guess per address per minute at that username (and each address stays under rule 1).
//!
//! Who shares an address with an attacker (one NAT) shares the attacker's address limit:
//! that is the cost of rule 1, and why `proxy.trusted_proxies` must be set behind a proxy.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::buckets::{Buckets, Rate};
use super::keys::{address_key, username_key};

/// Most keys each sign-in store holds (about 100 bytes each).
pub const MAX_KEYS: usize = 100_000;
/// How long an address's failure for a username is remembered.
pub const PAIR_MEMORY: Duration = Duration::from_secs(60);

/// Why a sign-in attempt was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client address is over its attempts.
    Address,
    /// The username is over its failures, and this address failed for it.
    Username,
}

/// The decision on one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// `None`: go ahead and check the password.
    pub refusal: Option<Refusal>,
    /// Keys forgotten to make room (a store was full).
    pub evicted: usize,
}

/// Sign-in attempt limits: per address, per username's failures, per (username, address)
/// failures; each store bounded to [`MAX_KEYS`].
#[derive(Debug)]
pub struct SignInLimits {
    by_address: Buckets<IpAddr>,
    user_failures: Buckets<[u8; 32]>,
    pair_failures: Buckets<[u8; 32]>,
}

fn pair_key(user: &[u8; 32], address: IpAddr) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(user);
    match address {
        IpAddr::V4(v4) => hash.update(v4.octets()),
        IpAddr::V6(v6) => hash.update(v6.octets()),
    }
    hash.finalize().into()
}

impl SignInLimits {
    /// Limits of `per_minute` attempts per address and failures per username.
    pub fn new(per_minute: NonZeroU32) -> Self {
        let rate = Rate::per_minute(per_minute);
        Self {
            by_address: Buckets::new(rate, MAX_KEYS),
            user_failures: Buckets::new(rate, MAX_KEYS),
            pair_failures: Buckets::new(Rate::remember(PAIR_MEMORY), MAX_KEYS),
        }
    }

    /// Allows `per_minute` attempts per address and failures per username from now on
    /// (`login.attempts_per_minute`, on a configuration reload).
    pub fn set_per_minute(&self, per_minute: NonZeroU32) {
        let rate = Rate::per_minute(per_minute);
        self.by_address.set_rate(rate);
        self.user_failures.set_rate(rate);
    }

    /// Decides on an attempt for `user` from `client` (rules 1 and 3), charging the address.
    pub fn admit(&self, client: IpAddr, user: &str, now: Instant) -> Decision {
        let address = address_key(client);
        let taken = self.by_address.try_take(&address, now);
        let refusal = if !taken.allowed {
            Some(Refusal::Address)
        } else {
            let user = username_key(user);
            (self.user_failures.over(&user, now)
                && self.pair_failures.owes(&pair_key(&user, address), now))
            .then_some(Refusal::Username)
        };
        Decision {
            refusal,
            evicted: taken.evicted,
        }
    }

    /// Charges a failed password for `user` from `client` (rule 2). Returns how many keys were
    /// forgotten to make room.
    pub fn failed(&self, client: IpAddr, user: &str, now: Instant) -> usize {
        let address = address_key(client);
        let user = username_key(user);
        self.user_failures.add(&user, now) + self.pair_failures.add(&pair_key(&user, address), now)
    }

    /// Forgets entries that limit nobody any more.
    pub fn sweep(&self, now: Instant) {
        self.by_address.sweep(now);
        self.user_failures.sweep(now);
        self.pair_failures.sweep(now);
    }

    /// How many keys the stores hold in all.
    pub fn keys(&self) -> usize {
        self.by_address.len() + self.user_failures.len() + self.pair_failures.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// An attempt that fails its password when admitted; returns the refusal, if any.
    fn fail(limits: &SignInLimits, client: &str, user: &str, now: Instant) -> Option<Refusal> {
        let decision = limits.admit(ip(client), user, now);
        if decision.refusal.is_none() {
            limits.failed(ip(client), user, now);
        }
        decision.refusal
    }

    #[tokio::test(start_paused = true)]
    async fn one_address_cannot_lock_a_user_out() {
        let limits = SignInLimits::new(NonZeroU32::new(10).unwrap());
        let now = Instant::now();
        for _ in 0..10 {
            assert_eq!(fail(&limits, "192.0.2.1", "nobody", now), None);
        }
        for _ in 0..11 {
            assert_eq!(
                fail(&limits, "192.0.2.1", "alice", now),
                Some(Refusal::Address)
            );
        }
        // The refused attempts charged nothing to alice.
        assert_eq!(limits.admit(ip("192.0.2.2"), "alice", now).refusal, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_user_over_its_failures_is_refused_only_where_it_failed() {
        let limits = SignInLimits::new(NonZeroU32::new(10).unwrap());
        let now = Instant::now();
        for client in ["192.0.2.1", "192.0.2.2"] {
            for _ in 0..5 {
                assert_eq!(fail(&limits, client, "Alice", now), None);
            }
        }
        // Both addresses have attempts left, but failed for alice, who is over her failures
        // (one is forgiven every 6 s).
        let later = now + Duration::from_secs(1);
        assert_eq!(
            limits.admit(ip("192.0.2.1"), "alice", later).refusal,
            Some(Refusal::Username)
        );
        // They may try other usernames, and alice from elsewhere is not refused.
        assert_eq!(limits.admit(ip("192.0.2.2"), "bob", later).refusal, None);
        assert_eq!(limits.admit(ip("192.0.2.9"), "alice", later).refusal, None);
        // A spread guesser gets one failure per address while alice stays over.
        assert_eq!(fail(&limits, "198.51.100.1", "alice", later), None);
        assert_eq!(
            fail(&limits, "198.51.100.1", "alice", later),
            Some(Refusal::Username)
        );
        // A minute on, everything is forgiven and swept.
        let done = later + Duration::from_secs(61);
        assert_eq!(limits.admit(ip("192.0.2.1"), "alice", done).refusal, None);
        limits.sweep(done + Duration::from_secs(60));
        assert_eq!(limits.keys(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_ipv6_client_is_limited_per_64() {
        let limits = SignInLimits::new(NonZeroU32::new(3).unwrap());
        let now = Instant::now();
        for i in 0..3 {
            assert_eq!(fail(&limits, &format!("2001:db8::{i}"), "x", now), None);
        }
        assert_eq!(
            fail(&limits, "2001:db8::ffff:1", "y", now),
            Some(Refusal::Address)
        );
        assert_eq!(fail(&limits, "2001:db8:0:1::1", "y", now), None);
    }
}
