//! `upsert_per_event` writes one row per event, keyed by its event id.

use refract_sdk::testing::Harness;
use refract_sdk::{Event, Timestamp};
use upsert_per_event::{EVENT_LOG, UpsertPerEvent};

const FIRST: &str = "00000000-0000-4000-8000-000000000001";
const SECOND: &str = "00000000-0000-4000-8000-000000000002";

#[test]
fn one_upsert_per_event_of_any_stream() {
    let mut harness = Harness::<UpsertPerEvent>::new();
    let ops = harness
        .apply([
            Event::new("order-1", "OrderCreated", "{}").with_id(FIRST).with_version(1),
            Event::new("invoice-9", "Anything", "{}").with_id(SECOND).with_version(4),
        ])
        .unwrap();
    assert_eq!(ops.len(), 2, "{ops:#?}");
    let row = harness.row(EVENT_LOG, ("event_id", SECOND.parse::<refract_sdk::Uuid>().unwrap())).expect("a row");
    assert_eq!(row.get::<String>("stream_id").unwrap(), "invoice-9");
    assert_eq!(row.get::<i64>("version").unwrap(), 4);
    assert_eq!(row.get::<String>("event_type").unwrap(), "Anything");
    assert_eq!(row.get::<Timestamp>("recorded_at").unwrap(), Event::new("x", "y", "{}").timestamp());
}

#[test]
fn an_event_id_that_is_not_a_uuid_refuses_the_batch() {
    let mut harness = Harness::<UpsertPerEvent>::new();
    assert!(harness.apply([Event::new("order-1", "OrderCreated", "{}").with_id("not-a-uuid")]).is_err());
}
