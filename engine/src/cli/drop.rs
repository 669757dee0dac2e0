//! `refract drop`: remove a projection's read models and bookkeeping.

use anyhow::Context;

use super::DbArgs;

/// Arguments of `refract drop`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,
    /// The projection to drop: its views, every version's tables, its checkpoints and status.
    name: String,
}

/// Runs `refract drop`. Refuses while an engine runs the projection.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut client = refract::db::connect(&args.db.database_url).await?;
    refract::migrate::migrate(&mut client, &args.db.schema).await?;
    let versions = refract::runner::install::drop_projection(&mut client, &args.db.schema, &args.name)
        .await
        .with_context(|| format!("cannot drop {}", args.name))?;
    println!(
        "dropped {} and its versions: {}",
        args.name,
        if versions.is_empty() { "-".into() } else { versions.join(", ") }
    );
    Ok(())
}
