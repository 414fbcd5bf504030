//! Prometheus metrics, in the text exposition format (`prometheus-client`, the Prometheus
//! organisation's Rust client; see `STACK` notes in `docs/operations.md`).
//!
//! Counters and histograms move with lifecycle events ([`Metrics`] is a
//! [`Subscriber`]); gauges (open tabs by state, logins) and the limits' hit counters are read
//! at each scrape ([`Snapshot`]). Names follow Prometheus conventions: the `idlegate_`
//! prefix, base units (`_seconds`, `_bytes`), `_total` on counters. No label carries a user or
//! a session, and every label value is present (at zero) from the start, so rates and alerts
//! work before the first event.

use std::sync::{Arc, Mutex};

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::apps::Runtime;
use crate::lifecycle::{ActivityRule, EndReason, Event, Subscriber};
use crate::limits::Limits;
use crate::tracker::Tracker;
use crate::ws::traffic::Traffic;

/// `{reason="..."}`.
type ByReason = Family<[(&'static str, &'static str); 1], Counter>;

/// Lifecycle counters and histograms, and the registry that exposes them with the gauges
/// read at scrape time. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    tabs_started: Counter,
    /// What the app gave back after ends ([`released`]), and where ends are told to it.
    released: Counter,
    ended: Arc<tokio::sync::Notify>,
    tabs_ended: ByReason,
    activity: Family<[(&'static str, &'static str); 1], Counter>,
    warnings: Counter,
    kept_working: Counter,
    lifetime: Histogram,
    human_idle: Histogram,
    logins_started: Counter,
    logins_ended: ByReason,
    upstream_errors: Family<[(&'static str, &'static str); 1], Counter>,
    tabs_refused: Family<[(&'static str, &'static str); 1], Counter>,
    request_family: RequestFamily,
    /// The family's histograms by [`RouteClass`], in its order.
    requests: [Histogram; 4],
    config_reloads: Family<[(&'static str, &'static str); 1], Counter>,
    last_reload_success: Gauge,
}

/// What kind of request a latency is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Answered by idlegate itself: its routes, the sign-in redirects, refusals.
    Own,
    /// A page navigation relayed to the app (its HTML may get the page script).
    Page,
    /// Any other request relayed to the app (assets, uploads, its API and health).
    App,
    /// A session socket's upgrade, up to the app's `101`.
    Socket,
}

impl RouteClass {
    /// Every class, in histogram order.
    pub const ALL: [RouteClass; 4] = [Self::Own, Self::Page, Self::App, Self::Socket];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Own => "own",
            Self::Page => "page",
            Self::App => "app",
            Self::Socket => "socket",
        }
    }
}

/// Buckets of the time to a response's head, seconds: 1 ms to 10 s.
const REQUEST_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Request latencies by `route`.
type RequestFamily = Family<[(&'static str, &'static str); 1], Histogram, fn() -> Histogram>;

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

/// Buckets of a tab's lifetime, seconds: 1 minute to 12 hours.
const LIFETIME_BUCKETS: [f64; 10] = [
    60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0,
];
/// Buckets of the time since a person was last active when a tab ended, seconds.
const HUMAN_IDLE_BUCKETS: [f64; 11] = [
    5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
];

/// The reasons a login can end for.
const LOGIN_END_REASONS: [EndReason; 3] =
    [EndReason::Logout, EndReason::LoginExpired, EndReason::Admin];

impl Metrics {
    /// Lifecycle metrics, every label value at zero. Subscribe them to the lifecycle events,
    /// then [`Metrics::attach`] what is read at scrape (the tracker is built with its
    /// subscribers, so it comes second).
    pub fn new() -> Arc<Self> {
        // Each route's histogram, kept apart so a request never looks its label up.
        let request_family = RequestFamily::new_with_constructor(request_histogram);
        let metrics = Self {
            registry: Mutex::new(Registry::with_prefix("idlegate")),
            tabs_started: Counter::default(),
            released: Counter::default(),
            ended: Arc::new(tokio::sync::Notify::new()),
            tabs_ended: ByReason::default(),
            activity: Family::default(),
            warnings: Counter::default(),
            kept_working: Counter::default(),
            lifetime: Histogram::new(LIFETIME_BUCKETS),
            human_idle: Histogram::new(HUMAN_IDLE_BUCKETS),
            logins_started: Counter::default(),
            logins_ended: ByReason::default(),
            upstream_errors: Family::default(),
            tabs_refused: Family::default(),
            requests: RouteClass::ALL.map(|class| {
                request_family
                    .get_or_create(&[("route", class.as_str())])
                    .clone()
            }),
            request_family,
            config_reloads: Family::default(),
            last_reload_success: Gauge::default(),
        };
        for limit in ["max_per_user", "max_total"] {
            let _ = metrics.tabs_refused.get_or_create(&[("limit", limit)]);
        }
        for result in ["success", "failure"] {
            let _ = metrics.config_reloads.get_or_create(&[("result", result)]);
        }
        for fault in ["connect", "timeout", "response"] {
            let _ = metrics.upstream_errors.get_or_create(&[("fault", fault)]);
        }
        for reason in EndReason::ALL {
            let _ = metrics
                .tabs_ended
                .get_or_create(&[("reason", reason.as_str())]);
        }
        for reason in LOGIN_END_REASONS {
            let _ = metrics
                .logins_ended
                .get_or_create(&[("reason", reason.as_str())]);
        }
        for rule in [ActivityRule::Input, ActivityRule::Messages] {
            let _ = metrics.activity.get_or_create(&[("source", rule.as_str())]);
        }
        metrics.register();
        Arc::new(metrics)
    }

    /// Reads open tabs from `tracker`, limit hits from `limits`, WebSocket counts from
    /// `traffic` and, in launcher mode, the app's memory from `app` at each scrape.
    pub fn attach(
        &self,
        tracker: Tracker,
        limits: Arc<Limits>,
        traffic: Arc<Traffic>,
        app: Option<Arc<dyn Runtime>>,
    ) {
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(app) = &app {
            tokio::spawn(released::watch(
                app.clone(),
                self.ended.clone(),
                self.released.clone(),
            ));
            registry.register_with_unit(
                "app_memory_released",
                "Memory the app gave back after tab sessions ended (launcher mode): the fall \
                 of its resident memory from the first end of a burst of ends to 10 s after \
                 the last; a lower bound, as tabs opened meanwhile add memory",
                Unit::Bytes,
                self.released.clone(),
            );
        }
        registry.register_collector(Box::new(Snapshot {
            tracker,
            limits,
            app,
            traffic,
        }));
    }

    /// Records how long a request of `class` took to its response's head.
    pub fn observe_request(&self, class: RouteClass, took: Duration) {
        self.requests[class as usize].observe(took.as_secs_f64());
    }

    fn register(&self) {
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let r = &mut *registry;
        r.register(
            "tab_sessions_started",
            "Tab sessions opened (a page that came back to its tab, after a dropped connection, is not counted again)",
            self.tabs_started.clone(),
        );
        r.register(
            "tab_sessions_ended",
            "Tab sessions ended, by reason",
            self.tabs_ended.clone(),
        );
        r.register(
            "activity_events",
            "A person's activity in a tab, by the evidence that counted it: input (the page \
             script saw a person) or messages (a message only a person sends)",
            self.activity.clone(),
        );
        r.register(
            "warnings_shown",
            "Warnings shown before a tab would end",
            self.warnings.clone(),
        );
        r.register(
            "warnings_kept_working",
            "Warnings answered with \"Keep working\"",
            self.kept_working.clone(),
        );
        r.register_with_unit(
            "tab_session_lifetime",
            "How long tab sessions lived, at their end",
            Unit::Seconds,
            self.lifetime.clone(),
        );
        r.register_with_unit(
            "tab_session_human_idle",
            "Time since a person was last active in a tab, at its end",
            Unit::Seconds,
            self.human_idle.clone(),
        );
        drop(registry);
        self.register_operations();
    }

    /// The metrics of logins, the app and the proxy, and reloads.
    fn register_operations(&self) {
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let r = &mut *registry;
        r.register(
            "logins_started",
            "Sign-ins that started a login session",
            self.logins_started.clone(),
        );
        r.register(
            "logins_ended",
            "Login sessions ended, by reason",
            self.logins_ended.clone(),
        );
        r.register(
            "upstream_errors",
            "Requests that failed because of the app, by fault: connect (refused or \
             unreachable), timeout (no connection in time), response (the answer broke off)",
            self.upstream_errors.clone(),
        );
        r.register(
            "tab_sessions_refused",
            "New tabs refused (tabs.on_limit = \"refuse\"), by the limit they were over: \
             max_per_user or max_total",
            self.tabs_refused.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its response's head, by route class: own \
             (idlegate's pages and refusals), page (navigations relayed to the app), app \
             (other requests relayed), socket (session socket upgrades, to the app's 101)",
            Unit::Seconds,
            self.request_family.clone(),
        );
        r.register(
            "config_reloads",
            "Configuration reloads (SIGHUP), by result: success (the new values apply) or \
             failure (the file was refused and the running configuration kept)",
            self.config_reloads.clone(),
        );
        r.register_with_unit(
            "config_last_reload_success_timestamp",
            "When the configuration was last loaded successfully (at start or by a reload), \
             in seconds since the Unix epoch",
            Unit::Seconds,
            self.last_reload_success.clone(),
        );
        self.loaded_now();
    }

    /// Counts a configuration reload; a successful one also sets the time of the last
    /// successful load to now.
    pub fn config_reloaded(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.config_reloads
            .get_or_create(&[("result", result)])
            .inc();
        if success {
            self.loaded_now();
        }
    }

    fn loaded_now(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        self.last_reload_success
            .set(i64::try_from(now).unwrap_or(i64::MAX));
    }

    /// The metrics in OpenMetrics 1.0 text (what the library writes; Prometheus asks for it).
    pub fn render_openmetrics(&self) -> String {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    /// The metrics in the Prometheus text format 0.0.4, for scrapers and tools that do not
    /// read OpenMetrics (`promtool check metrics`, older agents): see [`openmetrics_to_text`].
    pub fn render(&self) -> String {
        openmetrics_to_text(&self.render_openmetrics())
    }
}

impl Subscriber for Metrics {
    fn on_event(&self, event: &Event) {
        match event {
            Event::TabOpened { .. } => {
                self.tabs_started.inc();
            }
            Event::TabEnded(end) => {
                self.ended.notify_one();
                self.tabs_ended
                    .get_or_create(&[("reason", end.reason.as_str())])
                    .inc();
                self.lifetime.observe(end.lifetime.as_secs_f64());
                self.human_idle.observe(end.human_idle.as_secs_f64());
            }
            Event::Activity { source, .. } => {
                self.activity
                    .get_or_create(&[("source", source.as_str())])
                    .inc();
            }
            Event::Warned { .. } => {
                self.warnings.inc();
            }
            Event::KeptWorking { .. } => {
                self.kept_working.inc();
            }
            Event::TabRefused { limit } => {
                self.tabs_refused.get_or_create(&[("limit", limit)]).inc();
            }
            Event::LoginStarted { .. } => {
                self.logins_started.inc();
            }
            Event::UpstreamFailed { fault } => {
                self.upstream_errors
                    .get_or_create(&[("fault", fault)])
                    .inc();
            }
            Event::LoginEnded { reason, .. } => {
                self.logins_ended
                    .get_or_create(&[("reason", reason.as_str())])
                    .inc();
            }
            _ => {}
        }
    }
}

/// OpenMetrics text as Prometheus text 0.0.4. The two differ, for what this crate writes, in
/// three places: a counter family is named without `_total` in OpenMetrics and with it in
/// 0.0.4 (its samples carry `_total` in both), 0.0.4 has no `# UNIT` lines, and no `# EOF`.
/// `prometheus-client` writes only OpenMetrics, so this renames and drops lines; samples pass
/// unchanged.
pub fn openmetrics_to_text(openmetrics: &str) -> String {
    let lines: Vec<&str> = openmetrics.lines().collect();
    let mut out = String::with_capacity(openmetrics.len() + 256);
    for (i, line) in lines.iter().enumerate() {
        if *line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let counter_of = |name: &str| {
            lines[i..]
                .iter()
                .take(3)
                .any(|l| *l == format!("# TYPE {name} counter"))
        };
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            let is_counter = if *prefix == "# TYPE " {
                tail == "counter"
            } else {
                counter_of(name)
            };
            (is_counter && !name.ends_with("_total"))
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

pub mod released;
mod snapshot;
#[cfg(test)]
mod tests;

use snapshot::Snapshot;
