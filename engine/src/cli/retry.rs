//! `refract retry`.

use std::time::{Duration, Instant};

use super::DbArgs;
use refract::runner::State;
use refract::runner::retry;

/// Arguments of `refract retry`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,
    /// The failed projection to resume from its checkpoint.
    name: String,
    /// Seconds to wait for the engine to resume it.
    #[arg(long, default_value_t = 15, value_name = "SECONDS")]
    wait: u64,
}

/// Runs `refract retry`: asks the running engine that owns the failed projection to resume it
/// (e.g. after the cause was fixed), then waits until its published state is no longer failed.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = refract::db::connect(&args.db.database_url).await?;
    let (schema, name) = (args.db.schema.as_str(), args.name.as_str());
    let error = retry::request(&client, schema, name).await?;
    println!("asked the engine to resume {name}, which failed with: {error}");
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    loop {
        let (state, _) = retry::state(&client, schema, name).await?;
        if state != State::Failed.as_str() {
            println!("{name} resumed: {state}");
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{name} is still failed {} s after the request: no running engine owns it, or it failed again \
             (see `refract status`)",
            args.wait
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
