use std::time::Duration;

use super::*;
use crate::config::{Config, TabPolicy};
use crate::lifecycle::TabEnd;
use crate::limits::Limit;
use crate::tracker::TabActivity;

fn metrics() -> (Arc<Metrics>, Tracker, Arc<Limits>) {
    let (metrics, tracker, limits, _) = with_traffic();
    (metrics, tracker, limits)
}

fn with_traffic() -> (Arc<Metrics>, Tracker, Arc<Limits>, Arc<Traffic>) {
    let tracker = Tracker::start(TabPolicy::for_tests(60, 3600));
    let limits = Limits::new(&Config::builder().build().unwrap());
    let metrics = Metrics::new();
    let traffic = Arc::new(Traffic::default());
    metrics.attach(tracker.clone(), limits.clone(), traffic.clone(), None);
    (metrics, tracker, limits, traffic)
}

#[tokio::test]
async fn request_latencies_and_websocket_traffic_are_counted_by_class_and_direction() {
    use crate::ws::traffic::Direction;
    let (metrics, _, _, traffic) = with_traffic();
    let text = metrics.render();
    for class in RouteClass::ALL {
        let series = format!(
            "idlegate_http_request_duration_seconds_count{{route=\"{}\"}}",
            class.as_str()
        );
        assert_eq!(sample(&text, &series), Some(0.0), "{series}\n{text}");
    }
    for direction in ["to_app", "to_browser"] {
        for name in ["frames", "bytes"] {
            let series = format!("idlegate_websocket_{name}_total{{direction=\"{direction}\"}}");
            assert_eq!(sample(&text, &series), Some(0.0), "{series}\n{text}");
        }
    }
    metrics.observe_request(RouteClass::Page, Duration::from_millis(30));
    metrics.observe_request(RouteClass::Page, Duration::from_millis(3));
    metrics.observe_request(RouteClass::Socket, Duration::from_secs(20));
    traffic.add(Direction::ToBrowser, 3, 1200);
    let text = metrics.render();
    let page = "idlegate_http_request_duration_seconds";
    assert_eq!(
        sample(&text, &format!("{page}_count{{route=\"page\"}}")),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("{page}_bucket{{le=\"0.005\",route=\"page\"}}")
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("{page}_bucket{{le=\"+Inf\",route=\"socket\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "idlegate_websocket_frames_total{direction=\"to_browser\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            "idlegate_websocket_bytes_total{direction=\"to_browser\"}"
        ),
        Some(1200.0)
    );
}

/// The value of the sample `name{labels}` (or `name` without labels) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn every_label_value_is_there_at_zero_from_the_start() {
    let (metrics, ..) = metrics();
    let text = metrics.render();
    for reason in EndReason::ALL {
        let series = format!("idlegate_tab_sessions_ended_total{{reason=\"{reason}\"}}");
        assert_eq!(sample(&text, &series), Some(0.0), "{series}\n{text}");
    }
    for state in TabActivity::ALL {
        let series = format!("idlegate_tab_sessions{{state=\"{}\"}}", state.as_str());
        assert_eq!(sample(&text, &series), Some(0.0), "{series}");
    }
    for limit in Limit::ALL {
        let series = format!("idlegate_limit_hits_total{{limit=\"{}\"}}", limit.name());
        assert_eq!(sample(&text, &series), Some(0.0), "{series}");
    }
    for source in ["input", "messages"] {
        let series = format!("idlegate_activity_events_total{{source=\"{source}\"}}");
        assert_eq!(sample(&text, &series), Some(0.0), "{series}");
    }
    assert_eq!(sample(&text, "idlegate_login_sessions"), Some(0.0));
    assert_eq!(
        sample(&text, "idlegate_tab_session_lifetime_seconds_count"),
        Some(0.0)
    );
    assert!(text.contains("# TYPE idlegate_tab_session_human_idle_seconds histogram"));
}

#[tokio::test]
async fn config_reloads_are_counted_by_result_and_a_success_is_timed() {
    let (metrics, ..) = metrics();
    let text = metrics.render();
    for result in ["success", "failure"] {
        let series = format!("idlegate_config_reloads_total{{result=\"{result}\"}}");
        assert_eq!(sample(&text, &series), Some(0.0), "{series}\n{text}");
    }
    let at_start = sample(
        &text,
        "idlegate_config_last_reload_success_timestamp_seconds",
    )
    .unwrap();
    assert!(at_start > 1.7e9, "{at_start}");
    metrics.config_reloaded(false);
    metrics.config_reloaded(true);
    metrics.config_reloaded(false);
    let text = metrics.render();
    let failure = "idlegate_config_reloads_total{result=\"failure\"}";
    let success = "idlegate_config_reloads_total{result=\"success\"}";
    assert_eq!(sample(&text, failure), Some(2.0));
    assert_eq!(sample(&text, success), Some(1.0));
    let last = "idlegate_config_last_reload_success_timestamp_seconds";
    assert!(sample(&text, last).unwrap() >= at_start);
}

#[tokio::test]
async fn counters_move_with_events_and_gauges_with_the_open_tabs() {
    let (metrics, tracker, limits) = metrics();
    let entry = crate::tracker::Entry {
        resume: None,
        client: None,
    };
    let conn = tracker.connect(&entry, None).expect("admitted");
    let tab = conn.tab_id();
    for event in [
        Event::Warned { tab },
        Event::KeptWorking { tab },
        Event::Activity {
            tab,
            source: ActivityRule::Input,
        },
        Event::LoginEnded {
            user: "alice".to_owned(),
            reason: EndReason::Logout,
        },
        Event::UpstreamFailed { fault: "connect" },
        Event::TabEnded(Box::new(TabEnd {
            tab: 99,
            reason: EndReason::Idle,
            rule: ActivityRule::Messages,
            app_session: None,
            lifetime: Duration::from_secs(400),
            human_idle: Duration::from_secs(61),
            releases: Vec::new(),
        })),
    ] {
        metrics.on_event(&event);
    }
    limits.hit(Limit::HeaderTimeout);
    let text = metrics.render();
    let value = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series}\n{text}"));
    assert_eq!(value("idlegate_warnings_shown_total"), 1.0);
    assert_eq!(value("idlegate_warnings_kept_working_total"), 1.0);
    assert_eq!(
        value("idlegate_activity_events_total{source=\"input\"}"),
        1.0
    );
    assert_eq!(value("idlegate_logins_ended_total{reason=\"logout\"}"), 1.0);
    assert_eq!(
        value("idlegate_upstream_errors_total{fault=\"connect\"}"),
        1.0
    );
    assert_eq!(
        value("idlegate_upstream_errors_total{fault=\"timeout\"}"),
        0.0
    );
    assert_eq!(
        value("idlegate_tab_sessions_ended_total{reason=\"idle\"}"),
        1.0
    );
    assert_eq!(
        value("idlegate_tab_session_human_idle_seconds_bucket{le=\"60.0\"}"),
        0.0
    );
    assert_eq!(
        value("idlegate_tab_session_human_idle_seconds_bucket{le=\"120.0\"}"),
        1.0
    );
    assert_eq!(value("idlegate_tab_session_lifetime_seconds_sum"), 400.0);
    assert_eq!(value("idlegate_tab_sessions{state=\"active\"}"), 1.0);
    assert_eq!(
        value("idlegate_limit_hits_total{limit=\"header_timeout\"}"),
        1.0
    );
}

#[test]
fn openmetrics_becomes_text_004_with_counter_families_named_as_their_samples() {
    let openmetrics = "# HELP idlegate_warnings_shown Warnings shown.\n\
        # TYPE idlegate_warnings_shown counter\n\
        idlegate_warnings_shown_total 3\n\
        # HELP idlegate_tab_session_lifetime_seconds Lifetime.\n\
        # TYPE idlegate_tab_session_lifetime_seconds histogram\n\
        # UNIT idlegate_tab_session_lifetime_seconds seconds\n\
        idlegate_tab_session_lifetime_seconds_sum 1.0\n\
        # HELP idlegate_tab_sessions Open tabs.\n\
        # TYPE idlegate_tab_sessions gauge\n\
        idlegate_tab_sessions{state=\"active\"} 1\n\
        # EOF\n";
    assert_eq!(
        openmetrics_to_text(openmetrics),
        "# HELP idlegate_warnings_shown_total Warnings shown.\n\
         # TYPE idlegate_warnings_shown_total counter\n\
         idlegate_warnings_shown_total 3\n\
         # HELP idlegate_tab_session_lifetime_seconds Lifetime.\n\
         # TYPE idlegate_tab_session_lifetime_seconds histogram\n\
         idlegate_tab_session_lifetime_seconds_sum 1.0\n\
         # HELP idlegate_tab_sessions Open tabs.\n\
         # TYPE idlegate_tab_sessions gauge\n\
         idlegate_tab_sessions{state=\"active\"} 1\n"
    );
}
