//! Op → SQL translation: the operations order_summary's component returns for a batch,
//! planned into set-based statements (`refract::readmodel::plan`), by batch size.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use refract::readmodel::{Tables, plan};
use refract::wasm::{Limits, NoRows, Runtime};
use refract_benches::wit_events;

fn order_summary_tables() -> Tables {
    Tables::from_columns(
        "order_summary",
        [
            (
                "order_summary",
                vec!["order_id"],
                vec![
                    ("order_id", "uuid"),
                    ("customer_id", "uuid"),
                    ("status", "text"),
                    ("total", "numeric"),
                    ("item_count", "integer"),
                    ("version", "bigint"),
                    ("updated_at", "timestamp with time zone"),
                ],
            ),
            ("order_lines", vec!["order_id"], vec![("order_id", "uuid"), ("lines", "jsonb")]),
        ],
    )
}

fn op_planning(c: &mut Criterion) {
    let runtime = Runtime::new().expect("a wasmtime engine");
    let bytes = std::fs::read(refract_projection_artifacts::ORDER_SUMMARY).expect("the order_summary component");
    let projector = runtime.load(&bytes).expect("order_summary compiles");
    let tables = order_summary_tables();
    let mut group = c.benchmark_group("plan/order_summary");
    for size in [1_000usize, 20_000] {
        let mut instance =
            projector.instantiate("order_summary", &Limits::default(), Box::new(NoRows)).expect("an instance");
        let ops = instance.apply(&wit_events(size)).expect("no trap").expect("the batch is accepted");
        plan(&tables, &ops).expect("the operations plan");
        group.throughput(Throughput::Elements(ops.len() as u64));
        group.bench_with_input(BenchmarkId::new("ops_of_events", size), &ops, |b, ops| {
            b.iter(|| black_box(plan(&tables, ops).expect("the operations plan")));
        });
    }
    group.finish();
}

criterion_group!(benches, op_planning);
criterion_main!(benches);
