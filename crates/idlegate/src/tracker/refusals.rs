//! Pages refused a new tab over a limit, remembered for a minute by their script's token, so
//! that the script's next status check learns why (a framework without a message that
//! navigates the page, like Bokeh's, could not tell it) and shows the page that says so.
//! Bounded: the oldest are forgotten first.

use std::collections::VecDeque;

use tokio::time::{Duration, Instant};

/// How long a refusal is remembered.
const KEPT_FOR: Duration = Duration::from_secs(60);
/// How many refusals are remembered at most.
const KEPT_MAX: usize = 1024;

/// The limit a page was refused over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedLimit {
    /// `tabs.max_per_user`.
    PerUser,
    /// `tabs.max_total` (or the memory limit).
    Total,
}

impl RefusedLimit {
    /// The limit's name, as metrics and the tab API give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerUser => "max_per_user",
            Self::Total => "max_total",
        }
    }
}

/// The remembered refusals, oldest first.
#[derive(Debug, Default)]
pub(super) struct Refusals {
    pages: VecDeque<(Instant, String, RefusedLimit)>,
}

impl Refusals {
    /// Remembers that the page with token `client` was refused over `limit`.
    pub fn add(&mut self, client: &str, limit: RefusedLimit, now: Instant) {
        self.expire(now);
        if self.pages.len() >= KEPT_MAX {
            self.pages.pop_front();
        }
        self.pages.push_back((now, client.to_owned(), limit));
    }

    /// The limit the page with token `client` was refused over, if it was, lately.
    pub fn find(&mut self, client: &str, now: Instant) -> Option<RefusedLimit> {
        self.expire(now);
        self.pages
            .iter()
            .rev()
            .find(|(_, token, _)| token == client)
            .map(|(_, _, limit)| *limit)
    }

    fn expire(&mut self, now: Instant) {
        while self
            .pages
            .front()
            .is_some_and(|(at, _, _)| now.duration_since(*at) > KEPT_FOR)
        {
            self.pages.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn refusals_are_kept_a_minute_and_bounded() {
        let mut refusals = Refusals::default();
        let start = Instant::now();
        refusals.add("a", RefusedLimit::Total, start);
        assert_eq!(refusals.find("a", start), Some(RefusedLimit::Total));
        assert_eq!(refusals.find("b", start), None);
        assert_eq!(
            refusals.find("a", start + KEPT_FOR + Duration::from_secs(1)),
            None
        );
        for n in 0..=KEPT_MAX {
            refusals.add(&n.to_string(), RefusedLimit::PerUser, start);
        }
        assert_eq!(refusals.pages.len(), KEPT_MAX);
        assert_eq!(refusals.find("0", start), None);
        assert_eq!(refusals.find("1", start), Some(RefusedLimit::PerUser));
    }
}
