//! Loading and running projection components (wasmtime, component model).
//!
//! A [`Runtime`] compiles components into [`Projector`]s; a projector makes [`Instance`]s,
//! each with a store of its own, that the engine calls once per batch. An instance is
//! reused across batches. After any error an instance must be thrown away: the guest may
//! have changed its in-memory state for a batch whose writes were never committed.

mod bindings;
mod determinism;
mod host;
mod output;
mod packed;
mod runtime;

pub use bindings::{CONTRACT_VERSIONS, types};
pub use host::{NoRows, RowSource};
pub use runtime::{Instance, Limits, Projector, Runtime, WasmError};
