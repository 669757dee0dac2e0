//! `refract append`.

use super::DbArgs;

/// Arguments of `refract append`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,
}

/// Runs `refract append`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::bail!("refract append is not built yet (database {})", args.db.database_url)
}
