//! Inputs of the criterion benches in `benches/`: the order domain's generated log (the one
//! `refract bench` loads) in the shapes the engine and the guest SDK see.
//!
//! Run them with `cargo bench -p refract-benches`; see the README's "Performance" section for
//! saving and comparing baselines.

use refract::generate::orders::GeneratedEvent;
use refract::wasm::types::Event;

/// Seed of every bench's log.
pub const SEED: u64 = 42;

/// The first `n` events of the bench log, as generated.
pub fn generated(n: usize) -> Vec<GeneratedEvent> {
    refract::bench::scratch::order_log(n as u64, SEED).collect()
}

/// The first `n` events of the bench log as the engine hands them to a guest.
pub fn wit_events(n: usize) -> Vec<Event> {
    generated(n)
        .into_iter()
        .enumerate()
        .map(|(i, e)| Event {
            global_position: i as i64 + 1,
            stream_id: e.stream_id,
            stream_version: e.version,
            event_id: e.event_id.hyphenated().to_string(),
            event_type: e.event_type.to_owned(),
            data: e.data.to_string().into_bytes(),
            metadata: e.metadata.to_string().into_bytes(),
            timestamp: e.timestamp.timestamp_micros(),
        })
        .collect()
}

/// The same events as the guest SDK presents them to a projection.
pub fn sdk_events(n: usize) -> Vec<refract_sdk::Event> {
    wit_events(n)
        .into_iter()
        .map(|e| {
            refract_sdk::Event::new(e.stream_id, e.event_type, e.data)
                .with_position(e.global_position)
                .with_version(e.stream_version)
                .with_id(e.event_id)
                .with_timestamp(refract_sdk::Timestamp::from_micros(e.timestamp))
                .with_metadata(e.metadata)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shapes_carry_the_same_events() {
        let (wit, sdk) = (super::wit_events(50), super::sdk_events(50));
        assert_eq!(wit.len(), 50);
        for (w, s) in wit.iter().zip(&sdk) {
            assert_eq!((w.stream_id.as_str(), w.event_type.as_str()), (s.stream_id(), s.event_type()));
            assert_eq!(w.data, s.data_bytes());
        }
    }
}
