//! `refract migrate`.

use super::DbArgs;

/// Arguments of `refract migrate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,
}

/// Runs `refract migrate`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::bail!("refract migrate is not built yet (database {})", args.db.database_url)
}
