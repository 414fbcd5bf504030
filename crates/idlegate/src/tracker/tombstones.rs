//! Ids of ended tabs (app session ids, page tokens), remembered for a while so a stale page
//! cannot resume what ended, and is told why instead.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::EndNotice;

/// How long an ended id is remembered.
const TOMBSTONE_TTL: Duration = Duration::from_secs(3600);
/// At most this many ended ids are remembered; the oldest are forgotten first.
const TOMBSTONE_CAP: usize = 100_000;

/// Ended ids and how they ended.
#[derive(Default)]
pub(super) struct Tombstones {
    reasons: HashMap<String, EndNotice>,
    order: VecDeque<(Instant, String)>,
}

impl Tombstones {
    pub(super) fn insert(&mut self, id: String, reason: EndNotice, now: Instant) {
        if self.reasons.insert(id.clone(), reason).is_none() {
            self.order.push_back((now + TOMBSTONE_TTL, id));
        }
        while self.order.len() > TOMBSTONE_CAP {
            if let Some((_, old)) = self.order.pop_front() {
                self.reasons.remove(&old);
            }
        }
    }

    pub(super) fn get(&self, id: &str) -> Option<EndNotice> {
        self.reasons.get(id).cloned()
    }

    pub(super) fn expire(&mut self, now: Instant) {
        while let Some((until, _)) = self.order.front() {
            if *until > now {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.reasons.remove(&id);
            }
        }
    }
}
