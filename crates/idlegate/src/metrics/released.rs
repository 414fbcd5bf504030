//! Memory the app gave back after tabs ended (launcher mode): the fall of the app's resident
//! memory from the first end of a burst of ends to [`QUIET`] after its last one, when the app
//! has let go of the sessions (idlegate ends them in the app and asks for a collection within
//! a few seconds). Tabs opened meanwhile add memory, so this is a lower bound.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;

use crate::apps::Runtime;

/// How long after the last end of a burst the app's memory is read again.
pub const QUIET: Duration = Duration::from_secs(10);

/// Bytes given back, given the app's memory at the first end of a burst and after it.
pub fn released(before: u64, after: u64) -> u64 {
    before.saturating_sub(after)
}

/// Waits for ends (`ended`), and adds what the app gave back after each burst of them to
/// `counter`, until the process ends.
pub async fn watch(app: Arc<dyn Runtime>, ended: Arc<Notify>, counter: Counter) {
    loop {
        ended.notified().await;
        let Some(before) = app.resident_bytes() else {
            continue;
        };
        // Until no tab has ended for QUIET.
        while tokio::time::timeout(QUIET, ended.notified()).await.is_ok() {}
        if let Some(after) = app.resident_bytes() {
            counter.inc_by(released(before, after));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct FakeApp(AtomicU64);

    impl Runtime for FakeApp {
        fn close_sessions(&self, _ids: &[&str]) -> bool {
            true
        }
        fn collect(&self) -> bool {
            true
        }
        fn resident_bytes(&self) -> Option<u64> {
            Some(self.0.load(Ordering::SeqCst))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_ends_counts_the_fall_once_it_is_quiet() {
        let app = Arc::new(FakeApp(AtomicU64::new(500)));
        let ended = Arc::new(Notify::new());
        let counter = Counter::default();
        tokio::spawn(watch(app.clone(), ended.clone(), counter.clone()));
        tokio::task::yield_now().await;
        // Two ends a few seconds apart, the app falling from 500 to 200 meanwhile.
        ended.notify_one();
        tokio::time::sleep(Duration::from_secs(3)).await;
        app.0.store(350, Ordering::SeqCst);
        ended.notify_one();
        tokio::time::sleep(Duration::from_secs(5)).await;
        app.0.store(200, Ordering::SeqCst);
        assert_eq!(counter.get(), 0, "not before it is quiet");
        tokio::time::sleep(QUIET).await;
        assert_eq!(counter.get(), 300);
        // Memory that grew meanwhile is not "given back".
        ended.notify_one();
        tokio::task::yield_now().await;
        app.0.store(260, Ordering::SeqCst);
        tokio::time::sleep(QUIET + Duration::from_secs(1)).await;
        assert_eq!(counter.get(), 300);
        assert_eq!(released(100, 40), 60);
    }
}
