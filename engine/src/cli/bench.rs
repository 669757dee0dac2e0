//! `refract bench`: replay throughput against the database's own read and write rates.

use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use super::DbArgs;
use refract::bench::{BenchConfig, TailSettings};

/// Arguments of `refract bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,
    /// Events of the order domain to generate (orders interleaved by time), appended in
    /// transactions of 10 to 100 events.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Seed of the generated log: the same seed gives the same events.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Runs of every measurement; the report gives the median, ratios taken inside each run.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,
    /// Events per batch, for the engine and the raw read (default: the engine's default).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Also measure live latency: a writer appends at `--rate` while the engine tails the log.
    #[arg(long)]
    tail: bool,
    /// Events per second appended during `--tail`; several (`1000,10000`) measure one after
    /// the other.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    rate: Vec<u64>,
    /// Seconds of appending during `--tail`.
    #[arg(long, default_value_t = 10)]
    tail_seconds: u64,
    /// Also measure memory: 10 projections (copies of the examples) built up to the head of the
    /// log in one engine, then live for a few seconds of appends; peak RSS of each phase.
    #[arg(long)]
    memory: bool,
    /// The scratch database created on the server (dropped first if it exists).
    #[arg(long, default_value = "refract_bench")]
    database: String,
    /// Keep the scratch database afterwards (default: dropped).
    #[arg(long)]
    keep: bool,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `refract bench`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let config = BenchConfig {
        server_url: args.db.database_url,
        database: args.database,
        keep: args.keep,
        schema: args.db.schema,
        events: args.events,
        seed: args.seed,
        repeat: usize::try_from(args.repeat)?,
        batch_size: args.batch_size,
        engine_binary: std::env::current_exe().context("cannot find the refract binary to run the engine")?,
        tail: args.tail.then_some(TailSettings { rates: args.rate, seconds: args.tail_seconds }),
        memory: args.memory,
    };
    // On stderr, and only on a terminal (indicatif's default), so that `--json` stays clean.
    let progress = ProgressBar::new(refract::bench::steps(&config)).with_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {wide_msg} ({elapsed})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    progress.enable_steady_tick(Duration::from_millis(200));
    let report = refract::bench::run(&config, &progress).await;
    progress.finish_and_clear();
    let report = report.context("refract bench failed")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", refract::bench::report::table(&report));
    }
    Ok(())
}
