//! Garbage collections in the app's process a while after sessions end, one for many.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::kind::Runtime;

/// Asks a [`Runtime`] for a collection once a given time passed after requests: requests
/// made before a scheduled collection is due share it, and requests after the one that
/// scheduled it get one more collection, when the latest of them is due. However often
/// sessions end, a collection comes at most one delay after each.
#[derive(Clone)]
pub struct CollectLater {
    runtime: Arc<dyn Runtime>,
    due: Arc<Mutex<Due>>,
}

/// When the scheduled collection is due, and the latest request that came after it.
#[derive(Debug, Default)]
struct Due {
    next: Option<Instant>,
    latest: Option<Instant>,
}

impl CollectLater {
    pub fn new(runtime: Arc<dyn Runtime>) -> Self {
        Self {
            runtime,
            due: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Due> {
        self.due.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A collection `after` from now. Call it on a Tokio runtime.
    pub fn request(&self, after: Duration) {
        let at = Instant::now() + after;
        let mut due = self.lock();
        if due.next.is_some() {
            due.latest = due.latest.max(Some(at));
            return;
        }
        due.next = Some(at);
        drop(due);
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let Some(at) = this.lock().next else {
                    return;
                };
                tokio::time::sleep_until(at).await;
                this.runtime.collect();
                let mut due = this.lock();
                due.next = due.latest.take().filter(|latest| *latest > at);
                if due.next.is_none() {
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Runtime for Counting {
        fn close_sessions(&self, _ids: &[&str]) -> bool {
            true
        }
        fn collect(&self) -> bool {
            self.0.fetch_add(1, Ordering::SeqCst);
            true
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_request_is_collected_at_most_one_delay_later_however_many_come() {
        let runtime = Arc::new(Counting::default());
        let count = || runtime.0.load(Ordering::SeqCst);
        let later = CollectLater::new(runtime.clone());
        later.request(Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(3)).await;
        later.request(Duration::from_secs(5));
        later.request(Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(count(), 1, "the first one's collection comes on time");
        tokio::time::sleep(Duration::from_millis(2800)).await;
        assert_eq!(count(), 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            count(),
            2,
            "one more for those after it, when the last is due"
        );
        // Ends every second, forever: collections still come every delay.
        for _ in 0..12 {
            later.request(Duration::from_secs(5));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert!(count() >= 4, "{} collections", count());
        tokio::time::sleep(Duration::from_secs(6)).await;
        let settled = count();
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(count(), settled, "nothing without requests");
    }
}
