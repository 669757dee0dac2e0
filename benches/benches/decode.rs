//! Event decoding, as a projection does it: the typed payloads of the order domain parsed
//! from each event's JSON by the guest SDK (natively; inside the component it is the same
//! code compiled to wasm). The engine's own row decoding (`runner::reader`) is private and
//! needs a live `tokio_postgres::Row`; `refract bench`'s raw read measures it with the query.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use order_domain::{ITEM_ADDED, ITEM_REMOVED, ItemAdded, ItemRemoved, ORDER_CREATED, OrderCreated, order_id};
use refract_benches::sdk_events;

fn decode(event: &refract_sdk::Event) -> usize {
    let id = order_id(event).expect("an order stream").is_some() as usize;
    let payload = match event.event_type() {
        ORDER_CREATED => event.data::<OrderCreated>().map(|_| 1),
        ITEM_ADDED => event.data::<ItemAdded>().map(|_| 2),
        ITEM_REMOVED => event.data::<ItemRemoved>().map(|_| 3),
        _ => Ok(0),
    };
    id + payload.expect("a well-formed payload")
}

fn event_decoding(c: &mut Criterion) {
    let events = sdk_events(20_000);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("order_domain_payloads/20000", |b| {
        b.iter(|| black_box(events.iter().map(decode).sum::<usize>()));
    });
    group.finish();
}

criterion_group!(benches, event_decoding);
criterion_main!(benches);
