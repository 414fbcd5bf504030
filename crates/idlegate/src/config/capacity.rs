//! Validation of `[capacity]`: memory pressure on the app.

use std::time::Duration;

use super::file::RawCapacity;
use super::{required_duration, ConfigError};

/// An amount of memory: bytes, or a share of the memory limit of idlegate's cgroup (its
/// container's `memory.max`), resolved when idlegate starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MemoryAmount {
    Bytes(u64),
    /// Percent of the cgroup's limit, in (0, 100].
    Percent(f64),
}

impl MemoryAmount {
    /// Bytes, given the cgroup's memory limit; `None` for a percentage without a limit.
    pub fn bytes(self, limit: Option<u64>) -> Option<u64> {
        match self {
            Self::Bytes(bytes) => Some(bytes),
            // Rounded down; a limit is far below 2^53, where f64 stops being exact.
            Self::Percent(percent) => limit.map(|limit| (limit as f64 * percent / 100.0) as u64),
        }
    }
}

/// What memory pressure is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryMeasure {
    /// The cgroup's working set when it has a memory limit, else the app's processes.
    Auto,
    /// The resident memory of the app's process tree (launcher mode only).
    App,
    /// The working set of idlegate's cgroup: `memory.current` less `inactive_file`, as the
    /// kubelet counts it for evictions (the app shares the container in launcher mode).
    Cgroup,
}

/// `[capacity]`, validated: memory pressure is off when `memory_high` is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityConfig {
    /// Above this, tabs end (least recently active first) until memory is below `memory_low`.
    pub memory_high: Option<MemoryAmount>,
    /// Where ending tabs stops; below `memory_high`.
    pub memory_low: Option<MemoryAmount>,
    pub measure: MemoryMeasure,
    /// How often memory is measured.
    pub check_every: Duration,
}

/// Parses `"85%"`, `"2GiB"`, `"1500 MB"` or a number of bytes.
fn amount(key: &str, value: &str) -> Result<MemoryAmount, ConfigError> {
    let value = value.trim();
    if let Some(number) = value.strip_suffix('%') {
        let percent: f64 = number.trim().parse().map_err(|_| {
            ConfigError::invalid(key, format!("{value:?} is not a percentage like \"85%\""))
        })?;
        if !(1.0..=100.0).contains(&percent) {
            return Err(ConfigError::invalid(
                key,
                format!("{value:?} is not between 1% and 100%"),
            ));
        }
        return Ok(MemoryAmount::Percent(percent));
    }
    let bytes: bytesize::ByteSize = value.parse().map_err(|_| {
        ConfigError::invalid(
            key,
            format!("{value:?} is not an amount like \"2GiB\", \"1500MB\" or \"85%\""),
        )
    })?;
    if bytes.as_u64() == 0 {
        return Err(ConfigError::invalid(key, "must be more than 0"));
    }
    Ok(MemoryAmount::Bytes(bytes.as_u64()))
}

/// Validates `[capacity]`.
pub(super) fn capacity(raw: &RawCapacity) -> Result<CapacityConfig, ConfigError> {
    let memory_high = raw
        .memory_high
        .as_deref()
        .map(|v| amount("capacity.memory_high", v))
        .transpose()?;
    let memory_low = raw
        .memory_low
        .as_deref()
        .map(|v| amount("capacity.memory_low", v))
        .transpose()?;
    let measure = match raw.measure.as_str() {
        "auto" => MemoryMeasure::Auto,
        "app" => MemoryMeasure::App,
        "cgroup" => MemoryMeasure::Cgroup,
        other => {
            return Err(ConfigError::invalid(
                "capacity.measure",
                format!("{other:?} is not \"auto\", \"app\" or \"cgroup\""),
            ))
        }
    };
    match (memory_high, memory_low) {
        (None, Some(_)) => {
            return Err(ConfigError::invalid(
                "capacity.memory_low",
                "needs capacity.memory_high",
            ))
        }
        (Some(MemoryAmount::Bytes(high)), Some(MemoryAmount::Bytes(low))) if low >= high => {
            return Err(ConfigError::invalid(
                "capacity.memory_low",
                "must be below capacity.memory_high",
            ))
        }
        (Some(MemoryAmount::Percent(high)), Some(MemoryAmount::Percent(low))) if low >= high => {
            return Err(ConfigError::invalid(
                "capacity.memory_low",
                "must be below capacity.memory_high",
            ))
        }
        _ => {}
    }
    let check_every = required_duration("capacity.check_every", &raw.check_every)?;
    if check_every < Duration::from_millis(100) {
        return Err(ConfigError::invalid(
            "capacity.check_every",
            "must be at least 100ms",
        ));
    }
    Ok(CapacityConfig {
        memory_high,
        memory_low,
        measure,
        check_every,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(high: Option<&str>, low: Option<&str>) -> RawCapacity {
        RawCapacity {
            memory_high: high.map(str::to_owned),
            memory_low: low.map(str::to_owned),
            ..RawCapacity::default()
        }
    }

    #[test]
    fn amounts_are_bytes_or_a_share_of_the_limit() {
        let key = "capacity.memory_high";
        assert_eq!(amount(key, "2GiB").unwrap(), MemoryAmount::Bytes(2 << 30));
        assert_eq!(
            amount(key, "1500 MB").unwrap(),
            MemoryAmount::Bytes(1_500_000_000)
        );
        assert_eq!(
            amount(key, "1048576").unwrap(),
            MemoryAmount::Bytes(1 << 20)
        );
        assert_eq!(amount(key, " 85% ").unwrap(), MemoryAmount::Percent(85.0));
        assert_eq!(
            MemoryAmount::Percent(50.0).bytes(Some(1 << 30)),
            Some(1 << 29)
        );
        assert_eq!(MemoryAmount::Percent(50.0).bytes(None), None);
        for bad in [
            "",
            "lots",
            "0",
            "0%",
            "0.5%",
            "1e-9%",
            "101%",
            "-5%",
            "NaN%",
            "12 parsecs",
        ] {
            let e = amount(key, bad).unwrap_err();
            assert_eq!(e.key(), Some(key), "{bad:?}");
        }
    }

    #[test]
    fn low_water_must_be_below_high_water_and_needs_it() {
        assert!(capacity(&raw(Some("2GiB"), Some("1GiB"))).is_ok());
        assert!(capacity(&raw(Some("85%"), Some("75%"))).is_ok());
        assert!(capacity(&raw(None, None)).unwrap().memory_high.is_none());
        for (high, low) in [
            (Some("1GiB"), Some("2GiB")),
            (Some("80%"), Some("80%")),
            (None, Some("1GiB")),
        ] {
            let e = capacity(&raw(high, low)).unwrap_err();
            assert_eq!(e.key(), Some("capacity.memory_low"), "{high:?} {low:?}");
        }
        let mut bad = raw(Some("1GiB"), None);
        bad.measure = "heap".into();
        assert_eq!(capacity(&bad).unwrap_err().key(), Some("capacity.measure"));
    }
}
