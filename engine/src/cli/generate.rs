//! `refract generate`.

use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use refract::generate::orders::{OrderConfig, OrderGenerator};

use super::DbArgs;

/// Arguments of `refract generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    domain: Domain,
}

/// What to generate.
#[derive(Debug, clap::Subcommand)]
enum Domain {
    /// Orders of the order domain: every event type and corner case, interleaved by time
    /// over several UTC days, written with binary COPY (streams included) in one transaction.
    Orders(OrdersArgs),
}

#[derive(Debug, clap::Args)]
struct OrdersArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Number of orders (streams); each has ~7 events on average.
    #[arg(long)]
    orders: u64,
    /// Seed: the same seed generates the same events.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Over how many days orders arrive.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// The UTC day the first order may arrive.
    #[arg(long, default_value = "2024-03-01")]
    start: NaiveDate,
}

/// Runs `refract generate`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let Domain::Orders(orders) = args.domain;
    let start: DateTime<Utc> = orders.start.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let config = OrderConfig { orders: orders.orders, seed: orders.seed, start, days: orders.days };
    let mut client = refract::db::connect(&orders.db.database_url).await?;
    let began = Instant::now();
    let summary = refract::generate::load(&mut client, &orders.db.schema, OrderGenerator::new(config)).await?;
    let seconds = began.elapsed().as_secs_f64();
    println!(
        "generated {} events in {} order streams (seed {}) in {seconds:.1} s ({:.0} events/s)",
        summary.events,
        summary.streams,
        orders.seed,
        summary.events as f64 / seconds.max(1e-9)
    );
    Ok(())
}
