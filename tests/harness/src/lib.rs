//! Test harness: a PostgreSQL database of its own for every test, an independent reference
//! model of the order domain, and drivers for the engine and for concurrent writers.

mod db;
pub mod engine;
pub mod reference;
pub mod workload;

pub use db::TestDb;
