//! What the metrics read at each scrape: open tabs by state, login sessions, limit hits,
//! WebSocket traffic, memory.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::apps::Runtime;
use crate::limits::{Limit, Limits};
use crate::tracker::{TabActivity, Tracker};
use crate::ws::traffic::{Direction, Traffic};

/// What is read at each scrape: open tabs by state, login sessions, limit hits.
#[derive(Clone)]
pub(super) struct Snapshot {
    pub tracker: Tracker,
    pub limits: Arc<Limits>,
    pub app: Option<Arc<dyn Runtime>>,
    pub traffic: Arc<Traffic>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").finish_non_exhaustive()
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let views = self.tracker.views();
        let gauge = ConstGauge::new(0i64);
        {
            let mut family = encoder.encode_descriptor(
                "tab_sessions",
                "Open tab sessions, by state",
                None,
                gauge.metric_type(),
            )?;
            for state in TabActivity::ALL {
                let n = views.iter().filter(|v| v.activity == state).count();
                ConstGauge::new(n as i64)
                    .encode(family.encode_family(&[("state", state.as_str())])?)?;
            }
        }
        let up = self.tracker.stores().cluster.available();
        let metric = encoder.encode_descriptor(
            "store_up",
            "1 while the store (store.url) can be reached, 0 while it cannot",
            None,
            gauge.metric_type(),
        )?;
        ConstGauge::new(i64::from(up)).encode(metric)?;
        let dropped = self.tracker.stores().cluster.dropped();
        let counter = ConstCounter::new(dropped);
        let metric = encoder.encode_descriptor(
            "store_changes_dropped",
            "Changes for the shared store dropped because it stayed unreachable while its \
             queue (65,536 changes) filled",
            None,
            counter.metric_type(),
        )?;
        counter.encode(metric)?;
        let logins = self.tracker.stores().logins.all().len();
        let metric = encoder.encode_descriptor(
            "login_sessions",
            "Login sessions not ended",
            None,
            gauge.metric_type(),
        )?;
        ConstGauge::new(logins as i64).encode(metric)?;
        {
            let counter = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(
                "limit_hits",
                "Times a limit of [limits] (or the sign-in limits) refused or cut something, by limit",
                None,
                counter.metric_type(),
            )?;
            for limit in Limit::ALL {
                let hits = self.limits.hits().get(limit);
                ConstCounter::new(hits)
                    .encode(family.encode_family(&[("limit", limit.name())])?)?;
            }
        }
        encode_traffic(&mut encoder, &self.traffic)?;
        if let Some(limit) = crate::procfs::cgroup_memory_limit() {
            let metric = encoder.encode_descriptor(
                "memory_limit_bytes",
                "Memory limit of idlegate's cgroup (its container, which the app shares in \
                 launcher mode); absent when unlimited",
                None,
                gauge.metric_type(),
            )?;
            ConstGauge::new(i64::try_from(limit).unwrap_or(i64::MAX)).encode(metric)?;
        }
        if let Some(bytes) = self.app.as_ref().and_then(|app| app.resident_bytes()) {
            let metric = encoder.encode_descriptor(
                "app_resident_memory_bytes",
                "Resident memory of the app's process tree (launcher mode)",
                None,
                gauge.metric_type(),
            )?;
            ConstGauge::new(i64::try_from(bytes).unwrap_or(i64::MAX)).encode(metric)?;
        }
        Ok(())
    }
}

/// `websocket_frames_total` and `websocket_bytes_total`, by direction.
fn encode_traffic(
    encoder: &mut DescriptorEncoder<'_>,
    traffic: &Traffic,
) -> Result<(), std::fmt::Error> {
    let counter = ConstCounter::new(0u64);
    type Read = fn(&Traffic, Direction) -> u64;
    let families: [(&str, &str, Read); 2] = [
        (
            "websocket_frames",
            "WebSocket frames relayed between pages and the app, by direction: to_app, \
             to_browser (control frames included; idlegate's own messages not)",
            Traffic::frames,
        ),
        (
            "websocket_bytes",
            "WebSocket bytes relayed between pages and the app, frame headers included, by \
             direction: to_app, to_browser",
            Traffic::bytes,
        ),
    ];
    for (name, help, read) in families {
        let mut family = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
        for direction in Direction::ALL {
            ConstCounter::new(read(traffic, direction))
                .encode(family.encode_family(&[("direction", direction.as_str())])?)?;
        }
    }
    Ok(())
}
