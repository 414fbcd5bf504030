//! A bounded store of rate-limit buckets (GCRA, the generic cell rate algorithm of ITU-T
//! I.371, as `governor` uses), keyed by anything small.
//!
//! Written here rather than taken from `governor` because idlegate needs two things its keyed
//! store lacks: a bound on the number of keys (an attacker must not grow it without limit),
//! and reading a bucket without consuming from it (a username's failures are counted, not
//! its attempts).
//!
//! Each key holds one instant, its theoretical arrival time (`tat`): the key owes the time
//! from now until `tat`. Taking one costs `interval`; a take is allowed while the debt after
//! it stays within `burst × interval`. A key whose `tat` has passed owes nothing and is
//! forgotten by [`Buckets::sweep`]. When the store is full, expired keys go first, then the
//! eighth of the keys closest to expiry: they limit least, and a flood of fresh keys (which
//! owe the most) never pushes out the debt of the keys an attacker is limited by.

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;

/// A rate: `burst` at once, then one per `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    interval: Duration,
    burst: u32,
}

impl Rate {
    /// `n` per minute, `n` at once.
    pub fn per_minute(n: NonZeroU32) -> Self {
        Self {
            interval: Duration::from_secs(60) / n.get(),
            burst: n.get(),
        }
    }

    /// Remembers one event for `span`: a key owes for `span` after its last charge.
    pub fn remember(span: Duration) -> Self {
        Self {
            interval: span,
            burst: 1,
        }
    }

    /// The most a key may owe.
    fn ceiling(self) -> Duration {
        self.interval * self.burst
    }
}

/// Keys to buckets, at most `capacity` of them.
#[derive(Debug)]
pub struct Buckets<K> {
    /// Swapped by [`Buckets::set_rate`]; read once per operation.
    rate: ArcSwap<Rate>,
    capacity: usize,
    map: Mutex<HashMap<K, Instant>>,
}

/// What a take did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Whether the key had room (and was charged).
    pub allowed: bool,
    /// How many other keys were forgotten to make room.
    pub evicted: usize,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    /// An empty store of at most `capacity` keys (at least 8).
    pub fn new(rate: Rate, capacity: usize) -> Self {
        Self {
            rate: ArcSwap::from_pointee(rate),
            capacity: capacity.max(8),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Charges at `rate` from now on; what keys owe already stays owed (capped at the new
    /// ceiling by the next charge).
    pub fn set_rate(&self, rate: Rate) {
        self.rate.store(std::sync::Arc::new(rate));
    }

    fn rate(&self) -> Rate {
        **self.rate.load()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Instant>> {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What `key` owes at `now`.
    fn debt(map: &HashMap<K, Instant>, key: &K, now: Instant) -> Duration {
        map.get(key)
            .map_or(Duration::ZERO, |tat| tat.saturating_duration_since(now))
    }

    /// Charges `key` one if it has room.
    pub fn try_take(&self, key: &K, now: Instant) -> Taken {
        let rate = self.rate();
        let mut map = self.lock();
        let debt = Self::debt(&map, key, now);
        if debt + rate.interval > rate.ceiling() {
            return Taken {
                allowed: false,
                evicted: 0,
            };
        }
        let evicted = self.make_room(&mut map, key, now);
        map.insert(key.clone(), now + debt + rate.interval);
        Taken {
            allowed: true,
            evicted,
        }
    }

    /// Charges `key` one whether or not it has room (its debt stays within the ceiling).
    /// Returns how many other keys were forgotten to make room.
    pub fn add(&self, key: &K, now: Instant) -> usize {
        let rate = self.rate();
        let mut map = self.lock();
        let debt = Self::debt(&map, key, now);
        let evicted = self.make_room(&mut map, key, now);
        let owed = (debt + rate.interval).min(rate.ceiling());
        map.insert(key.clone(), now + owed);
        evicted
    }

    /// Whether `key` has no room left: its next [`Buckets::try_take`] would fail.
    pub fn over(&self, key: &K, now: Instant) -> bool {
        let rate = self.rate();
        Self::debt(&self.lock(), key, now) + rate.interval > rate.ceiling()
    }

    /// Whether `key` owes anything (was charged within the last `burst × interval`).
    pub fn owes(&self, key: &K, now: Instant) -> bool {
        !Self::debt(&self.lock(), key, now).is_zero()
    }

    /// Forgets keys that owe nothing. Returns how many.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|_, tat| *tat > now);
        before - map.len()
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Before `key` is inserted into a full store: forgets expired keys, then the eighth
    /// closest to expiry. Returns how many keys that owed something were forgotten.
    fn make_room(&self, map: &mut HashMap<K, Instant>, key: &K, now: Instant) -> usize {
        if map.len() < self.capacity || map.contains_key(key) {
            return 0;
        }
        map.retain(|_, tat| *tat > now);
        if map.len() < self.capacity {
            return 0;
        }
        let mut tats: Vec<Instant> = map.values().copied().collect();
        let nth = tats.len() / 8;
        let (_, threshold, _) = tats.select_nth_unstable(nth);
        let threshold = *threshold;
        let before = map.len();
        map.retain(|_, tat| *tat > threshold);
        before - map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(n: u32) -> Rate {
        Rate::per_minute(NonZeroU32::new(n).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_one_per_interval() {
        let buckets = Buckets::new(rate(10), 100);
        let now = Instant::now();
        for _ in 0..10 {
            assert!(buckets.try_take(&"a", now).allowed);
        }
        assert!(!buckets.try_take(&"a", now).allowed);
        assert!(buckets.over(&"a", now));
        // Another key is not affected.
        assert!(buckets.try_take(&"b", now).allowed);
        // One interval (6 s) later there is room for exactly one more.
        let later = now + Duration::from_secs(6);
        assert!(!buckets.over(&"a", later));
        assert!(buckets.try_take(&"a", later).allowed);
        assert!(!buckets.try_take(&"a", later).allowed);
        // A minute after the last take, the key owes nothing and is swept.
        let idle = later + Duration::from_secs(60);
        assert!(!buckets.owes(&"a", idle));
        assert_eq!(buckets.sweep(idle), 2);
        assert!(buckets.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn reading_does_not_charge_and_add_is_capped() {
        let buckets = Buckets::new(rate(2), 100);
        let now = Instant::now();
        assert!(!buckets.owes(&1, now));
        assert!(!buckets.over(&1, now));
        assert!(buckets.is_empty(), "reading must not insert");
        for _ in 0..100 {
            buckets.add(&1, now);
        }
        assert!(buckets.over(&1, now));
        // However often it was charged, the debt is at most a minute.
        assert!(!buckets.owes(&1, now + Duration::from_secs(60)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_store_forgets_the_keys_closest_to_expiry() {
        let buckets = Buckets::new(rate(10), 16);
        let start = Instant::now();
        // Key 0 is over its limit: the state that matters.
        for _ in 0..10 {
            buckets.try_take(&0, start);
        }
        let mut evicted = 0;
        for key in 1..1000 {
            let now = start + Duration::from_millis(key);
            evicted += buckets.try_take(&key, now).evicted;
            assert!(buckets.len() <= 16);
        }
        assert!(evicted > 0);
        assert!(
            buckets.over(&0, start + Duration::from_secs(1)),
            "a flood of fresh keys must not forget a key over its limit"
        );
    }
}
