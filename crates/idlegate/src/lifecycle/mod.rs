//! What happens to tab and login sessions over their lives, as idlegate tells it: what a
//! tab's connection saw ([`Signal`]), why a session ended ([`EndReason`]) and how its page is
//! told ([`EndNotice`]), and the
//! [`Event`]s the tracker publishes to [`Subscriber`]s registered at start (logging, the
//! app's memory release, uploads' release; metrics, audit and the admin API next).
//!
//! Publishing costs nothing when nobody listens (the event is not even built) and never
//! blocks the data path: subscribers are called in place and must only record or hand off.

mod feed;
mod log;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use feed::Feed;
pub use log::LogSubscriber;

/// Identifies a tab session inside this process (not a secret: it is only a counter).
pub type TabId = u64;

/// Why a tab session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// No human activity for `tabs.idle_timeout`.
    Idle,
    /// The app kept running a script for `tabs.busy_timeout` after the last human activity
    /// (a live loop nobody watches).
    BusyIdle,
    /// Hidden in the background without activity for the hidden-tab limit.
    HiddenIdle,
    /// `tabs.max_lifetime` reached.
    MaxLifetime,
    /// The browser went away and did not reconnect within `tabs.reconnect_grace`.
    Closed,
    /// The signed-in user's login expired.
    LoginExpired,
    /// The user signed out.
    Logout,
    /// Ended to stay within the per-user tab limit.
    EvictedUserCap,
    /// Ended to stay within the server-wide tab limit.
    EvictedCapacity,
    /// Ended by an administrator.
    Admin,
    /// The app stopped.
    UpstreamGone,
    /// The app no longer had the session when the page came back (it restarted, or dropped
    /// the session to make room), so the page could not continue where it was.
    AppRestarted,
    /// The page came back to an idlegate that has no record of its tab: idlegate restarted
    /// since the page opened (with the memory store every tab is forgotten), or the page was
    /// away longer than ended tabs are remembered. Its app session cannot be vouched for
    /// (whose it was, how idle it was), so the page is told instead of resumed.
    ServerRestarted,
    /// idlegate is shutting down.
    Shutdown,
}

impl EndReason {
    /// All reasons, for documentation and exhaustive tests.
    pub const ALL: [EndReason; 14] = [
        Self::Idle,
        Self::BusyIdle,
        Self::HiddenIdle,
        Self::MaxLifetime,
        Self::Closed,
        Self::LoginExpired,
        Self::Logout,
        Self::EvictedUserCap,
        Self::EvictedCapacity,
        Self::Admin,
        Self::UpstreamGone,
        Self::AppRestarted,
        Self::ServerRestarted,
        Self::Shutdown,
    ];

    /// The stable name used in logs, metrics and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::BusyIdle => "busy_idle",
            Self::HiddenIdle => "hidden_idle",
            Self::MaxLifetime => "max_lifetime",
            Self::Closed => "closed",
            Self::LoginExpired => "login_expired",
            Self::Logout => "logout",
            Self::EvictedUserCap => "evicted_user_cap",
            Self::EvictedCapacity => "evicted_capacity",
            Self::Admin => "admin",
            Self::UpstreamGone => "upstream_gone",
            Self::AppRestarted => "app_restarted",
            Self::ServerRestarted => "server_restarted",
            Self::Shutdown => "shutdown",
        }
    }

    /// Parses [`EndReason::as_str`] back.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a tab ended, as the page is to be told: why, the page it was on (to start again
/// there), whether it is embedded in another page (so it cannot be sent elsewhere), and how
/// often the page was sent away already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndNotice {
    pub reason: EndReason,
    pub page: Option<String>,
    pub embedded: bool,
    /// How many times the page was sent to the "session ended" page already. A page that
    /// keeps coming back evidently cannot leave (an iframe the app does not know it is in)
    /// and is told in place instead ([`EndNotice::stays`]).
    pub sent_away: u8,
}

impl EndNotice {
    /// After this many times sent away, a page that comes back again is told in place.
    pub const SENT_AWAY_LIMIT: u8 = 2;

    /// A notice that knows only the reason.
    pub fn reason(reason: EndReason) -> Self {
        Self {
            reason,
            page: None,
            embedded: false,
            sent_away: 0,
        }
    }

    /// Whether the page must be told in place, for it cannot (or does not) leave.
    pub fn stays(&self) -> bool {
        self.embedded || self.sent_away >= Self::SENT_AWAY_LIMIT
    }
}

/// A request that makes the app free something it holds for a tab (an uploaded file),
/// replayed when the tab ends: the app drops a session's memory, but not always what was
/// uploaded to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub method: http::Method,
    /// Path (and query) on the app.
    pub path: String,
    /// Headers the app needs to accept the request (its CSRF token, say).
    pub headers: http::HeaderMap,
}

/// What a tab's connection saw, translated from the app's protocol by the app kind's message
/// decoders: the tracker's only view of the app's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// A message only a person can cause (stop a run, clear the cache, sort a table). Counts
    /// under the messages rule; under the input rule the person's input already did.
    PersonMessage,
    /// The page asked the app to run its script. `automatic`: the app's own timer asked (an
    /// auto-refreshing fragment); `fragment`: only a fragment of the page runs.
    RunRequested { automatic: bool, fragment: bool },
    /// The page asked the app to work, and its message alone does not say whether a person
    /// caused it (a change of a kind the app's decoder does not know): the page script's
    /// report decides; without the script, it is not a person's.
    RunRequestedUnclear { fragment: bool },
    /// The app started (`true`) or finished (`false`) running the script.
    Running(bool),
    /// The app set a timer that makes the page ask for runs by itself.
    TimerSet,
    /// The page the tab shows: its path and query (`/report?id=42`), and whether it is
    /// embedded in another page (an iframe).
    Page { path: String, embedded: bool },
    /// The app's own id for this session.
    SessionId(String),
}

/// Which evidence decides whether a person uses a tab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityRule {
    /// The page script reports: a person's input in the page is the authority, and a message
    /// to the app counts only when the script saw a person cause it.
    Input,
    /// No page script reports (injection off, blocked, not loaded yet): only the messages a
    /// person can cause count (a rerun not marked automatic, stop, clear cache, an upload).
    Messages,
}

impl ActivityRule {
    /// The name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Messages => "messages",
        }
    }
}

/// Something that happened to a tab or a login session. Ids of the app's sessions are raw
/// here (the app needs them to free memory): subscribers that write them anywhere hash them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A page opened a new tab session: whose (`user`, when people sign in), the app session
    /// it asked to resume if any, and whether its page script has a token (`script`).
    TabOpened {
        tab: TabId,
        user: Option<String>,
        app_session: Option<String>,
        resumed: bool,
        script: bool,
    },
    /// A page came back to its tab session after being `away` (zero when its connection was
    /// taken over while still open).
    TabReconnected { tab: TabId, away: Duration },
    /// A person was active in the tab, as the rule judging it tells (`Input`: the page
    /// script saw input; `Messages`: a message only a person sends).
    Activity { tab: TabId, source: ActivityRule },
    /// The page shows the warning before the end.
    Warned { tab: TabId },
    /// The person chose to keep working in the warning.
    KeptWorking { tab: TabId },
    /// A run the person waits for started (`true`) or finished: the idle limit is held off
    /// meanwhile, up to the busy limit.
    Busy { tab: TabId, busy: bool },
    /// The page went to the background (`true`) or came back.
    Hidden { tab: TabId, hidden: bool },
    /// The tab's connection dropped; it waits for the page to come back.
    Disconnected { tab: TabId },
    /// The tab ended.
    TabEnded(Box<TabEnd>),
    /// A new tab was refused: its user had `tabs.max_per_user` tabs open (`limit`
    /// `"max_per_user"`), or the server `tabs.max_total` (`"max_total"`), with `tabs.on_limit
    /// = "refuse"`.
    TabRefused { limit: &'static str },
    /// The app stored an upload for a tab that had already ended: free it at once.
    LateRelease(Release),
    /// A person signed in (`user`: the user's key).
    LoginStarted { user: String },
    /// A person was active in one of their login's tabs.
    LoginTouched { user: String },
    /// A login ended: signed out (`Logout`), expired (`LoginExpired`), ended by an
    /// administrator (`Admin`).
    LoginEnded { user: String, reason: EndReason },
    /// A sign-in was refused: a wrong username or password, or an OpenID sign-in that failed.
    /// `user` is a short hash of the name given (it may be a password typed in the wrong
    /// field), `client` the client's address.
    SignInFailed {
        user: Option<String>,
        client: std::net::IpAddr,
        method: &'static str,
    },
    /// A request could not be relayed because of the app (`fault`: `connect`, `timeout`,
    /// `response`; see `ProxyError::upstream_fault`).
    UpstreamFailed { fault: &'static str },
    /// An administrator (`caller`: their token's name) did `action` (`end_tab`, `end_user`) to
    /// `target` (a tab handle, a user), ending `tabs` tabs and `logins` logins.
    AdminAction {
        caller: String,
        action: &'static str,
        target: String,
        tabs: usize,
        logins: usize,
    },
}

/// How a tab ended, and what the app must let go of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TabEnd {
    pub tab: TabId,
    pub reason: EndReason,
    /// The rule that judged the tab at its end.
    pub rule: ActivityRule,
    /// The app's own id of the session, if known.
    pub app_session: Option<String>,
    /// How long the tab lived, and how long since a person was last active in it.
    pub lifetime: Duration,
    pub human_idle: Duration,
    /// Requests that free what the app holds for the tab (its uploaded files).
    pub releases: Vec<Release>,
}

/// Receives events. Called on the path that caused the event: record it or hand it off,
/// never wait.
pub trait Subscriber: Send + Sync {
    fn on_event(&self, event: &Event);
}

/// The subscribers registered at start. Cheap to clone.
#[derive(Clone, Default)]
pub struct Publisher {
    subscribers: Arc<Vec<Arc<dyn Subscriber>>>,
}

impl Publisher {
    pub fn new(subscribers: Vec<Arc<dyn Subscriber>>) -> Self {
        Self {
            subscribers: Arc::new(subscribers),
        }
    }

    /// Tells every subscriber; `event` is only built when someone listens.
    pub fn publish(&self, event: impl FnOnce() -> Event) {
        if self.subscribers.is_empty() {
            return;
        }
        let event = event();
        for subscriber in self.subscribers.iter() {
            subscriber.on_event(&event);
        }
    }
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Publisher({} subscribers)", self.subscribers.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Event>>);

    impl Subscriber for Recorder {
        fn on_event(&self, event: &Event) {
            self.0.lock().unwrap().push(event.clone());
        }
    }

    #[test]
    fn events_reach_every_subscriber_and_are_not_built_for_nobody() {
        let nobody = Publisher::default();
        nobody.publish(|| unreachable!("built for nobody"));
        let (a, b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
        let publisher = Publisher::new(vec![a.clone(), b.clone()]);
        publisher.publish(|| Event::Disconnected { tab: 7 });
        assert_eq!(*a.0.lock().unwrap(), vec![Event::Disconnected { tab: 7 }]);
        assert_eq!(*b.0.lock().unwrap(), vec![Event::Disconnected { tab: 7 }]);
    }

    #[test]
    fn reason_names_round_trip() {
        for r in EndReason::ALL {
            assert_eq!(EndReason::from_name(r.as_str()), Some(r));
        }
        assert_eq!(EndReason::from_name("nope"), None);
    }
}
