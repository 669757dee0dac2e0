//! The `noop` projection: it receives every event of the log and writes nothing.
//!
//! `refract bench` rebuilds it to measure what the engine costs on its own (reading the log,
//! handing batches to a guest, committing checkpoints) against the raw read rate of the log.

use refract_sdk::{Description, Error, Event, Projection, State};

/// The table it declares (the engine installs one per projection) and never writes.
pub const NOOP: &str = "noop";

/// The `noop` projection.
pub struct Noop;

impl Projection for Noop {
    fn describe() -> Description {
        // No event type or category filter: every event of the log reaches it.
        Description::new("noop", env!("CARGO_PKG_VERSION")).table(NOOP, "CREATE TABLE noop (id bigint PRIMARY KEY)")
    }

    fn apply(_event: &Event, _state: &mut State) -> Result<(), Error> {
        Ok(())
    }
}

refract_sdk::export!(Noop);
