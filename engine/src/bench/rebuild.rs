//! Rebuilds from zero: each case's projections reset, then run by a child engine until they
//! have caught up with the log.

use std::time::Duration;

use serde::Serialize;
use tokio_postgres::Client;

use super::BenchError;
use super::engine::{EngineChild, EngineSpec};
use super::stats::percentile;
use crate::runner::Cursor;
use crate::runner::install::{DropError, drop_projection};
use refract_projection_artifacts::{NOOP, ORDER_SUMMARY, REVENUE_BY_DAY, UPSERT_PER_EVENT};

/// A set of projections rebuilt together, in one scan of the log.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// The name the report gives it.
    pub name: &'static str,
    /// `(projection name, component path)` of each projection.
    pub projections: &'static [(&'static str, &'static str)],
    /// A view whose rows are counted after the rebuild (a check that it wrote what it should).
    pub rows_view: Option<&'static str>,
    /// Whether it writes one row per event (compared with the raw write limit too).
    pub write_heavy: bool,
}

/// The rebuilds measured, in order.
pub const CASES: [Case; 5] = [
    Case { name: "noop", projections: &[("noop", NOOP)], rows_view: None, write_heavy: false },
    Case {
        name: "order_summary",
        projections: &[("order_summary", ORDER_SUMMARY)],
        rows_view: Some("order_summary.order_summary"),
        write_heavy: false,
    },
    Case {
        name: "revenue_by_day",
        projections: &[("revenue_by_day", REVENUE_BY_DAY)],
        rows_view: Some("revenue_by_day.revenue_by_day"),
        write_heavy: false,
    },
    Case {
        name: "all three in one scan",
        projections: &[("noop", NOOP), ("order_summary", ORDER_SUMMARY), ("revenue_by_day", REVENUE_BY_DAY)],
        rows_view: Some("order_summary.order_summary"),
        write_heavy: false,
    },
    Case {
        name: "upsert_per_event",
        projections: &[("upsert_per_event", UPSERT_PER_EVENT)],
        rows_view: Some("upsert_per_event.event_log"),
        write_heavy: true,
    },
];

/// One rebuild's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Rebuild {
    /// The case's name.
    pub case: String,
    /// Its projections.
    pub projections: Vec<String>,
    /// Events in the log.
    pub events: u64,
    /// Seconds from the projections' installation to the last checkpoint reaching the head.
    pub seconds: f64,
    /// `events / seconds`.
    pub events_per_second: f64,
    /// `events_per_second` over the raw read limit's events/s of the same run.
    pub ratio_to_raw_read: f64,
    /// For the write-heavy case: `events_per_second` (one row per event) over the raw write
    /// limit's rows/s of the same run.
    pub ratio_to_raw_write: Option<f64>,
    /// Peak resident set size of the engine process, MiB.
    pub peak_rss_mib: Option<f64>,
    /// CPU seconds of the engine process (start-up and component compilation included).
    pub engine_cpu_seconds: Option<f64>,
    /// CPU seconds of the PostgreSQL backends of the engine's connections.
    pub postgres_cpu_seconds: Option<f64>,
    /// Batches committed (over all the case's projections).
    pub batches: usize,
    /// Median milliseconds per committed batch (apply + plan + commit, as the engine logs it).
    pub batch_ms_p50: Option<f64>,
    /// 99th percentile of the same.
    pub batch_ms_p99: Option<f64>,
    /// Rows of the case's `rows_view` afterwards.
    pub rows: Option<i64>,
}

/// The yardsticks a rebuild is compared with, from the same run.
#[derive(Debug, Clone, Copy)]
pub struct Yardsticks {
    /// Raw read events/s.
    pub read_per_second: f64,
    /// Raw write rows/s.
    pub write_per_second: f64,
}

/// Removes projections `names` with the engine's own `refract drop` (schemas, versions,
/// roles, checkpoints, status), so that the next engine builds them from the start of the log.
/// A projection that was never installed is fine; one whose stopped engine's session has not
/// ended yet is tried again for a few seconds.
pub async fn reset(client: &mut Client, schema: &str, names: &[&str]) -> Result<(), BenchError> {
    for name in names {
        for attempt in 1.. {
            match drop_projection(client, schema, name).await {
                Ok(_) | Err(DropError::Unknown(_)) => break,
                Err(DropError::Running(_)) if attempt < 50 => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(error) => return Err(error.into()),
            }
        }
    }
    Ok(())
}

/// Rebuilds `case` from zero with a child engine and measures it against `yardsticks`.
pub async fn rebuild(
    client: &mut Client,
    spec: &EngineSpec<'_>,
    case: &Case,
    events: u64,
    head: Cursor,
    yardsticks: Yardsticks,
) -> Result<Rebuild, BenchError> {
    let names: Vec<&str> = case.projections.iter().map(|(name, _)| *name).collect();
    reset(client, spec.schema, &names).await?;
    let mut engine = EngineChild::start(spec, case.projections)?;
    let timeout = Duration::from_secs((events / 1_000).max(120));
    let (installed, caught_up) = engine.wait_caught_up(client, spec.schema, head, timeout).await?;
    let mut usage = engine.finish(client).await?;
    let seconds = caught_up.duration_since(installed).as_secs_f64().max(1e-3);
    let events_per_second = events as f64 / seconds;
    let rows = match case.rows_view {
        Some(view) => Some(client.query_one(&format!("SELECT count(*) FROM {view}"), &[]).await?.get(0)),
        None => None,
    };
    Ok(Rebuild {
        case: case.name.to_owned(),
        projections: names.iter().map(|n| (*n).to_owned()).collect(),
        events,
        seconds,
        events_per_second,
        ratio_to_raw_read: events_per_second / yardsticks.read_per_second,
        ratio_to_raw_write: case.write_heavy.then(|| events_per_second / yardsticks.write_per_second),
        peak_rss_mib: usage.peak_rss_bytes.map(|b| b as f64 / f64::from(1 << 20)),
        engine_cpu_seconds: usage.engine_cpu_seconds,
        postgres_cpu_seconds: usage.postgres_cpu_seconds,
        batches: usage.batch_ms.len(),
        batch_ms_p50: percentile(&mut usage.batch_ms, 0.5),
        batch_ms_p99: percentile(&mut usage.batch_ms, 0.99),
        rows,
    })
}
