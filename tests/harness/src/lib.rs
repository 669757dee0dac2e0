//! Test harness: a PostgreSQL database of its own for every test.

pub mod reference;
pub mod workload;
