//! Garbage collections in the app's process a while after sessions end, one for many.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::kind::Runtime;

/// Asks a [`Runtime`] for a collection once a given time passed after the latest request:
/// ends that come close together share one collection, which still comes after the last of
/// them had time to be freed.
#[derive(Clone)]
pub struct CollectLater {
    runtime: Arc<dyn Runtime>,
    /// When the scheduled collection is due, if one is.
    due: Arc<Mutex<Option<Instant>>>,
}

impl CollectLater {
    pub fn new(runtime: Arc<dyn Runtime>) -> Self {
        Self {
            runtime,
            due: Arc::default(),
        }
    }

    /// A collection `after` from now (or later, when another request is later). Call it on a
    /// Tokio runtime.
    pub fn request(&self, after: Duration) {
        let at = Instant::now() + after;
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        let scheduled = due.is_some();
        if due.is_none_or(|current| current < at) {
            *due = Some(at);
        }
        drop(due);
        if scheduled {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let Some(at) = *this.due.lock().unwrap_or_else(|p| p.into_inner()) else {
                    return;
                };
                tokio::time::sleep_until(at).await;
                let mut due = this.due.lock().unwrap_or_else(|p| p.into_inner());
                if due.is_some_and(|current| current > at) {
                    continue;
                }
                *due = None;
                drop(due);
                this.runtime.collect();
                return;
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
    async fn requests_close_together_share_one_collection_after_the_last() {
        let runtime = Arc::new(Counting::default());
        let later = CollectLater::new(runtime.clone());
        later.request(Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(3)).await;
        later.request(Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(4900)).await;
        assert_eq!(
            runtime.0.load(Ordering::SeqCst),
            0,
            "not before the last one's time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(runtime.0.load(Ordering::SeqCst), 1);
        later.request(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(runtime.0.load(Ordering::SeqCst), 2);
    }
}
