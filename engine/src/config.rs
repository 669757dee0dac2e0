//! Settings from flags, the environment and an optional TOML file.
//!
//! Precedence: flags, then environment variables (clap reads both), then the file named by
//! `--config` (or `REFRACT_CONFIG`), then the defaults that `--help` shows. The file's keys
//! are the long flag names with `_` for `-`; an unknown key is an error, so that a typo is
//! not silently ignored.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Deserialize;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the span (projection name and version) of each.
    Json,
}

/// Where the engine serves HTTP: an address, or nowhere (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HttpAddress(pub Option<SocketAddr>);

/// The default address of the engine's HTTP endpoints.
pub const DEFAULT_HTTP: &str = "127.0.0.1:9464";

impl FromStr for HttpAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "off" {
            return Ok(HttpAddress(None));
        }
        s.parse()
            .map(|a| HttpAddress(Some(a)))
            .map_err(|_| format!("{s:?} is neither HOST:PORT (an IP address) nor `off`"))
    }
}

impl TryFrom<String> for HttpAddress {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for HttpAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(address) => address.fmt(f),
            None => f.write_str("off"),
        }
    }
}

/// The settings of `refract run` a config file may hold (see the module docs).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunFile {
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--schema`.
    pub schema: Option<String>,
    /// `--projections`; relative to the file's folder.
    pub projections: Option<PathBuf>,
    /// `--poll-interval-ms`.
    pub poll_interval_ms: Option<u64>,
    /// `--no-notify`.
    pub no_notify: Option<bool>,
    /// `--http`.
    pub http: Option<HttpAddress>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
    /// `--cache-dir`; relative to the file's folder.
    pub cache_dir: Option<PathBuf>,
}

impl RunFile {
    /// Reads `path`; relative paths in it are taken from the file's folder.
    pub fn read(path: &Path) -> anyhow::Result<RunFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut file: RunFile = toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
        if let Some(folder) = path.parent() {
            file.projections = file.projections.map(|p| folder.join(p));
            file.cache_dir = file.cache_dir.map(|p| folder.join(p));
        }
        Ok(file)
    }
}

/// `given` when it came from a flag or the environment; otherwise the file's value, when it
/// has one; otherwise `given` (clap's default).
pub fn layered<T>(matches: &ArgMatches, id: &str, given: T, from_file: Option<T>) -> T {
    match matches.value_source(id) {
        Some(ValueSource::CommandLine | ValueSource::EnvVariable) => given,
        _ => from_file.unwrap_or(given),
    }
}
