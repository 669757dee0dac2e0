//! `refract migrate`.

use super::DbArgs;

/// Arguments of `refract migrate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,
}

/// Runs `refract migrate`: applies the pending migrations and says which.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut client = refract::db::connect(&args.db.database_url).await?;
    let applied = refract::migrate::migrate(&mut client, &args.db.schema).await?;
    if applied.is_empty() {
        println!(
            "schema {:?} is up to date ({} migrations applied before)",
            args.db.schema,
            refract::migrate::MIGRATIONS.len()
        );
    }
    for migration in &applied {
        println!("applied {:04}_{} to schema {:?}", migration.version, migration.name, args.db.schema);
    }
    Ok(())
}
