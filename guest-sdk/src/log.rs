//! Structured logging to the host's log.
//!
//! In a component a record goes to the engine's log (its `tracing` output) under the
//! projection's name; natively it is printed to stderr, where the test harness captures it.

use std::fmt;

/// Severity of a log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Details for debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the projection handled.
    Warn,
    /// Something went wrong.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        })
    }
}

/// Writes a log record with `key`/`value` fields:
/// `log(Level::Warn, "price missing", &[("order_id", id.as_str())])`.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    #[cfg(target_arch = "wasm32")]
    crate::guest::log(level, message, fields);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let fields: String = fields.iter().map(|(key, value)| format!(" {key}={value:?}")).collect();
        eprintln!("{level} {message}{fields}");
    }
}
