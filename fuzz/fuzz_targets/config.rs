//! Fuzzes configuration loading ([`Config::load`]): arbitrary text as a TOML source, or as
//! `IDLEGATE_*` environment variables (one `NAME=value` per line, the prefix added), must
//! never panic. Environment variables are the only non-default source in the second mode, so
//! every error there must name a key: a validation error its key, a merge error the key path
//! of one of the variables given.
//!
//! The first input byte chooses the mode (even: TOML, odd: environment).
#![no_main]

use idlegate::config::{Config, ConfigError, Sources};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest).into_owned();
    if mode & 1 == 0 {
        if let Err(error) = Config::load(&Sources {
            toml: Some(text),
            ..Sources::default()
        }) {
            assert!(!error.to_string().is_empty(), "an error without a message");
        }
        return;
    }
    let env: Vec<(String, String)> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (format!("IDLEGATE_{name}"), value.to_owned()))
        .collect();
    let Err(error) = Config::load(&Sources {
        env: env.clone(),
        ..Sources::default()
    }) else {
        return;
    };
    match &error {
        ConfigError::Invalid { key, .. } => assert!(!key.is_empty(), "{error}"),
        ConfigError::Source(message) => {
            // The variable's name without the prefix, lowercased, its first path segment.
            let named = env.iter().any(|(name, _)| {
                let key = name["IDLEGATE_".len()..].to_ascii_lowercase();
                let first = key.split("__").next().unwrap_or_default();
                !first.is_empty() && message.contains(first)
            });
            assert!(named, "no key named: {message}");
        }
    }
});
