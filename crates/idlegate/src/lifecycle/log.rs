//! The log lines of tab sessions, as a [`Subscriber`]: one line when a tab starts and one when
//! it ends (with its reason, the rule that judged it, its lifetime and its human idle time),
//! debug lines for connections that drop and come back. App session ids are hashed.

use super::{Event, Subscriber};
use crate::redact::short_hash;

/// Writes tab lifecycle events to the log.
#[derive(Debug, Default)]
pub struct LogSubscriber;

fn hashed(id: Option<&str>) -> String {
    id.map_or_else(|| "-".to_owned(), short_hash)
}

impl Subscriber for LogSubscriber {
    fn on_event(&self, event: &Event) {
        match event {
            Event::TabOpened {
                tab,
                app_session,
                resumed,
                script,
                ..
            } => tracing::info!(
                tab,
                app_session = hashed(app_session.as_deref()),
                resumed,
                script,
                "tab session started"
            ),
            Event::TabReconnected { tab, away } => tracing::debug!(
                tab,
                away_ms = away.as_millis() as u64,
                "a page came back to its tab session"
            ),
            Event::Disconnected { tab } => {
                tracing::debug!(tab, "tab connection closed; waiting for a reconnect")
            }
            Event::TabEnded(end) => tracing::info!(
                tab = end.tab,
                app_session = hashed(end.app_session.as_deref()),
                reason = end.reason.as_str(),
                rule = end.rule.as_str(),
                lifetime_s = millis(end.lifetime),
                idle_s = millis(end.human_idle),
                "tab session ended"
            ),
            Event::TabRefused { limit } => {
                tracing::info!(limit, "a new tab was refused: the limit is reached")
            }
            Event::AdminAction {
                caller,
                action,
                target,
                tabs,
                logins,
            } => tracing::info!(
                caller,
                action,
                target = %crate::redact::short_hash(target),
                tabs,
                logins,
                "an administrator ended sessions"
            ),
            _ => {}
        }
    }
}

/// Seconds to the millisecond, for people reading the log.
fn millis(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0).round() / 1000.0
}
