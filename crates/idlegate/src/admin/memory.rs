//! The app's memory over the last hour, sampled every [`EVERY`] while the admin listener
//! serves (launcher mode), for the admin page's chart.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::AdminState;
use crate::apps::Runtime;

/// How often the app's memory is sampled.
pub const EVERY: Duration = Duration::from_secs(30);
/// Samples kept: one hour.
const KEPT: usize = 120;

/// Samples of `(Unix seconds, resident bytes)`, oldest first.
#[derive(Default)]
pub struct MemoryHistory {
    samples: Mutex<VecDeque<(f64, u64)>>,
}

impl MemoryHistory {
    fn push(&self, bytes: u64) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples.len() == KEPT {
            samples.pop_front();
        }
        samples.push_back((now, bytes));
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<(f64, u64)> {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples.iter().copied().collect()
    }
}

/// Samples the app's memory at once and every [`EVERY`] until `stop`.
pub(super) async fn sample(state: Arc<AdminState>, app: Arc<dyn Runtime>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Some(bytes) = app.resident_bytes() {
            state.memory.push(bytes);
        }
    }
}
