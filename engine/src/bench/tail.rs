//! Live latency: a writer appends orders at a steady rate while the engine tails the log;
//! each append is timed from its COMMIT to the COMMIT of the checkpoint that covers it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::Client;

use super::BenchError;
use super::engine::{EngineChild, EngineSpec};
use super::stats::percentile;
use super::writer::{Appender, TICK, append_at_rate};
use crate::readmodel::quote_ident;
use crate::runner::Cursor;
use refract_projection_artifacts::ORDER_SUMMARY;

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
    /// Events appended.
    pub events: u64,
    /// Transactions they were appended in: the writer appends what is due every
    /// `append_interval_ms` in one transaction (one COMMIT per event would not reach 10,000
    /// events/s on one connection: each waits for its WAL flush).
    pub appends: u64,
    /// Milliseconds between the writer's transactions.
    pub append_interval_ms: f64,
    /// Appends whose latency was measured (all but the unfinished ones).
    pub timed: usize,
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

/// Runs `order_summary` in a child engine, lets it catch up with `head`, then appends the
/// order log (orders in progress interleaved, as in the scratch log) at `rate` events/s for
/// `seconds` and times each append into the read model.
pub async fn tail(
    client: &mut Client,
    spec: &EngineSpec<'_>,
    head: Cursor,
    rate: u64,
    seconds: u64,
    seed: u64,
) -> Result<Tail, BenchError> {
    let name = "order_summary";
    // Left at the head by the rebuilds (a projection not installed yet is built first).
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

    let appender = Appender::new(crate::db::connect(spec.url).await?, spec.schema).await?;
    let log = super::scratch::live_log(seed.wrapping_add(1), rate * (seconds + 2));
    let paced = append_at_rate(&appender, log, rate, Duration::from_secs(seconds), |cursor, committed| {
        timings.lock().unwrap_or_else(|p| p.into_inner()).pending.push((cursor, committed));
    })
    .await?;
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
        achieved_rate: paced.events as f64 / paced.seconds,
        seconds: paced.seconds,
        events: paced.events,
        appends: paced.transactions,
        append_interval_ms: TICK.as_secs_f64() * 1e3,
        timed: latencies.len(),
        unfinished,
        latency_ms_p50: percentile(latencies, 0.5),
        latency_ms_p99: percentile(latencies, 0.99),
        latency_ms_max: percentile(latencies, 1.0),
        resolution_ms: WATCH.as_secs_f64() * 1e3,
    })
}
