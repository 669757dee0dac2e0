//! The `refract` command line: one module per subcommand.

pub mod append;
pub mod bench;
pub mod demo;
pub mod drop;
pub mod generate;
pub mod migrate;
pub mod new;
pub mod rebuild;
pub mod retry;
pub mod run;
pub mod status;

use clap::Args;

/// How to reach the database; shared by every subcommand that talks to PostgreSQL.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// PostgreSQL connection string (URL or key=value form).
    #[arg(long, env = "DATABASE_URL", default_value = refract::db::DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Schema that holds the event store tables (`streams`, `events`, ...).
    #[arg(long, env = "REFRACT_SCHEMA", default_value = "public")]
    pub schema: String,
}
