//! Sample data: generators of event logs, and loading them into the store fast.

mod load;
pub mod orders;

pub use load::{LoadError, LoadSummary, load};
