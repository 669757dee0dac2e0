//! Live latency: a writer appends orders at a steady rate while the engine tails the log;
//! each append is timed from its COMMIT to the COMMIT of the checkpoint that covers it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use tokio_postgres::Client;

use super::BenchError;
use super::engine::{EngineChild, EngineSpec};
use super::stats::percentile;
use crate::generate::orders::{OrderConfig, OrderGenerator};
use crate::readmodel::quote_ident;
use crate::runner::Cursor;
use refract_projection_artifacts::ORDER_SUMMARY;

/// How often the writer appends.
const TICK: Duration = Duration::from_millis(20);
/// How often the watcher reads the checkpoint (the resolution of the latencies).
const WATCH: Duration = Duration::from_millis(1);
/// The longest wait for the last appends once the writer stops.
const DRAIN: Duration = Duration::from_secs(10);

/// What the live test measured.
#[derive(Debug, Clone, Serialize)]
pub struct Tail {
    /// The projection tailing the log.
    pub projection: String,
    /// Events per second asked for.
    pub target_rate: u64,
    /// Events per second appended.
    pub achieved_rate: f64,
    /// Seconds of appending.
    pub seconds: f64,
    /// Append transactions timed.
    pub appends: usize,
    /// Appends not in the read model when the test ended.
    pub unfinished: usize,
    /// Median milliseconds from an append's COMMIT to its read model's COMMIT being seen.
    pub latency_ms_p50: Option<f64>,
    /// 99th percentile of the same.
    pub latency_ms_p99: Option<f64>,
    /// The largest of the same.
    pub latency_ms_max: Option<f64>,
    /// How often the checkpoint was looked at: latencies are over by up to this, plus a query.
    pub resolution_ms: f64,
}

/// Appends waiting for the read model, and the latencies of those that reached it.
#[derive(Default)]
struct Timings {
    pending: Vec<(Cursor, Instant)>,
    latencies_ms: Vec<f64>,
}

/// Runs `order_summary` in a child engine, lets it catch up with `head`, then appends at
/// `rate` events/s for `seconds` and times each append into the read model.
pub async fn tail(
    client: &mut Client,
    spec: &EngineSpec<'_>,
    head: Cursor,
    rate: u64,
    seconds: u64,
    seed: u64,
) -> Result<Tail, BenchError> {
    let name = "order_summary";
    super::rebuild::reset(client, spec.schema, &[name]).await?;
    let mut engine = EngineChild::start(spec, &[(name, ORDER_SUMMARY)])?;
    engine.wait_caught_up(client, spec.schema, head, Duration::from_secs(3_600)).await?;

    let timings = Arc::new(Mutex::new(Timings::default()));
    let watcher_client = crate::db::connect(spec.url).await?;
    let checkpoint = format!(
        "SELECT transaction_id::text::bigint, position FROM {}.checkpoints
          WHERE split_part(projection_name, '__', 1) = $1 ORDER BY transaction_id DESC, position DESC LIMIT 1",
        quote_ident(spec.schema)
    );
    let watched = timings.clone();
    let watcher = tokio::spawn(async move {
        loop {
            let Ok(row) = watcher_client.query_one(&checkpoint, &[&name]).await else { return };
            let (reached, now) = (Cursor { transaction_id: row.get(0), position: row.get(1) }, Instant::now());
            {
                let mut timings = watched.lock().unwrap_or_else(|p| p.into_inner());
                let Timings { pending, latencies_ms } = &mut *timings;
                pending.retain(|(cursor, committed)| {
                    let done = *cursor <= reached;
                    if done {
                        latencies_ms.push(now.duration_since(*committed).as_secs_f64() * 1e3);
                    }
                    !done
                });
            }
            tokio::time::sleep(WATCH).await;
        }
    });

    let sample = OrderConfig { orders: 500, seed, start: Utc::now(), days: 0 };
    let per_order = super::scratch::events_per_order(sample);
    let per_tick = rate as f64 * TICK.as_secs_f64();
    let last_event = format!(
        "SELECT transaction_id::text::bigint, global_position FROM {}.events ORDER BY global_position DESC LIMIT 1",
        quote_ident(spec.schema)
    );
    let started = Instant::now();
    let (mut appended, mut owed, mut tick) = (0u64, 0.0f64, 0u64);
    while started.elapsed() < Duration::from_secs(seconds) {
        tick += 1;
        owed += per_tick / per_order;
        let orders = owed.floor() as u64;
        if orders > 0 {
            owed -= orders as f64;
            let config = OrderConfig { orders, seed: seed + 1_000_000 + tick, start: Utc::now(), days: 0 };
            appended += crate::generate::load(client, spec.schema, OrderGenerator::new(config)).await?.events;
            let committed = Instant::now();
            let row = client.query_one(&last_event, &[]).await?;
            let cursor = Cursor { transaction_id: row.get(0), position: row.get(1) };
            timings.lock().unwrap_or_else(|p| p.into_inner()).pending.push((cursor, committed));
        }
        let next = started + TICK * u32::try_from(tick).unwrap_or(u32::MAX);
        tokio::time::sleep_until(next.into()).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let drain_until = Instant::now() + DRAIN;
    while Instant::now() < drain_until && !timings.lock().unwrap_or_else(|p| p.into_inner()).pending.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watcher.abort();
    engine.finish(client).await?;

    let mut timings = timings.lock().unwrap_or_else(|p| p.into_inner());
    let unfinished = timings.pending.len();
    let latencies = &mut timings.latencies_ms;
    Ok(Tail {
        projection: name.to_owned(),
        target_rate: rate,
        achieved_rate: appended as f64 / elapsed,
        seconds: elapsed,
        appends: latencies.len(),
        unfinished,
        latency_ms_p50: percentile(latencies, 0.5),
        latency_ms_p99: percentile(latencies, 0.99),
        latency_ms_max: percentile(latencies, 1.0),
        resolution_ms: WATCH.as_secs_f64() * 1e3,
    })
}
