//! Applies batches of the bench log to one instance of a projection component, once, and
//! exits: a fixed amount of guest work, for instruction counts that do not depend on how busy
//! the machine is (see README "Profiling a projection").
//!
//! `cargo run --release -p refract-benches --example dispatch -- COMPONENT.wasm [BATCHES]`
//! applies BATCHES (default 2) batches of 20,000 events; the instance is kept, so batches after
//! the first find the SDK's cache warm, as in a rebuild. Under
//! `valgrind --tool=callgrind --smc-check=all-non-file --toggle-collect='refract::wasm::runtime::Instance::apply*'`
//! the count covers the guest calls only (the guest, and the host's lowering of the events and
//! lifting of the operations); the difference between 2 and 1 batches is one warm batch.

use anyhow::Context;
use refract::wasm::{Limits, NoRows, Runtime};
use refract_benches::wit_events;

/// Events per batch: the engine's default.
const BATCH: usize = 20_000;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().context("usage: dispatch COMPONENT.wasm [BATCHES]")?;
    let batches: usize = args.next().map_or(Ok(2), |n| n.parse()).context("BATCHES: a number")?;
    let bytes = std::fs::read(&path).with_context(|| format!("reading {path}"))?;
    let projector = Runtime::new()?.load(&bytes)?;
    let mut instance = projector.instantiate("dispatch", &Limits::default(), Box::new(NoRows))?;
    for batch in wit_events(BATCH * batches).chunks(BATCH) {
        let ops =
            instance.apply(batch)?.map_err(|error| anyhow::anyhow!("the batch was refused: {}", error.message))?;
        std::hint::black_box(ops);
    }
    Ok(())
}
