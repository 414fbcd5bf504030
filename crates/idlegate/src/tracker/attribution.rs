//! Who caused a tab's requests to the app: a person, or the page itself.
//!
//! Under the input rule (the page script reports), a request the page sends the app is a
//! person's only if the script saw a person's input right before the page sent it. The script
//! tells the server when that happened ("the page sent a message to the app right after a
//! person's input, this long ago"), in a report that travels beside the app's socket, so it
//! may arrive before or after the request itself. This module pairs the two by time: each
//! reported send claims the one request that arrived closest to it, within [`MATCH_WINDOW`].
//! A request that no reported send claims is unattributed: a component on a timer, a lazy
//! load, a script in the page.
//!
//! Pure bookkeeping: no clock reads (callers pass the time), no locks, bounded memory.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// How far apart a reported send and a request's arrival may be and still be the same
/// message. Both leave the browser together; the report's estimate of the send time is off
/// by the difference of two one-way delays and the script's timer resolution.
pub const MATCH_WINDOW: Duration = Duration::from_secs(1);
/// How long before an upload starts a person's send may be and still be what started it
/// (an app may ask for upload URLs over its socket first, then upload).
pub const UPLOAD_WINDOW: Duration = Duration::from_secs(10);
/// How long a reported send waits for its request, and is remembered for uploads.
const SEND_TTL: Duration = Duration::from_secs(15);
/// At most this many requests and sends are remembered; older ones are forgotten.
const HISTORY: usize = 16;

/// A person's send the page script reported.
#[derive(Debug, Clone, Copy)]
struct HumanSend {
    at: Instant,
    /// Whether a request has been attributed to it already.
    claimed: bool,
}

/// Recent requests and reported sends of one tab.
#[derive(Debug, Default)]
pub struct Attribution {
    /// Requests no reported send has claimed yet: arrival and request id.
    unattributed: VecDeque<(Instant, u64)>,
    human_sends: VecDeque<HumanSend>,
}

impl Attribution {
    /// A request with id `id` arrived at `at`. Returns whether a person caused it (a reported
    /// send, not yet claimed, is close enough); otherwise it waits for a later report.
    pub fn request(&mut self, at: Instant, id: u64) -> bool {
        self.expire(at);
        let closest = self
            .human_sends
            .iter_mut()
            .filter(|send| !send.claimed && distance(send.at, at) <= MATCH_WINDOW)
            .min_by_key(|send| distance(send.at, at));
        if let Some(send) = closest {
            send.claimed = true;
            return true;
        }
        if self.unattributed.len() == HISTORY {
            self.unattributed.pop_front();
        }
        self.unattributed.push_back((at, id));
        false
    }

    /// The page script reports that the page sent the app a message right after a person's
    /// input, at `at` (by the server's clock); `now` is when the report arrived. Returns the
    /// id of the request that message was, if it already arrived.
    pub fn human_send(&mut self, at: Instant, now: Instant) -> Option<u64> {
        self.expire(now);
        let closest = self
            .unattributed
            .iter()
            .enumerate()
            .filter(|(_, (arrived, _))| distance(*arrived, at) <= MATCH_WINDOW)
            .min_by_key(|(_, (arrived, _))| distance(*arrived, at))
            .map(|(index, _)| index);
        let claimed = closest.and_then(|index| self.unattributed.remove(index));
        if self.human_sends.len() == HISTORY {
            self.human_sends.pop_front();
        }
        self.human_sends.push_back(HumanSend {
            at,
            claimed: claimed.is_some(),
        });
        claimed.map(|(_, id)| id)
    }

    /// Whether a person's send came shortly before an upload that started at `started` (or
    /// just after: the report is a guess to within [`MATCH_WINDOW`]).
    pub fn started_by_person(&self, started: Instant) -> bool {
        self.human_sends
            .iter()
            .any(|send| send.at <= started + MATCH_WINDOW && send.at + UPLOAD_WINDOW >= started)
    }

    fn expire(&mut self, now: Instant) {
        while let Some((arrived, _)) = self.unattributed.front() {
            if *arrived + SEND_TTL > now {
                break;
            }
            self.unattributed.pop_front();
        }
        while let Some(send) = self.human_sends.front() {
            if send.at + SEND_TTL > now {
                break;
            }
            self.human_sends.pop_front();
        }
    }
}

fn distance(a: Instant, b: Instant) -> Duration {
    if a > b {
        a - b
    } else {
        b - a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_report_after_the_request_attributes_it() {
        let t0 = Instant::now();
        let mut a = Attribution::default();
        assert!(!a.request(t0, 1), "no report yet");
        assert_eq!(a.human_send(t0 - ms(20), t0 + ms(40)), Some(1));
        // Claimed once only.
        assert_eq!(a.human_send(t0, t0 + ms(50)), None);
    }

    #[test]
    fn a_report_before_the_request_attributes_it_when_it_arrives() {
        let t0 = Instant::now();
        let mut a = Attribution::default();
        assert_eq!(a.human_send(t0, t0), None);
        assert!(a.request(t0 + ms(30), 7));
        assert!(!a.request(t0 + ms(60), 8), "one send, one request");
    }

    #[test]
    fn a_timer_request_next_to_a_persons_send_stays_unattributed() {
        // A click's message, then 400 ms later a component timer's: the report names one
        // send, which claims the closer request.
        let t0 = Instant::now();
        let mut a = Attribution::default();
        assert!(!a.request(t0, 1));
        assert!(!a.request(t0 + ms(400), 2));
        assert_eq!(a.human_send(t0 + ms(10), t0 + ms(500)), Some(1));
        assert_eq!(a.unattributed.len(), 1);
        assert_eq!(a.unattributed[0].1, 2);
    }

    #[test]
    fn far_apart_sends_and_requests_never_pair() {
        let t0 = Instant::now();
        let mut a = Attribution::default();
        assert!(!a.request(t0, 1));
        assert_eq!(a.human_send(t0 + ms(1500), t0 + ms(1500)), None);
        assert!(!a.request(t0 + ms(3000), 2));
    }

    #[test]
    fn uploads_count_as_a_persons_shortly_after_their_send() {
        let t0 = Instant::now();
        let mut a = Attribution::default();
        assert!(!a.started_by_person(t0));
        a.human_send(t0, t0);
        assert!(a.started_by_person(t0 + ms(200)));
        assert!(a.started_by_person(t0 - ms(500)));
        assert!(!a.started_by_person(t0 + UPLOAD_WINDOW + ms(1)));
    }

    #[test]
    fn memory_is_bounded_and_old_entries_expire() {
        let t0 = Instant::now();
        let mut a = Attribution::default();
        for i in 0..100 {
            a.request(t0 + ms(i), i);
            a.human_send(t0 - Duration::from_secs(60), t0 + ms(i));
        }
        assert!(a.unattributed.len() <= HISTORY && a.human_sends.len() <= HISTORY);
        a.expire(t0 + SEND_TTL + Duration::from_secs(1));
        assert!(a.unattributed.is_empty() && a.human_sends.is_empty());
    }
}
