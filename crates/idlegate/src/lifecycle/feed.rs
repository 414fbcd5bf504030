//! A [`Subscriber`] that hands every event to any number of async readers (a live admin
//! page, tests that wait for an event instead of sleeping). Sending never waits: a reader
//! that falls more than the feed's capacity behind loses the oldest events and is told how
//! many (`RecvError::Lagged`).

use tokio::sync::broadcast;

use super::{Event, Subscriber};

/// Events for whoever reads them.
#[derive(Debug)]
pub struct Feed {
    sender: broadcast::Sender<Event>,
}

impl Feed {
    /// A feed that keeps up to `capacity` events for its slowest reader.
    pub fn new(capacity: usize) -> Self {
        Self {
            sender: broadcast::channel(capacity.max(1)).0,
        }
    }

    /// A reader of the events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}

impl Subscriber for Feed {
    fn on_event(&self, event: &Event) {
        // No reader: nothing to do.
        let _ = self.sender.send(event.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_get_events_in_order_and_a_slow_one_is_told_it_lagged() {
        let feed = Feed::new(2);
        let mut reader = feed.subscribe();
        for tab in 1..=3 {
            feed.on_event(&Event::Disconnected { tab });
        }
        assert!(matches!(
            reader.recv().await,
            Err(broadcast::error::RecvError::Lagged(1))
        ));
        assert_eq!(reader.recv().await.unwrap(), Event::Disconnected { tab: 2 });
        assert_eq!(reader.recv().await.unwrap(), Event::Disconnected { tab: 3 });
    }
}
