//! `refract generate`.

use super::DbArgs;

/// Arguments of `refract generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,
}

/// Runs `refract generate`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::bail!("refract generate is not built yet (database {})", args.db.database_url)
}
