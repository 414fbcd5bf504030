//! A bound on expensive work at once (Argon2 checks, page rewrites): a fixed number of turns,
//! and a bounded wait for one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
}
