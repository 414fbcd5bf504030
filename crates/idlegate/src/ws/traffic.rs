//! Counts of what the relay passes on: frames and bytes per direction, for the metrics
//! (`idlegate_websocket_frames_total`, `idlegate_websocket_bytes_total`). Shared by every
//! tab's relay; a relay adds once per chunk it reads, not per frame.

use std::sync::atomic::{AtomicU64, Ordering};

/// Which way bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the browser to the app.
    ToApp,
    /// From the app to the browser.
    ToBrowser,
}

impl Direction {
    /// Both directions, in counter order.
    pub const ALL: [Direction; 2] = [Direction::ToApp, Direction::ToBrowser];

    /// The name in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ToApp => "to_app",
            Self::ToBrowser => "to_browser",
        }
    }
}

/// Frames and bytes relayed since start, per direction.
#[derive(Debug, Default)]
pub struct Traffic {
    frames: [AtomicU64; 2],
    bytes: [AtomicU64; 2],
}

impl Traffic {
    /// Adds `frames` whole frames and `bytes` bytes relayed in `direction`.
    pub fn add(&self, direction: Direction, frames: u64, bytes: u64) {
        let i = direction as usize;
        if frames > 0 {
            self.frames[i].fetch_add(frames, Ordering::Relaxed);
        }
        self.bytes[i].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Frames relayed in `direction` (counted when a frame ends).
    pub fn frames(&self, direction: Direction) -> u64 {
        self.frames[direction as usize].load(Ordering::Relaxed)
    }

    /// Bytes relayed in `direction`, frame headers included.
    pub fn bytes(&self, direction: Direction) -> u64 {
        self.bytes[direction as usize].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_direction() {
        let traffic = Traffic::default();
        traffic.add(Direction::ToApp, 2, 100);
        traffic.add(Direction::ToApp, 0, 5);
        traffic.add(Direction::ToBrowser, 1, 7);
        assert_eq!(traffic.frames(Direction::ToApp), 2);
        assert_eq!(traffic.bytes(Direction::ToApp), 105);
        assert_eq!(traffic.frames(Direction::ToBrowser), 1);
        assert_eq!(traffic.bytes(Direction::ToBrowser), 7);
    }
}
