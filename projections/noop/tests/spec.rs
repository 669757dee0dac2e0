//! `noop` receives every event and writes nothing.

use noop::Noop;
use refract_sdk::Event;
use refract_sdk::testing::Harness;

#[test]
fn every_event_is_received_and_nothing_is_written() {
    let mut harness = Harness::<Noop>::new();
    let ops = harness
        .apply([Event::new("order-1", "OrderCreated", "{}"), Event::new("invoice-9", "Anything", "not even json")])
        .unwrap();
    assert!(ops.is_empty(), "{ops:#?}");
}
