//! Refract: a projection engine for event-sourced systems on PostgreSQL.
//!
//! Applications append immutable events to an `events` table. Refract tails that table in
//! order, hands batches of events to projections compiled as WebAssembly components, and
//! writes the read models they emit in the same transaction as each projection's checkpoint.

pub mod bench;
pub mod db;
pub mod generate;
pub mod http;
pub mod metrics;
pub mod migrate;
pub mod readmodel;
pub mod runner;
pub mod store;
pub mod wasm;
