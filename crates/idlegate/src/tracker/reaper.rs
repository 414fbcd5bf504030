//! The reaper: one timer queue for all tab sessions.
//!
//! Each tab has at most one entry, at the deadline last computed for it. When an entry fires
//! the reaper recomputes the deadline from the tab's current state: activity since then has
//! pushed it later (re-armed without any work on the activity path), otherwise the tab ends.
//! State changes that can bring a deadline closer send the tab's id here to be re-armed.
//! Nothing here polls per session.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::time::{delay_queue, DelayQueue};

use super::{Shared, TabId, Tracker};

pub(super) async fn run(shared: Weak<Shared>, mut requests: mpsc::UnboundedReceiver<TabId>) {
    let mut queue: DelayQueue<TabId> = DelayQueue::new();
    let mut keys: HashMap<TabId, delay_queue::Key> = HashMap::new();
    loop {
        tokio::select! {
            request = requests.recv() => {
                let (Some(id), Some(tracker)) = (request, upgrade(&shared)) else {
                    return;
                };
                arm(&tracker, &mut queue, &mut keys, id);
            }
            Some(expired) = queue.next() => {
                let id = expired.into_inner();
                keys.remove(&id);
                let Some(tracker) = upgrade(&shared) else {
                    return;
                };
                match tracker.deadline_of(id) {
                    Some(deadline) if deadline.at <= Instant::now() => {
                        tracker.end(id, deadline.reason);
                    }
                    Some(_) => arm(&tracker, &mut queue, &mut keys, id),
                    None => {}
                }
            }
        }
    }
}

fn upgrade(shared: &Weak<Shared>) -> Option<Tracker> {
    shared
        .upgrade()
        .map(|shared: Arc<Shared>| Tracker { shared })
}

/// Puts the tab's entry at its current deadline, or removes it if it has none.
fn arm(
    tracker: &Tracker,
    queue: &mut DelayQueue<TabId>,
    keys: &mut HashMap<TabId, delay_queue::Key>,
    id: TabId,
) {
    match (tracker.deadline_of(id), keys.get(&id)) {
        (Some(deadline), Some(key)) => queue.reset_at(key, deadline.at),
        (Some(deadline), None) => {
            keys.insert(id, queue.insert_at(id, deadline.at));
        }
        (None, Some(_)) => {
            if let Some(key) = keys.remove(&id) {
                queue.remove(&key);
            }
        }
        (None, None) => {}
    }
}
