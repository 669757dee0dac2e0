//! Finding projection components in a directory and loading them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::subscription::Subscription;
use crate::wasm::types::Description;
use crate::wasm::{NoRows, Projector, Runtime, WasmError};

/// Operational settings of one projection, from the optional sidecar `NAME.toml` beside
/// `NAME.wasm`. Unknown keys are an error, so a misspelt setting never passes silently.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Most events per batch.
    pub batch_size: usize,
    /// Wall-clock milliseconds one call into the guest may take.
    pub deadline_ms: u64,
    /// Largest linear memory of the instance, in MiB.
    pub max_memory_mib: usize,
    /// Whether the projection may return raw SQL operations. They run with the engine's own
    /// database rights (per-projection roles are not there yet), so only a projection the
    /// operator trusts like the engine itself may; off by default.
    pub allow_sql: bool,
    /// Whether a version replaced by a newer one (hot reload or rebuild) keeps its schema,
    /// for comparison or rollback, until `refract drop`; off by default: it is dropped.
    pub keep_replaced: bool,
    /// Most MiB the guest may return for one batch (its operations, as they are copied out of
    /// the guest) or pass to the host in one call; a guest returning more fails its batch.
    pub max_result_mib: usize,
    /// What to do with an event the guest fails on (an error naming it, a trap, a deadline,
    /// memory exhausted): `stop` (the default) or `skip` it into `dead_letters`.
    pub on_error: OnError,
}

/// A projection's error policy (the `on_error` setting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The projection stops at the event: state `failed`, the status names the event and the
    /// error, until `refract retry` or a restart.
    #[default]
    Stop,
    /// The event and the error go to the `dead_letters` table, in the transaction of the batch
    /// applied without it; the projection goes on.
    Skip,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            batch_size: 20_000,
            deadline_ms: 30_000,
            max_memory_mib: 512,
            allow_sql: false,
            keep_replaced: false,
            max_result_mib: 64,
            on_error: OnError::Stop,
        }
    }
}

impl Settings {
    /// The wasm limits these settings give.
    pub fn limits(&self) -> crate::wasm::Limits {
        crate::wasm::Limits {
            call_deadline: Duration::from_millis(self.deadline_ms),
            max_memory_bytes: self.max_memory_mib << 20,
            max_result_bytes: self.max_result_mib << 20,
            ..Default::default()
        }
    }
}

/// Why a component in the directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory could not be listed.
    #[error("cannot list {dir}: {error}")]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The sidecar settings file is invalid.
    #[error("invalid settings in {path}: {message}")]
    Settings {
        /// The sidecar file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The component could not be compiled, linked or described.
    #[error("{path}: {error}")]
    Wasm {
        /// The component file.
        path: PathBuf,
        /// Why.
        error: WasmError,
    },
    /// The component describes itself with a name that cannot be a schema name.
    #[error(
        "{path}: projection name {name:?} is invalid: use 1 to 48 lowercase letters, digits and single `_`s, starting with a letter"
    )]
    Name {
        /// The component file.
        path: PathBuf,
        /// The name it gave.
        name: String,
    },
}

/// A projection component, compiled and described.
#[derive(Clone)]
pub struct Loaded {
    /// The file it came from.
    pub path: PathBuf,
    /// SHA-256 of the component's bytes, hex.
    pub content_hash: String,
    /// What the component says about itself.
    pub description: Description,
    /// Its subscription.
    pub subscription: Subscription,
    /// Its operational settings.
    pub settings: Settings,
    /// The compiled component.
    pub projector: Projector,
}

impl Loaded {
    /// The projection's name.
    pub fn name(&self) -> &str {
        &self.description.name
    }
}

/// The `.wasm` files in `dir`, sorted.
pub fn components_in(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|error| LoadError::Dir { dir: dir.to_owned(), error })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm") && p.is_file())
        .collect();
    paths.sort();
    Ok(paths)
}

/// Reads, compiles and describes the component at `path`, with its sidecar settings.
pub fn load(runtime: &Runtime, path: &Path) -> Result<Loaded, LoadError> {
    let settings = read_settings(&path.with_extension("toml"))?;
    let bytes = std::fs::read(path).map_err(|error| LoadError::Read { path: path.to_owned(), error })?;
    let content_hash = format!("{:x}", Sha256::digest(&bytes));
    let wasm = |error| LoadError::Wasm { path: path.to_owned(), error };
    let projector = runtime.load(&bytes).map_err(wasm)?;
    let description = projector
        .instantiate(&description_label(path), &settings.limits(), Box::new(NoRows))
        .and_then(|mut i| i.describe())
        .map_err(wasm)?;
    if !valid_name(&description.name) {
        return Err(LoadError::Name { path: path.to_owned(), name: description.name });
    }
    Ok(Loaded {
        path: path.to_owned(),
        content_hash,
        subscription: Subscription::from(&description.subscription),
        description,
        settings,
        projector,
    })
}

fn description_label(path: &Path) -> String {
    path.file_stem().map_or_else(|| "component".to_owned(), |s| s.to_string_lossy().into_owned())
}

fn read_settings(path: &Path) -> Result<Settings, LoadError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            toml::from_str(&text).map_err(|e| LoadError::Settings { path: path.to_owned(), message: e.to_string() })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
        Err(error) => Err(LoadError::Read { path: path.to_owned(), error }),
    }
}

/// A projection name is also a schema name, and its versions' schemas are `<name>__<n>`:
/// `[a-z][a-z0-9_]{0,47}` without `__`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 48
        && !name.contains("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_schema_names() {
        for ok in ["order_summary", "a", "v2_orders"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "Order", "2orders", "order-summary", "public\"", "order__2", &"a".repeat(49)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn settings_refuse_unknown_keys() {
        assert!(toml::from_str::<Settings>("batch_size = 100").is_ok());
        assert!(toml::from_str::<Settings>("batchsize = 100").is_err());
        assert_eq!(toml::from_str::<Settings>("on_error = \"skip\"").map(|s| s.on_error).ok(), Some(OnError::Skip));
        assert!(toml::from_str::<Settings>("on_error = \"ignore\"").is_err());
    }
}
