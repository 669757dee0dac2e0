//! The `refract` binary.

mod cli;

use clap::{Parser, Subcommand};

/// Refract: projections as WebAssembly plugins over a PostgreSQL event store.
#[derive(Debug, Parser)]
#[command(name = "refract", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending schema migrations to the event store.
    Migrate(cli::migrate::Args),
    /// Append events read as JSON lines from a file or stdin.
    Append(cli::append::Args),
    /// Generate sample data.
    Generate(cli::generate::Args),
    /// Run the engine on the order domain: sample data, the example projections, a live feed.
    Demo(cli::demo::Args),
    /// Run the projections in a directory: catch up, then tail the log until stopped.
    Run(cli::run::Args),
    /// Show where each projection stands.
    Status(cli::status::Args),
    /// Scaffold a new projection crate.
    New(cli::new::Args),
    /// Measure replay throughput against the database's own read and write rates.
    Bench(cli::bench::Args),
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: `info`; `warn` for the demo, whose
/// output is for a person to read).
fn init_tracing(default: &str) {
    use tracing_subscriber::EnvFilter;
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(if matches!(cli.command, Command::Demo(_) | Command::Bench(_)) { "warn" } else { "info" });
    let result = match cli.command {
        Command::Migrate(args) => cli::migrate::run(args).await,
        Command::Append(args) => cli::append::run(args).await,
        Command::Generate(args) => cli::generate::run(args).await,
        Command::New(args) => cli::new::run(args).await,
        Command::Demo(args) => cli::demo::run(args).await,
        Command::Run(args) => cli::run::run(args).await,
        Command::Status(args) => cli::status::run(args).await,
        Command::Bench(args) => cli::bench::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
