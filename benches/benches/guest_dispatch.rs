//! Guest dispatch: one `apply` call of the order_summary component per batch, by batch size,
//! on a fresh instance each time (as after a restart: the SDK's row cache is empty).

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use refract::wasm::{Limits, NoRows, Runtime};
use refract_benches::wit_events;

fn guest_dispatch(c: &mut Criterion) {
    let runtime = Runtime::new().expect("a wasmtime engine");
    let bytes = std::fs::read(refract_projection_artifacts::ORDER_SUMMARY).expect("the order_summary component");
    let projector = runtime.load(&bytes).expect("order_summary compiles");
    let limits = Limits::default();
    let mut group = c.benchmark_group("guest_dispatch/order_summary");
    group.sample_size(10);
    for size in [100usize, 1_000, 20_000] {
        let events = wit_events(size);
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &events, |b, events| {
            b.iter_batched(
                || projector.instantiate("order_summary", &limits, Box::new(NoRows)).expect("an instance"),
                |mut instance| black_box(instance.apply(events).expect("no trap").expect("the batch is accepted")),
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, guest_dispatch);
criterion_main!(benches);
