//! Log output: human-readable text or one JSON object per line, on standard error.
//!
//! Identifiers that are secrets (app session ids) are only ever logged through
//! [`crate::redact`]; cookies and tokens are never logged.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// A log filter that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("log.level: {directives:?} is not a level or filter")]
pub struct LogError {
    directives: String,
    #[source]
    source: tracing_subscriber::filter::ParseError,
}

/// Installs the global log subscriber. `RUST_LOG`, when set, overrides `log.level`.
pub fn init(config: &LogConfig, rust_log: Option<&str>) -> Result<(), LogError> {
    let directives = rust_log.unwrap_or(&config.level);
    let filter = EnvFilter::builder()
        .parse(directives)
        .map_err(|source| LogError {
            directives: directives.to_owned(),
            source,
        })?;
    // Colours only on a terminal: redirected to a file or a log collector they are noise.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let result = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // Already installed (an embedding program did it): keep theirs.
    let _ = result;
    Ok(())
}
