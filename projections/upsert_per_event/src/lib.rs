//! The `upsert_per_event` projection: one row per event of the log, keyed by its event id.
//!
//! `refract bench` rebuilds it to measure the engine's write path against the raw write rate
//! of the database: every event becomes an upsert of a row of its own, nothing is read back.

use refract_sdk::{Description, Error, Event, Projection, Row, State, Uuid};

/// The read model.
pub const EVENT_LOG: &str = "event_log";

/// The `upsert_per_event` projection.
pub struct UpsertPerEvent;

impl Projection for UpsertPerEvent {
    fn describe() -> Description {
        Description::new("upsert_per_event", env!("CARGO_PKG_VERSION")).table(
            EVENT_LOG,
            "CREATE TABLE event_log (
                event_id uuid PRIMARY KEY,
                stream_id text NOT NULL,
                version bigint NOT NULL,
                event_type text NOT NULL,
                recorded_at timestamptz NOT NULL
            )",
        )
    }

    fn apply(event: &Event, state: &mut State) -> Result<(), Error> {
        let event_id: Uuid = event.event_id().parse()?;
        let row = Row::new()
            .with("stream_id", event.stream_id())
            .with("version", event.stream_version())
            .with("event_type", event.event_type())
            .with("recorded_at", event.timestamp());
        state.put(EVENT_LOG, ("event_id", event_id), row)
    }
}

refract_sdk::export!(UpsertPerEvent);
