//! A projection's own work, natively: `order_summary` applied through the guest SDK's
//! [`Harness`] (subscription filter, row cache, write coalescing and the in-memory tables the
//! harness writes to), batch after batch over the bench log, without wasm or a database.
//! Inside the component the same code runs compiled to wasm; `guest_dispatch` measures that.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use order_summary::OrderSummary;
use refract_benches::sdk_events;
use refract_sdk::testing::Harness;

/// Events of the log replayed per iteration, and the batch size the engine uses by default.
const EVENTS: usize = 100_000;
const BATCH: usize = 20_000;

fn order_summary_native(c: &mut Criterion) {
    let events = sdk_events(EVENTS);
    let mut group = c.benchmark_group("projection_native");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function(format!("order_summary/{EVENTS}"), |b| {
        b.iter_batched(
            || (Harness::<OrderSummary>::new(), events.clone()),
            |(mut harness, events)| {
                let mut ops = 0;
                for batch in events.chunks(BATCH) {
                    ops += harness.apply(batch.iter().cloned()).expect("the batch is accepted").len();
                }
                black_box(ops)
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, order_summary_native);
criterion_main!(benches);
