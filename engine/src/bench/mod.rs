//! `refract bench`: replay throughput against what PostgreSQL itself delivers on the same
//! machine, in one run against a scratch database.
//!
//! The run appends a generated order log in many transactions ([`writer`]), then, `repeat`
//! times: reads the whole log with the engine's read query and nothing else (the raw read
//! limit), upserts as many rows as `order_summary` ends with in one set-based statement (the
//! raw write limit), and rebuilds each [`rebuild::CASES`] from zero in a child engine process.
//! Ratios are taken inside each run; the report gives the median over runs. Optionally it then
//! measures live latency ([`TailSettings`]) and the memory of many projections live
//! ([`memory`]).

mod engine;
pub mod limits;
pub mod memory;
pub mod procstat;
pub mod rebuild;
pub mod report;
pub mod scratch;
pub mod stats;
pub mod tail;
pub mod writer;

use std::path::PathBuf;
use std::time::Instant;

use indicatif::ProgressBar;
use serde::Serialize;

pub use engine::EngineSpec;
use limits::{RawRead, RawWrite};
use memory::Memory;
use rebuild::{CASES, Rebuild, Yardsticks};
use stats::median;
use tail::Tail;

/// Why a bench run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The server could not be reached.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// A query failed.
    #[error("database: {}", crate::db::describe(.0))]
    Query(#[from] tokio_postgres::Error),
    /// The event store could not be created.
    #[error(transparent)]
    Migrate(#[from] crate::migrate::MigrateError),
    /// A projection could not be reset for its rebuild.
    #[error(transparent)]
    Reset(#[from] crate::runner::install::DropError),
    /// A file or process operation failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The log did not become readable: a transaction open elsewhere on the server held the
    /// visibility horizon below it.
    #[error(
        "the log is not below the visibility horizon after {0:?}: a transaction open on the server holds it back \
         (pg_stat_activity shows which)"
    )]
    NotVisible(std::time::Duration),
    /// A component could not be prepared for the bench.
    #[error("cannot prepare the bench's components: {0}")]
    Component(String),
    /// The engine under measurement failed, exited or did not catch up.
    #[error("the engine under measurement: {0}")]
    Engine(String),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// A database URL of the server to use (its database is only used to create the scratch one).
    pub server_url: String,
    /// The scratch database: created (dropped first if it exists) and dropped at the end.
    pub database: String,
    /// Keep the scratch database at the end.
    pub keep: bool,
    /// The event store's schema in the scratch database.
    pub schema: String,
    /// Events in the generated log.
    pub events: u64,
    /// Seed of the generated log.
    pub seed: u64,
    /// Runs; the report gives the median.
    pub repeat: usize,
    /// Events per batch for the engine and the raw read (default: the engine's).
    pub batch_size: Option<usize>,
    /// The `refract` binary that runs the engine under measurement.
    pub engine_binary: PathBuf,
    /// Live latency, after the rebuilds.
    pub tail: Option<TailSettings>,
    /// Memory of [`memory::PROJECTIONS`] projections live, last.
    pub memory: bool,
}

/// The live latency test.
#[derive(Debug, Clone)]
pub struct TailSettings {
    /// Events per second appended: one test per rate, in turn.
    pub rates: Vec<u64>,
    /// Seconds of appending.
    pub seconds: u64,
}

/// Everything a bench run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// Events in the log.
    pub events: u64,
    /// Seed of the log.
    pub seed: u64,
    /// Events per batch.
    pub batch_size: usize,
    /// Seconds to generate and load the log.
    pub load_seconds: f64,
    /// Transactions the log was appended in ([`writer::FILL_TRANSACTION_EVENTS`] events each).
    pub load_transactions: u64,
    /// Each figure's median over the runs (each ratio the median of the runs' own ratios).
    pub median: Run,
    /// Every run.
    pub runs: Vec<Run>,
    /// Live latency at each rate asked for.
    pub tails: Vec<Tail>,
    /// Memory of many projections live, when asked for.
    pub memory: Option<Memory>,
}

/// One run's figures: the yardsticks and the rebuilds, measured back to back.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// The raw read limit.
    pub raw_read: RawRead,
    /// The raw write limit.
    pub raw_write: RawWrite,
    /// The rebuilds, in the order of [`CASES`].
    pub rebuilds: Vec<Rebuild>,
}

/// The machine and server measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// CPU model, from `/proc/cpuinfo`.
    pub cpu_model: Option<String>,
    /// Memory, GiB.
    pub memory_gib: Option<f64>,
    /// PostgreSQL's `server_version`.
    pub postgres: String,
}

/// Runs the whole bench; `progress` advances one step per measurement (see [`steps`]).
pub async fn run(config: &BenchConfig, progress: &ProgressBar) -> Result<Report, BenchError> {
    scratch::recreate(&config.server_url, &config.database).await?;
    let result = measure(config, progress).await;
    if config.keep {
        return result;
    }
    let cleaned = clean_up(config).await;
    let report = result?;
    cleaned.map(|()| report)
}

/// Drops the bench's projections (roles belong to the whole cluster and would outlive the
/// database), then the scratch database.
async fn clean_up(config: &BenchConfig) -> Result<(), BenchError> {
    let url = crate::db::with_database(&config.server_url, &config.database);
    let mut names: Vec<&str> = CASES.iter().flat_map(|case| case.projections.iter().map(|(name, _)| *name)).collect();
    let live = memory::names();
    names.extend(live.iter().map(String::as_str));
    names.sort_unstable();
    names.dedup();
    rebuild::reset(&mut crate::db::connect(&url).await?, &config.schema, &names).await?;
    scratch::drop(&config.server_url, &config.database).await
}

/// The number of progress steps of a run of `config`.
pub fn steps(config: &BenchConfig) -> u64 {
    2 + config.repeat as u64 * (2 + CASES.len() as u64)
        + config.tail.as_ref().map_or(0, |t| t.rates.len() as u64)
        + u64::from(config.memory)
}

async fn measure(config: &BenchConfig, progress: &ProgressBar) -> Result<Report, BenchError> {
    let url = crate::db::with_database(&config.server_url, &config.database);
    let schema = config.schema.as_str();
    progress.set_message(format!("generating and appending {} events", config.events));
    let started = Instant::now();
    let filled = scratch::fill(&url, schema, config.events, config.seed).await?;
    let (events, load_seconds) = (filled.events, started.elapsed().as_secs_f64());
    progress.inc(1);

    let batch_size = config.batch_size.unwrap_or_else(|| crate::runner::loader::Settings::default().batch_size);
    let mut client = crate::db::connect(&url).await?;
    let head = limits::log_head(&url, schema).await?;
    let orders = limits::order_count(&client, schema).await?;
    progress.set_message("warming up: one untimed read of the log");
    limits::raw_read(&url, schema, batch_size).await?;
    progress.inc(1);

    let spec = EngineSpec { binary: &config.engine_binary, url: &url, schema, batch_size: config.batch_size };
    let mut runs = Vec::with_capacity(config.repeat);
    for run in 1..=config.repeat {
        let of = format!("run {run}/{}", config.repeat);
        progress.set_message(format!("{of}: raw read"));
        let raw_read = limits::raw_read(&url, schema, batch_size).await?;
        progress.inc(1);
        progress.set_message(format!("{of}: raw write of {orders} rows"));
        let raw_write = limits::raw_write(&mut client, orders).await?;
        progress.inc(1);
        let yardsticks =
            Yardsticks { read_per_second: raw_read.events_per_second, write_per_second: raw_write.rows_per_second };
        let mut rebuilds = Vec::with_capacity(CASES.len());
        for case in &CASES {
            progress.set_message(format!("{of}: rebuilding {}", case.name));
            rebuilds.push(rebuild::rebuild(&mut client, &spec, case, events, head, yardsticks).await?);
            progress.inc(1);
        }
        runs.push(Run { raw_read, raw_write, rebuilds });
    }
    let mut tails = Vec::new();
    for (settings, &rate) in config.tail.iter().flat_map(|s| s.rates.iter().map(move |rate| (s, rate))) {
        progress.set_message(format!("live tail at {rate} events/s"));
        // The head again: an earlier tail has appended since.
        let head = limits::log_head(&url, schema).await?;
        tails.push(tail::tail(&mut client, &spec, head, rate, settings.seconds, config.seed).await?);
        progress.inc(1);
    }
    let memory = if config.memory {
        progress.set_message(format!("{} projections live", memory::PROJECTIONS));
        // The head again: live tails have appended since.
        let head = limits::log_head(&url, schema).await?;
        let memory = memory::memory(&mut client, &spec, events, head, config.seed).await?;
        progress.inc(1);
        Some(memory)
    } else {
        None
    };
    Ok(Report {
        machine: machine(&client).await?,
        events,
        seed: config.seed,
        batch_size,
        load_seconds,
        load_transactions: filled.transactions,
        median: median_run(&runs),
        runs,
        tails,
        memory,
    })
}

/// Each figure's median over `runs` (which must not be empty).
fn median_run(runs: &[Run]) -> Run {
    let of = |f: &dyn Fn(&Run) -> Option<f64>| median(runs.iter().map(f));
    let must = |f: &dyn Fn(&Run) -> f64| of(&|r| Some(f(r))).unwrap_or(f64::NAN);
    let first = &runs[0];
    let raw_read = RawRead {
        events: first.raw_read.events,
        seconds: must(&|r| r.raw_read.seconds),
        events_per_second: must(&|r| r.raw_read.events_per_second),
        client_cpu_seconds: of(&|r| r.raw_read.client_cpu_seconds),
        postgres_cpu_seconds: of(&|r| r.raw_read.postgres_cpu_seconds),
    };
    let raw_write = RawWrite {
        rows: first.raw_write.rows,
        seconds: must(&|r| r.raw_write.seconds),
        rows_per_second: must(&|r| r.raw_write.rows_per_second),
        postgres_cpu_seconds: of(&|r| r.raw_write.postgres_cpu_seconds),
    };
    let rebuilds = (0..first.rebuilds.len())
        .map(|i| {
            let of = |f: &dyn Fn(&Rebuild) -> Option<f64>| median(runs.iter().map(|r| f(&r.rebuilds[i])));
            let must = |f: &dyn Fn(&Rebuild) -> f64| of(&|b| Some(f(b))).unwrap_or(f64::NAN);
            Rebuild {
                seconds: must(&|b| b.seconds),
                events_per_second: must(&|b| b.events_per_second),
                ratio_to_raw_read: must(&|b| b.ratio_to_raw_read),
                ratio_to_raw_write: of(&|b| b.ratio_to_raw_write),
                peak_rss_mib: of(&|b| b.peak_rss_mib),
                engine_cpu_seconds: of(&|b| b.engine_cpu_seconds),
                postgres_cpu_seconds: of(&|b| b.postgres_cpu_seconds),
                batch_ms_p50: of(&|b| b.batch_ms_p50),
                batch_ms_p99: of(&|b| b.batch_ms_p99),
                ..first.rebuilds[i].clone()
            }
        })
        .collect();
    Run { raw_read, raw_write, rebuilds }
}

async fn machine(client: &tokio_postgres::Client) -> Result<Machine, BenchError> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |text: &str, name: &str| {
        text.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_owned())
    };
    Ok(Machine {
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        cpu_model: field(&cpuinfo, "model name"),
        memory_gib: field(&meminfo, "MemTotal")
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map(|kib| kib / f64::from(1 << 20)),
        postgres: client.query_one("SHOW server_version", &[]).await?.get(0),
    })
}
