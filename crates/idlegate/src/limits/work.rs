//! A bound on expensive work at once (Argon2 checks, page rewrites): a fixed number of turns,
//! and a bounded wait for one. And a bound on work handed to a background task
//! ([`Queue`]): a fixed number of items waiting, the rest dropped and counted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::{Limit, Limits};

/// How many items a [`Queue`] holds at most.
pub const QUEUE_SIZE: usize = 4096;

/// At most `size` at once; a caller waits at most `wait` for a turn.
#[derive(Debug)]
pub struct Bound {
    turns: Arc<Semaphore>,
    size: usize,
    wait: Duration,
    peak: AtomicUsize,
}

/// A turn; the next caller may go when it is dropped.
#[derive(Debug)]
pub struct Turn {
    _permit: OwnedSemaphorePermit,
    /// Whether the caller had to wait for it.
    pub waited: bool,
}

/// No turn came within the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too much of this work at once")]
pub struct Busy;

impl Bound {
    /// `size` turns (at least 1), waiting at most `wait` for one.
    pub fn new(size: usize, wait: Duration) -> Self {
        let size = size.max(1);
        Self {
            turns: Arc::new(Semaphore::new(size)),
            size,
            wait,
            peak: AtomicUsize::new(0),
        }
    }

    /// Waits for a turn, at most the bound's wait.
    ///
    /// # Errors
    /// [`Busy`] when none came in time.
    pub async fn turn(&self) -> Result<Turn, Busy> {
        let (permit, waited) = match self.turns.clone().try_acquire_owned() {
            Ok(permit) => (permit, false),
            Err(_) => {
                let permit = tokio::time::timeout(self.wait, self.turns.clone().acquire_owned())
                    .await
                    .map_err(|_| Busy)?
                    .map_err(|_| Busy)?;
                (permit, true)
            }
        };
        self.peak.fetch_max(self.in_use(), Ordering::Relaxed);
        Ok(Turn {
            _permit: permit,
            waited,
        })
    }

    /// How many turns are taken now.
    pub fn in_use(&self) -> usize {
        self.size - self.turns.available_permits()
    }

    /// The most turns ever taken at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// The bound.
    pub fn size(&self) -> usize {
        self.size
    }
}

/// Work for a background task that talks to the app (releasing an ended tab's uploads,
/// ending its session there), handed over without waiting. At most [`QUEUE_SIZE`] items
/// wait; while the app answers too slowly for that, further items are dropped and counted
/// as [`Limit::AppWorkDropped`]: an unbounded queue grew with every ended tab behind a slow
/// app, and waiting would put the app's pace on the path that ends tabs.
#[derive(Debug)]
pub struct Queue<T> {
    items: mpsc::Sender<T>,
    limits: Arc<Limits>,
}

impl<T> Queue<T> {
    /// A queue and the receiver its task reads.
    pub fn new(limits: Arc<Limits>) -> (Self, mpsc::Receiver<T>) {
        let (items, rx) = mpsc::channel(QUEUE_SIZE);
        (Self { items, limits }, rx)
    }

    /// Hands `item` over, or drops it (counted) when the queue is full. An item for a task
    /// that has stopped (the runtime is ending) is dropped silently.
    pub fn push(&self, item: T) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.items.try_send(item) {
            self.limits.hit(Limit::AppWorkDropped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_most_size_at_once_and_a_bounded_wait() {
        let bound = Bound::new(2, Duration::from_secs(2));
        let a = bound.turn().await.unwrap();
        let b = bound.turn().await.unwrap();
        assert!(!a.waited && !b.waited);
        assert_eq!(bound.in_use(), 2);
        let started = tokio::time::Instant::now();
        assert_eq!(bound.turn().await.unwrap_err(), Busy);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        // A turn freed during the wait goes to the waiter.
        let release = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(a);
        };
        let (turn, ()) = tokio::join!(bound.turn(), release);
        assert!(turn.unwrap().waited);
        assert_eq!(bound.peak(), 2);
    }

    #[tokio::test]
    async fn a_queue_holds_a_bounded_number_and_counts_the_rest() {
        let limits = Limits::new(&crate::Config::builder().build().unwrap());
        let (queue, mut rx) = Queue::new(limits.clone());
        // A task that never reads (an app that never answers): the queue stops growing.
        for i in 0..QUEUE_SIZE + 10 {
            queue.push(vec![0u8; 64 + i % 2]);
        }
        assert_eq!(limits.hits().get(Limit::AppWorkDropped), 10);
        assert_eq!(rx.len(), QUEUE_SIZE);
        // Room again once the task catches up.
        rx.recv().await.unwrap();
        queue.push(vec![1]);
        assert_eq!(limits.hits().get(Limit::AppWorkDropped), 10);
        // A stopped task is not a limit.
        drop(rx);
        queue.push(vec![2]);
        assert_eq!(limits.hits().get(Limit::AppWorkDropped), 10);
    }
}
