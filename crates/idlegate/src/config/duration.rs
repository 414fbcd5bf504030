//! Parsing of human-written durations in config values (`"90s"`, `"15m"`, `"1h 30m"`).
//!
//! Only parses; it knows nothing about which key a value belongs to. The caller wraps the
//! message with the key name.

use std::time::Duration;

/// Parses a duration that must be present and positive, like `"15m"`.
pub fn parse(value: &str) -> Result<Duration, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err("is empty; write a duration like \"15m\"".to_owned());
    }
    if trimmed.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "{value:?} has no unit; write a duration like \"{trimmed}s\" or \"{trimmed}m\""
        ));
    }
    humantime::parse_duration(trimmed)
        .map_err(|_| format!("{value:?} is not a duration like \"90s\", \"15m\" or \"12h\""))
}

/// Parses a limit that may be switched off with `"off"` or `"0"`; `None` means off.
pub fn parse_optional(value: &str) -> Result<Option<Duration>, String> {
    let trimmed = value.trim();
    if trimmed.eq_ignore_ascii_case("off") || trimmed == "0" {
        return Ok(None);
    }
    let duration = parse(value)?;
    if duration.is_zero() {
        return Ok(None);
    }
    Ok(Some(duration))
}

/// Writes a duration the way people say it: `30 minutes`, `1 hour 30 minutes`, `5 seconds`.
pub fn human(duration: Duration) -> String {
    let mut secs = duration.as_secs();
    if secs == 0 {
        return format!("{} milliseconds", duration.as_millis());
    }
    let units = [
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let mut parts = Vec::new();
    for (size, name) in units {
        let n = secs / size;
        if n > 0 {
            parts.push(format!("{n} {name}{}", if n == 1 { "" } else { "s" }));
            secs %= size;
        }
    }
    parts.join(" ")
}

/// Writes a duration back in config syntax (`"15m"`), for defaults shown in docs and errors.
pub fn config_syntax(duration: Duration) -> String {
    humantime::format_duration(duration)
        .to_string()
        .replace(' ', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_units_and_compound_values() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn rejects_bare_numbers_and_garbage_with_a_hint() {
        assert!(parse("900").unwrap_err().contains("no unit"));
        assert!(parse("15 min utes").unwrap_err().contains("not a duration"));
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("-5m").is_err());
    }

    #[test]
    fn off_and_zero_disable_an_optional_limit() {
        assert_eq!(parse_optional("off"), Ok(None));
        assert_eq!(parse_optional("OFF"), Ok(None));
        assert_eq!(parse_optional("0"), Ok(None));
        assert_eq!(parse_optional("0s"), Ok(None));
        assert_eq!(parse_optional("2m"), Ok(Some(Duration::from_secs(120))));
    }

    #[test]
    fn human_form_reads_naturally() {
        assert_eq!(human(Duration::from_secs(1800)), "30 minutes");
        assert_eq!(human(Duration::from_secs(5400)), "1 hour 30 minutes");
        assert_eq!(human(Duration::from_secs(1)), "1 second");
        assert_eq!(human(Duration::from_millis(300)), "300 milliseconds");
    }

    #[test]
    fn config_syntax_round_trips() {
        for s in ["15m", "12h", "90s", "1h30m"] {
            let d = parse(s).unwrap();
            assert_eq!(parse(&config_syntax(d)).unwrap(), d);
        }
    }
}
