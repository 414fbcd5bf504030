//! Memory pressure (`[capacity]`): when the app's memory goes over `capacity.memory_high`,
//! tabs end with reason `evicted_capacity`, one at a time in the order of
//! [`crate::tracker::capacity::order`] (the tab left alone longest first; never a busy one
//! while an idle one is left, nor one used in the last minute while another is left), until
//! memory is below `capacity.memory_low`.
//!
//! While memory is between the marks on the way down, new tabs are refused with the busy
//! page: each would add to it (a flood of new tabs would otherwise grow the app's memory past
//! the mark faster than ending tabs brings it down).
//!
//! Memory is measured on the app's process tree (launcher mode) or on the container's cgroup
//! ([`crate::procfs`]) every `capacity.check_every`. After each end the monitor waits for
//! memory to fall (by [`FALL`]), at most [`SETTLE`], before it may end another: the app lets
//! go of an ended session's memory only after idlegate has asked it to (a poke a few seconds
//! later, [`crate::apps::streamlit`]), and ending the next tab before that would end one too
//! many.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::apps::Runtime;
use crate::config::{CapacityConfig, MemoryAmount, MemoryMeasure, OnLimit};
use crate::tracker::{EndReason, Tracker};

/// The longest the monitor waits for memory to fall after ending a tab.
pub const SETTLE: Duration = Duration::from_secs(10);
/// A fall of memory this large, in bytes, after an end means the app gave the memory back.
pub const FALL: u64 = 1 << 20;

/// Why memory pressure cannot start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CapacityError {
    #[error(
        "capacity.memory_high: there is nothing to measure: idlegate does not start the app \
         (it has an upstream) and its container has no memory limit; start the app with \
         idlegate, or set capacity.measure = \"cgroup\" if the app shares idlegate's container"
    )]
    NothingToMeasure,
    #[error(
        "capacity.measure = \"app\" needs idlegate to start the app (idlegate [options] -- \
         COMMAND)"
    )]
    NoApp,
    #[error("capacity.measure = \"cgroup\": this process's cgroup memory cannot be read")]
    NoCgroup,
    #[error(
        "{0}: a percentage needs a memory limit, and idlegate's container has none (its \
         cgroup sets no memory limit); give an amount like \"2GiB\" instead"
    )]
    NoLimit(&'static str),
    #[error("capacity.memory_high: memory pressure is on; turning it off needs a restart")]
    Off,
    #[error(
        "capacity.memory_low ({low} bytes here) must be below capacity.memory_high ({high} \
         bytes here)"
    )]
    LowNotBelowHigh { low: u64, high: u64 },
}

/// Where memory is read.
#[derive(Clone)]
enum Source {
    App(Arc<dyn Runtime>),
    Cgroup,
}

impl Source {
    fn measure(&self) -> Option<u64> {
        match self {
            Self::App(app) => app.resident_bytes(),
            Self::Cgroup => crate::procfs::cgroup_working_set(),
        }
    }
}

/// The water marks in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marks {
    pub high: u64,
    pub low: u64,
}

impl Marks {
    /// Resolves `config`'s marks against the container's memory `limit`; `memory_low`
    /// defaults to 90% of `memory_high`. `None` when memory pressure is off.
    pub fn resolve(
        config: &CapacityConfig,
        limit: Option<u64>,
    ) -> Result<Option<Self>, CapacityError> {
        let Some(high) = config.memory_high else {
            return Ok(None);
        };
        let bytes =
            |amount: MemoryAmount, key| amount.bytes(limit).ok_or(CapacityError::NoLimit(key));
        let high = bytes(high, "capacity.memory_high")?;
        let low = match config.memory_low {
            Some(low) => bytes(low, "capacity.memory_low")?,
            None => high / 10 * 9,
        };
        if low >= high {
            return Err(CapacityError::LowNotBelowHigh { low, high });
        }
        Ok(Some(Self { high, low }))
    }
}

/// Whether the monitor is ending tabs: from above the high mark until below the low one.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pressure {
    relieving: bool,
}

impl Pressure {
    /// Given memory in use, whether a tab must end now.
    pub fn must_end(&mut self, used: u64, marks: Marks) -> bool {
        if used > marks.high {
            self.relieving = true;
        } else if used <= marks.low {
            self.relieving = false;
        }
        self.relieving
    }
}

/// What the monitor checks against: the marks, and how often memory is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settings {
    marks: Marks,
    every: Duration,
}

/// The running monitor's marks and interval; a configuration reload replaces them
/// ([`Monitor::update`]). Where memory is measured (`capacity.measure`) stays as started.
pub struct Monitor {
    settings: ArcSwap<Settings>,
    /// The container's memory limit at start, in bytes, for percentages.
    limit: Option<u64>,
}

impl Monitor {
    /// Applies `config`'s `memory_high`, `memory_low` and `check_every` from the monitor's
    /// next check on.
    ///
    /// # Errors
    /// [`CapacityError::Off`] when `config` turns memory pressure off (that needs a restart),
    /// [`CapacityError::NoLimit`] for a percentage without a container limit; the running
    /// values stay then.
    pub fn update(&self, config: &CapacityConfig) -> Result<(), CapacityError> {
        let marks = Marks::resolve(config, self.limit)?.ok_or(CapacityError::Off)?;
        self.settings.store(Arc::new(Settings {
            marks,
            every: config.check_every,
        }));
        Ok(())
    }
}

/// What to measure for `measure`, given the container's memory `limit`, whether the cgroup's
/// memory can be read and whether idlegate starts the app (`app`).
fn source_kind(
    measure: MemoryMeasure,
    limit: Option<u64>,
    cgroup_readable: bool,
    app: bool,
) -> Result<MemoryMeasure, CapacityError> {
    match (measure, app) {
        (MemoryMeasure::App, true) => Ok(MemoryMeasure::App),
        (MemoryMeasure::App, false) => Err(CapacityError::NoApp),
        (MemoryMeasure::Cgroup, _) if cgroup_readable => Ok(MemoryMeasure::Cgroup),
        (MemoryMeasure::Cgroup, _) => Err(CapacityError::NoCgroup),
        (MemoryMeasure::Auto, _) if limit.is_some() && cgroup_readable => Ok(MemoryMeasure::Cgroup),
        (MemoryMeasure::Auto, true) => Ok(MemoryMeasure::App),
        (MemoryMeasure::Auto, false) => Err(CapacityError::NothingToMeasure),
    }
}

/// Whether memory pressure as `config` sets it can work on this machine, for a gateway that
/// starts its app (`launches_app`) or not: checked before the app is started, so a bad
/// setting stops idlegate at once as a configuration error.
pub fn check(config: &CapacityConfig, launches_app: bool) -> Result<(), CapacityError> {
    let limit = crate::procfs::cgroup_memory_limit();
    if Marks::resolve(config, limit)?.is_some() {
        let readable = crate::procfs::cgroup_working_set().is_some();
        source_kind(config.measure, limit, readable, launches_app)?;
    }
    Ok(())
}

/// Starts the memory pressure monitor for `config` on the current runtime, ending `tracker`'s
/// tabs; `app` is the app's process in launcher mode. Does nothing (`None`) when
/// `memory_high` is unset.
pub fn start(
    config: &CapacityConfig,
    tracker: Tracker,
    app: Option<Arc<dyn Runtime>>,
) -> Result<Option<Arc<Monitor>>, CapacityError> {
    let limit = crate::procfs::cgroup_memory_limit();
    let Some(marks) = Marks::resolve(config, limit)? else {
        return Ok(None);
    };
    let readable = crate::procfs::cgroup_working_set().is_some();
    let source = match (
        source_kind(config.measure, limit, readable, app.is_some())?,
        app,
    ) {
        (MemoryMeasure::App, Some(app)) => Source::App(app),
        _ => Source::Cgroup,
    };
    let what = match source {
        Source::App(_) => "the app's processes",
        Source::Cgroup => "the container",
    };
    tracing::info!(
        high_bytes = marks.high,
        low_bytes = marks.low,
        measured = what,
        "memory pressure on: tabs end above the high water mark"
    );
    let monitor = Arc::new(Monitor {
        settings: ArcSwap::from_pointee(Settings {
            marks,
            every: config.check_every,
        }),
        limit,
    });
    tokio::spawn(watch(source, monitor.clone(), tracker));
    Ok(Some(monitor))
}

async fn watch(source: Source, monitor: Arc<Monitor>, tracker: Tracker) {
    let mut pressure = Pressure::default();
    let mut warned_empty = false;
    loop {
        // One snapshot per check: a reload applies from the next one.
        let Settings { marks, every } = **monitor.settings.load();
        tokio::time::sleep(every).await;
        let Some(used) = source.measure() else {
            continue;
        };
        let relieving = pressure.must_end(used, marks);
        tracker.set_memory_full(relieving);
        if !relieving {
            warned_empty = false;
            continue;
        }
        let order = tracker.eviction_order(None, OnLimit::EndLeastRecentlyActive);
        let Some(victim) = order.first() else {
            if !std::mem::replace(&mut warned_empty, true) {
                tracing::warn!(
                    used_bytes = used,
                    high_bytes = marks.high,
                    "memory is over capacity.memory_high with no tab open to end"
                );
            }
            continue;
        };
        if tracker.end(victim.tab, EndReason::EvictedCapacity) {
            tracing::info!(
                tab = victim.tab,
                used_bytes = used,
                high_bytes = marks.high,
                human_idle_s = victim.human_idle.as_secs(),
                state = victim.activity.as_str(),
                "memory over its high water mark: ended the tab left alone longest"
            );
            settle(&source, used, every).await;
        }
    }
}

/// Waits until memory is [`FALL`] below `used`, or [`SETTLE`] has passed.
async fn settle(source: &Source, used: u64, every: Duration) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(every).await;
        if source
            .measure()
            .is_some_and(|now| now.saturating_add(FALL) <= used)
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(high: Option<MemoryAmount>, low: Option<MemoryAmount>) -> CapacityConfig {
        CapacityConfig {
            memory_high: high,
            memory_low: low,
            measure: MemoryMeasure::Auto,
            check_every: Duration::from_secs(2),
        }
    }

    #[test]
    fn marks_resolve_against_the_limit_and_low_defaults_to_ninety_percent() {
        let gib = 1u64 << 30;
        let marks = Marks::resolve(&config(Some(MemoryAmount::Bytes(gib)), None), None);
        assert_eq!(
            marks,
            Ok(Some(Marks {
                high: gib,
                low: gib / 10 * 9
            }))
        );
        let percent = config(
            Some(MemoryAmount::Percent(80.0)),
            Some(MemoryAmount::Percent(50.0)),
        );
        assert_eq!(
            Marks::resolve(&percent, Some(2 * gib)),
            Ok(Some(Marks {
                high: 1_717_986_918, // 80% of 2 GiB, rounded down
                low: gib
            }))
        );
        assert_eq!(
            Marks::resolve(&percent, None),
            Err(CapacityError::NoLimit("capacity.memory_high"))
        );
        // A low mark in bytes not below a high one in percent, once resolved, is refused.
        let mixed = config(
            Some(MemoryAmount::Percent(50.0)),
            Some(MemoryAmount::Bytes(4 * gib)),
        );
        assert_eq!(
            Marks::resolve(&mixed, Some(2 * gib)),
            Err(CapacityError::LowNotBelowHigh {
                low: 4 * gib,
                high: gib
            })
        );
        assert_eq!(Marks::resolve(&config(None, None), None), Ok(None));
    }

    #[test]
    fn what_is_measured_follows_the_setting_and_what_this_machine_has() {
        use MemoryMeasure::{App, Auto, Cgroup};
        let gib = Some(1u64 << 30);
        // (measure, container limit, cgroup readable, idlegate starts the app) -> result
        let cases = [
            ((App, None, false, true), Ok(App)),
            ((App, gib, true, false), Err(CapacityError::NoApp)),
            ((Cgroup, None, true, false), Ok(Cgroup)),
            ((Cgroup, gib, false, true), Err(CapacityError::NoCgroup)),
            ((Auto, gib, true, true), Ok(Cgroup)),
            ((Auto, gib, false, true), Ok(App)),
            ((Auto, None, true, true), Ok(App)),
            (
                (Auto, None, true, false),
                Err(CapacityError::NothingToMeasure),
            ),
        ];
        for ((measure, limit, readable, app), expected) in cases {
            assert_eq!(
                source_kind(measure, limit, readable, app),
                expected,
                "{measure:?} {limit:?} {readable} {app}"
            );
        }
    }

    #[test]
    fn tabs_end_from_above_high_water_until_below_low_water() {
        let marks = Marks { high: 100, low: 80 };
        let mut pressure = Pressure::default();
        let steps = [
            (90, false),
            (100, false),
            (101, true),
            (95, true),
            (81, true),
            (80, false),
            (95, false),
            (120, true),
        ];
        for (used, must_end) in steps {
            assert_eq!(pressure.must_end(used, marks), must_end, "at {used}");
        }
    }

    #[test]
    fn a_reload_replaces_the_marks_but_cannot_turn_pressure_off_or_use_a_missing_limit() {
        let gib = 1u64 << 30;
        let marks = |high| Marks {
            high,
            low: high / 10 * 9,
        };
        let monitor = Monitor {
            settings: ArcSwap::from_pointee(Settings {
                marks: marks(gib),
                every: Duration::from_secs(2),
            }),
            limit: None,
        };
        let mut lower = config(Some(MemoryAmount::Bytes(gib / 2)), None);
        lower.check_every = Duration::from_secs(5);
        assert_eq!(monitor.update(&lower), Ok(()));
        let now = Settings {
            marks: marks(gib / 2),
            every: Duration::from_secs(5),
        };
        assert_eq!(**monitor.settings.load(), now);
        assert_eq!(monitor.update(&config(None, None)), Err(CapacityError::Off));
        let percent = config(Some(MemoryAmount::Percent(80.0)), None);
        assert_eq!(
            monitor.update(&percent),
            Err(CapacityError::NoLimit("capacity.memory_high"))
        );
        assert_eq!(**monitor.settings.load(), now);
    }
}
