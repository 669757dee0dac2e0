//! Writing the order log the way producers do: many transactions, each appending a run of the
//! time-ordered log, so that events carry many different `transaction_id`s (the engine reads
//! in `(transaction_id, global_position)` order). Used to fill the scratch log and to append
//! live while an engine tails it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::{StreamExt as _, TryStreamExt as _};
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

use super::BenchError;
use crate::generate::orders::GeneratedEvent;
use crate::readmodel::quote_ident;
use crate::runner::Cursor;
use crate::store::category;

/// Events per transaction of the scratch log: drawn uniformly from this range.
pub const FILL_TRANSACTION_EVENTS: std::ops::RangeInclusive<usize> = 10..=100;
/// Transactions of the fill in flight at once on its connection (pipelined, still run and
/// committed one after the other, in log order).
const FILL_PIPELINE: usize = 8;
/// How often a paced writer appends: one transaction per tick.
pub const TICK: Duration = Duration::from_millis(20);

/// Appends runs of the generated log, one transaction (one statement) per run, on a
/// connection of its own.
pub struct Appender {
    client: Client,
    statement: Statement,
}

impl Appender {
    /// An appender into `schema`'s store over `client`.
    pub async fn new(client: Client, schema: &str) -> Result<Self, BenchError> {
        let schema = quote_ident(schema);
        // One statement is one transaction: its events, and each stream's `streams` row
        // created or moved to its last version, as the store's own append keeps it.
        let statement = client
            .prepare(&format!(
                "WITH appended AS (
                     INSERT INTO {schema}.events (stream_id, version, event_id, event_type, data, metadata, timestamp)
                     SELECT * FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[],
                                          $7::timestamptz[])
                     RETURNING global_position
                 ), streams AS (
                     INSERT INTO {schema}.streams (stream_id, category, version, created_at, updated_at)
                     SELECT * FROM unnest($8::text[], $9::text[], $10::bigint[], $11::timestamptz[], $12::timestamptz[])
                     ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
                 )
                 SELECT pg_current_xact_id()::text::bigint, max(global_position) FROM appended"
            ))
            .await?;
        Ok(Appender { client, statement })
    }

    /// Appends `events` (not empty; in log order, each stream's versions continuing where it
    /// stands) in one transaction. Returns the cursor of its last event.
    pub async fn append(&self, events: &[GeneratedEvent]) -> Result<Cursor, tokio_postgres::Error> {
        let stream_ids: Vec<&str> = events.iter().map(|e| e.stream_id.as_str()).collect();
        let versions: Vec<i64> = events.iter().map(|e| e.version).collect();
        let event_ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type).collect();
        let data: Vec<&Value> = events.iter().map(|e| &e.data).collect();
        let metadata: Vec<&Value> = events.iter().map(|e| &e.metadata).collect();
        let timestamps: Vec<DateTime<Utc>> = events.iter().map(|e| e.timestamp).collect();
        let streams = StreamRows::of(events);
        let categories: Vec<&str> = streams.ids.iter().map(|id| category(id)).collect();
        let row = self
            .client
            .query_one(
                &self.statement,
                &[
                    &stream_ids,
                    &versions,
                    &event_ids,
                    &types,
                    &data,
                    &metadata,
                    &timestamps,
                    &streams.ids,
                    &categories,
                    &streams.versions,
                    &streams.created_at,
                    &streams.updated_at,
                ],
            )
            .await?;
        Ok(Cursor { transaction_id: row.get(0), position: row.get(1) })
    }
}

/// The `streams` rows of a run of events, in order of first appearance: each stream's last
/// version, its first event's time (its creation time, if the run starts it) and its last's.
#[derive(Debug, Default, PartialEq)]
struct StreamRows<'a> {
    ids: Vec<&'a str>,
    versions: Vec<i64>,
    created_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
}

impl<'a> StreamRows<'a> {
    fn of(events: &'a [GeneratedEvent]) -> Self {
        let mut rows = StreamRows::default();
        let mut slot: HashMap<&str, usize> = HashMap::new();
        for event in events {
            match slot.get(event.stream_id.as_str()) {
                Some(&i) => {
                    rows.versions[i] = event.version;
                    rows.updated_at[i] = event.timestamp;
                }
                None => {
                    slot.insert(&event.stream_id, rows.ids.len());
                    rows.ids.push(&event.stream_id);
                    rows.versions.push(event.version);
                    rows.created_at.push(event.timestamp);
                    rows.updated_at.push(event.timestamp);
                }
            }
        }
        rows
    }
}

/// `log` cut into runs of [`FILL_TRANSACTION_EVENTS`] events (the last may be shorter), the
/// sizes drawn from `seed`.
pub fn runs(log: impl Iterator<Item = GeneratedEvent>, seed: u64) -> impl Iterator<Item = Vec<GeneratedEvent>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut log = log.fuse();
    std::iter::from_fn(move || {
        let run: Vec<GeneratedEvent> = log.by_ref().take(rng.random_range(FILL_TRANSACTION_EVENTS)).collect();
        (!run.is_empty()).then_some(run)
    })
}

/// What a fill wrote.
#[derive(Debug, Clone, Copy)]
pub struct Filled {
    /// Events written.
    pub events: u64,
    /// Transactions they were written in.
    pub transactions: u64,
}

/// Appends `runs` one transaction each, in order, several in flight at once.
pub async fn fill(appender: &Appender, runs: impl Iterator<Item = Vec<GeneratedEvent>>) -> Result<Filled, BenchError> {
    // The connection runs the statements in the order they are sent, and `buffered` sends
    // them in the order of `runs`: the log's order is the generator's.
    let filled = futures_util::stream::iter(runs)
        .map(|run| async move { appender.append(&run).await.map(|_| run.len() as u64) })
        .buffered(FILL_PIPELINE)
        .try_fold(Filled { events: 0, transactions: 0 }, |filled, events| async move {
            Ok(Filled { events: filled.events + events, transactions: filled.transactions + 1 })
        })
        .await?;
    Ok(filled)
}

/// What a paced writer appended.
#[derive(Debug, Clone, Copy)]
pub struct Paced {
    /// Events appended.
    pub events: u64,
    /// Transactions they were appended in (one per [`TICK`] at most).
    pub transactions: u64,
    /// Seconds of appending.
    pub seconds: f64,
}

/// Appends events of `log` at `rate` events/s for `duration`: every [`TICK`], the events due
/// by then in one transaction (a writer late on its schedule appends more at once). Calls
/// `appended` with each transaction's last cursor and the moment its COMMIT returned.
pub async fn append_at_rate(
    appender: &Appender,
    mut log: impl Iterator<Item = GeneratedEvent>,
    rate: u64,
    duration: Duration,
    mut appended: impl FnMut(Cursor, Instant),
) -> Result<Paced, BenchError> {
    let started = Instant::now();
    let (mut paced, mut tick) = (Paced { events: 0, transactions: 0, seconds: 0.0 }, 0u32);
    while started.elapsed() < duration {
        tick += 1;
        let due = (rate as f64 * started.elapsed().as_secs_f64()) as u64;
        let run: Vec<GeneratedEvent> = log.by_ref().take(due.saturating_sub(paced.events) as usize).collect();
        if !run.is_empty() {
            let cursor = appender.append(&run).await?;
            appended(cursor, Instant::now());
            paced.events += run.len() as u64;
            paced.transactions += 1;
        }
        tokio::time::sleep_until((started + TICK * tick).into()).await;
    }
    paced.seconds = started.elapsed().as_secs_f64();
    Ok(paced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::scratch::order_log;

    #[test]
    fn runs_cover_the_log_in_order_in_sizes_of_the_range_fixed_by_the_seed() {
        let log: Vec<GeneratedEvent> = order_log(5_000, 3).collect();
        let cut: Vec<Vec<GeneratedEvent>> = runs(log.clone().into_iter(), 3).collect();
        assert_eq!(cut.concat(), log);
        assert!(cut[..cut.len() - 1].iter().all(|r| FILL_TRANSACTION_EVENTS.contains(&r.len())));
        let sizes = |seed| runs(log.iter().cloned(), seed).map(|r| r.len()).collect::<Vec<_>>();
        assert_eq!(sizes(3), sizes(3));
        assert_ne!(sizes(3), sizes(4));
    }

    #[test]
    fn stream_rows_carry_each_streams_last_version_and_first_and_last_times() {
        let log: Vec<GeneratedEvent> = order_log(2_000, 5).collect();
        let rows = StreamRows::of(&log);
        let first = &log[0];
        assert_eq!(rows.ids[0], first.stream_id);
        let of_first: Vec<&GeneratedEvent> = log.iter().filter(|e| e.stream_id == first.stream_id).collect();
        assert_eq!(rows.versions[0], of_first.last().unwrap().version);
        assert_eq!(rows.created_at[0], first.timestamp);
        assert_eq!(rows.updated_at[0], of_first.last().unwrap().timestamp);
        let distinct: std::collections::HashSet<&str> = log.iter().map(|e| e.stream_id.as_str()).collect();
        assert_eq!(rows.ids.len(), distinct.len());
    }
}
